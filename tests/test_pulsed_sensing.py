"""Pulsed DC on the virtual unit: the INA219 reads the gated current's average, as the chip
does (its ADC integrates over the conversion window: 2 samples x 532 us with the firmware's
configuration), so the firmware's average-based checks (supervisor.py, "Pulsed DC") see
both the treatment current and an over-current. Before the model averaged, a read sampled
the plant at one instant, which the 500 Hz loop aliased with the 1 kHz gate to ~0 mA.
"""
import json

import pytest
import limits as L
import pins
from ina219_model import INA219, REG_CAL, REG_CONFIG, REG_CURRENT, REG_SHUNT
from plant import Plant
from conftest import run_mpy

# firmware/ina219.py's configuration: 16 V, PGA /8, 12-bit bus, 12-bit x 2 shunt, shunt continuous
_FW_CFG = 0x0000 | (3 << 11) | (3 << 7) | (9 << 3) | 5
_CAL = 4096  # 10 ohm shunt, 1 uA per LSB (firmware/ina219.py calibration)
TOL_PCT = 3  # mean of the firmware's readings vs the commanded average
# Any one reading: the 1.064 ms window holds whole gate periods (1, 2 or 10 kHz) plus 64 us,
# which may fall in the high phase or not, as on the chip: up to 64/1064 of the on-current.
_PART = 64 / 1064


def _read_tol(i_on, want):
    return i_on * _PART + want * 0.02


class Clock:
    def __init__(self):
        self.t = 0

    def __call__(self):
        return self.t


def _rig(gate_hz, duty_u16, setpoint_duty=4096):
    """Plant and INA219 wired as simboard.Board wires them, on a hand-driven clock."""
    clk = Clock()
    p = Plant("palms", clock=clk)
    p.set_polarity(0)
    p.set_duty(setpoint_duty)
    p.set_enable(1)
    if gate_hz:
        p.set_gate_pwm(gate_hz, duty_u16)
    else:
        p.set_gate(1)

    def source(now):  # simboard.Board._shunt_source
        return (p.current_ua(now) * pins.SHUNT_MILLIOHM // 1000, 0)

    ina = INA219(source, clock=clk, noise_uv=0)
    ina.write_reg(REG_CAL, _CAL)
    ina.write_reg(REG_CONFIG, _FW_CFG)
    return p, ina, clk


def _s16(v):
    return v - 0x10000 if v & 0x8000 else v


def _settle(p, clk, seconds=3):
    for _ in range(seconds * 1000):  # 1 ms steps, as the board's clock hook watches it
        clk.t += 1000
        p.current_ua(clk.t)


def _on_current(p, clk, hz):
    # the on-current (gate high): the gate's phase 0 is where set_gate_pwm was called
    return p.current_ua(clk.t - (clk.t - p._gate_t0) % (1_000_000 // hz))


def test_plant_mean_is_the_on_current_times_the_gate_duty():
    for hz, duty in ((1_000, 32_768), (2_000, 45_875), (10_000, 19_661)):
        p, ina, clk = _rig(hz, duty)
        _settle(p, clk)
        period = 1_000_000 // hz
        on = period * duty // 65536
        t = clk.t - clk.t % period + p._gate_t0 % period  # a gate period boundary in the past
        i_on = p.current_ua(clk.t - (clk.t - p._gate_t0) % period)  # inside the high phase
        assert i_on > 1_000
        want = i_on * on / period
        # whole periods, ending in the past (the history answers without a power cycle)
        m = p.mean_ua(t - 50 * period, t - 10 * period)
        assert abs(m - want) <= 0.005 * want + 1, (hz, m, want)
        assert p.current_ua((t - 50 * period, t - 10 * period)) == m
        assert p.enable == 1 and p._gate_freq == hz  # asking about the past changed nothing


def test_plant_mean_on_dc_is_the_current_and_a_part_period_is_exact():
    p, ina, clk = _rig(0, 0)
    _settle(p, clk)
    i = p.current_ua(clk.t)
    assert p.mean_ua(clk.t - 5_000, clk.t - 1_000) == i
    p, ina, clk = _rig(1_000, 32_768)
    _settle(p, clk)
    t = clk.t - (clk.t - p._gate_t0) % 1000  # a rising edge of the gate
    i_on = p.current_ua(t)
    assert p.mean_ua(t, t + 250) == i_on  # inside the high phase
    assert p.mean_ua(t + 500, t + 900) == 0  # inside the low phase
    assert abs(p.mean_ua(t + 250, t + 750) - i_on // 2) <= 1


def test_ina219_reads_the_average_of_a_gated_current_at_500_hz():
    for hz, duty in ((1_000, 32_768), (1_000, 19_661), (2_000, 45_875), (10_000, 58_982)):
        p, ina, clk = _rig(hz, duty)
        _settle(p, clk)
        want = p.mean_ua(clk.t - 100_000, clk.t)
        assert want > 500
        reads = []
        for _ in range(500):  # the firmware's loop: one read every 2 ms
            clk.t += 2_000
            p.current_ua(clk.t)
            reads.append(_s16(ina.read_reg(REG_CURRENT)))
        mean = sum(reads) / len(reads)
        assert abs(mean - want) <= want * TOL_PCT / 100, (hz, duty, mean, want)
        tol = _read_tol(_on_current(p, clk, hz), want)
        assert all(abs(r - want) <= tol for r in reads), (hz, duty, min(reads), max(reads), want)


def test_ina219_on_plain_dc_reads_the_current_as_before():
    p, ina, clk = _rig(0, 0)
    _settle(p, clk)
    i = p.current_ua(clk.t)
    for _ in range(50):
        clk.t += 2_000
        p.current_ua(clk.t)
        assert _s16(ina.read_reg(REG_CURRENT)) == i
        assert _s16(ina.read_reg(REG_SHUNT)) == (i * pins.SHUNT_MILLIOHM // 1000 + 5) // 10


def test_a_welded_switch_conducts_through_the_gate_low_phase():
    p, ina, clk = _rig(1_000, 32_768)
    _settle(p, clk)
    half = p.mean_ua(clk.t - 20_000, clk.t)
    p.set_faults(stuck_on=True)
    _settle(p, clk, 1)
    full = p.mean_ua(clk.t - 20_000, clk.t)
    assert abs(full - 2 * half) <= 0.02 * full
    assert min(p.current_ua(clk.t + k * 100) for k in range(10)) > 0


# --- the firmware on the in-process virtual unit ------------------------------------------
_CASES = (("none", 1_000, 50), ("none", 2_000, 70), ("plant_over", 1_000, 50),
          ("stuck_on", 1_000, 50), ("sensor_over", 1_000, 50))

_SCRIPT = r"""
import sys, json
import vclock, fwsim
import session as S
from fw_common import fault_name


def case(kind, hz, duty):
    cfg = fwsim.fast_cfg(pulsed={"freq_hz": hz, "duty_pct": duty} if hz else False)
    u = fwsim.Unit("palms", cfg=cfg)  # a fresh power-on (closes the previous unit)
    u.start_treatment()
    u.run_s(1)
    out = {"state": u.state_name(), "set_ua": u.s.set_ua, "set_avg_ua": u.s.set_avg_ua}
    reads = []
    for _ in range(500):
        u.run_ticks(1)
        reads.append(u.app.meas.ua)
    out["reads"] = reads
    now = vclock.now_us()
    out["true_mean"] = u.plant.mean_ua(now - 1_000_000, now)
    p = u.plant
    if kind == "plant_over":
        # the source runs at twice its command (a failed DAC reference): the on-current doubles
        orig = p.set_duty
        p.set_duty = lambda d: orig(d * 2 if d * 2 < 65535 else 65535)
        orig(p.duty * 2)
    elif kind == "stuck_on":
        p.set_faults(stuck_on=True)  # welded switch: current in the gate's low phase too
    elif kind == "sensor_over":
        u.fault("sensor_stuck", 31_000)  # the sensor reads 31 mA
    out["react_us"] = None
    if kind != "none":
        try:
            out["react_us"] = u.ticks_until(lambda: u.s.state == S.FAULT and not u.enable(), 500)
        except (fwsim.Reset, AssertionError):
            pass
    out["fault"] = fault_name(u.s.fault) if u.s.fault else None
    out["end_state"] = u.state_name()
    return out


res = {}
for kind, hz, duty in json.loads(sys.argv[1]):
    res["%s/%d/%d" % (kind, hz, duty)] = case(kind, hz, duty)
print("@J " + json.dumps(res))
"""


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    """Every case on the virtual unit, in one MicroPython process (each a fresh power-on)."""
    script = tmp_path_factory.mktemp("pulsed") / "pulsed_unit.py"
    script.write_text(_SCRIPT)
    r = run_mpy(script, args=(json.dumps(_CASES),), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    line = [x for x in r.stdout.splitlines() if x.startswith("@J ")]
    assert line, r.stdout + r.stderr
    return json.loads(line[-1][3:])


def test_pulsed_readings_track_the_commanded_average(units):
    for hz, duty in ((1_000, 50), (2_000, 70)):
        r = units["none/%d/%d" % (hz, duty)]
        assert r["state"] == "TREAT" and r["end_state"] == "TREAT" and r["fault"] is None
        want = r["set_avg_ua"]
        assert want == r["set_ua"] * duty // 100
        reads = r["reads"]
        mean = sum(reads) / len(reads)
        assert abs(mean - want) <= want * TOL_PCT / 100, (hz, duty, mean, want)
        assert abs(mean - r["true_mean"]) <= r["true_mean"] * TOL_PCT / 100
        tol = _read_tol(r["set_ua"], want)  # the on-current is the setpoint
        assert all(abs(x - want) <= tol for x in reads), (hz, duty, min(reads), max(reads), want)


def test_pulsed_over_current_in_the_plant_is_cut(units):
    # DC cuts this as over_ceiling (tests/test_firmware_e2e.py); pulsed at 50 % the average
    # (2 x 2.5 mA) is under the 8 mA ceiling but 2 mA over the averaged setpoint.
    r = units["plant_over/1000/50"]
    assert r["fault"] == "over_setpoint" and r["end_state"] == "FAULT"
    assert r["react_us"] is not None and r["react_us"] <= 100_000


def test_pulsed_welded_switch_is_cut(units):
    r = units["stuck_on/1000/50"]
    assert r["fault"] == "over_setpoint" and r["end_state"] == "FAULT"
    assert r["react_us"] is not None and r["react_us"] <= 100_000


def test_pulsed_sensor_stuck_high_is_cut_as_on_dc(units):
    r = units["sensor_over/1000/50"]
    assert r["fault"] == "over_abs" and r["end_state"] == "FAULT"
    assert r["react_us"] is not None and r["react_us"] <= 2 * L.LOOP_PERIOD_US + L.LOOP_PERIOD_US
