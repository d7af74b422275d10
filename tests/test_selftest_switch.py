"""Boot self-test step "switch": a welded output enable switch is invisible at setpoint 0 (no
current flows), so the self-test raises the setpoint briefly with enable low and expects no
current. Runs selftest.run on the virtual unit as main.py does (tests/mpy/fwsim.py)."""
import json

import limits as L

_PRE = """
import json
import machine, pins, vclock
import fwsim
import integrity
import selftest
import session as S
import limits as L

def emit(k, v):
    print("@R " + json.dumps([k, v]))

def sim_duty():
    return machine.sim_pwm(pins.PIN_SETPOINT_PWM).mean_u16

# fwsim.Unit boots without a firmware bundle: the manifest item is not what these tests judge.
integrity.check = lambda: (True, "not judged here")
"""


def _run(mpy, tmp_path, body):
    r = mpy(_PRE + body, cwd=str(tmp_path))
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("@R "):
            k, v = json.loads(line[3:])
            out[k] = v
    return out, r.stdout


def test_welded_switch_fails_the_selftest_and_start_is_refused(mpy, tmp_path):
    r, out = _run(mpy, tmp_path, """
u = fwsim.Unit("palms", selftest=True, before_boot=lambda u: u.sb.fault("output_stuck_on"))
emit("results", u.selftest_results)
emit("ok", u.s.selftest_ok)
emit("peak", u.plant.peak_ua)
emit("duty_after", sim_duty())
emit("en_after", u.enable())
u.press("START")
u.run_s(0.5)
u.press("START")
u.run_s(0.5)
emit("state", u.state_name())
emit("refuse", u.s.refuse)
emit("screen", u.text())
emit("true_ua", u.true_ua())
emit("en_edges", [e[2] for e in u.pin_log if e[1] == pins.PIN_OUTPUT_ENABLE])
emit("test_ua", selftest._SWITCH_TEST_UA)
""")
    items = {name: (ok, words) for name, ok, words in r["results"]}
    assert items["zero current"][0] is True  # at setpoint 0 the welded switch shows nothing
    assert items["switch"][0] is False, out
    assert "output switch stuck closed: service the unit" in items["switch"][1]
    assert r["ok"] is False
    # The test current is bounded: no more than the test setpoint reaches the patient.
    assert r["test_ua"] <= 2 * L.ZERO_TOL_UA
    assert r["peak"] <= r["test_ua"] + 50
    # The step ends with the output safe: setpoint back to 0, enable low.
    assert r["duty_after"] == 0 and r["en_after"] == 0
    # START refused with the words on the display; the enable line never went high.
    assert r["state"] == "IDLE" and r["refuse"] == L.B_SELFTEST
    screen = " ".join(r["screen"])
    assert r["screen"][0] == "SELF-TEST FAILED"
    assert "stuck closed" in screen and "service the unit" in screen
    assert r["en_edges"] == [] and r["true_ua"] == 0


def test_healthy_switch_passes_moves_no_current_and_start_confirms(mpy, tmp_path):
    r, out = _run(mpy, tmp_path, """
u = fwsim.Unit("palms", selftest=True)
emit("results", u.selftest_results)
emit("ok", u.s.selftest_ok)
emit("peak", u.plant.peak_ua)
emit("duty_after", sim_duty())
emit("en_after", u.enable())
emit("pwm_after", u.b.output._sp is not None)
emit("gate_after", machine.sim_pwm(pins.PIN_PULSE_GATE).mean_u16)
u.press("START")
u.run_s(0.2)
emit("state", u.state_name())
""")
    items = {name: (ok, words) for name, ok, words in r["results"]}
    assert items["switch"][0] is True and items["switch"][1].startswith("opens"), out
    assert all(ok for ok, _ in items.values()) and r["ok"] is True
    assert r["peak"] == 0  # an open switch lets nothing through while the setpoint is up
    assert r["duty_after"] == 0 and r["en_after"] == 0 and r["pwm_after"] is False
    assert r["gate_after"] == 0  # raised for the test, low again after it
    assert r["state"] == "CONFIRM"


def test_switch_step_ends_safe_when_the_sensor_raises(mpy, tmp_path):
    r, out = _run(mpy, tmp_path, """
u = fwsim.Unit("palms")
b = u.b
def boom():
    raise RuntimeError("sensor driver bug")
b.ina.read_shunt_ua = boom
try:
    selftest.switch_opens(b)
    emit("raised", False)
except RuntimeError:
    emit("raised", True)
emit("duty_after", sim_duty())
emit("en_after", u.enable())
emit("out_ua", b.output.ua)
""")
    assert r["raised"] is True, out
    assert r["duty_after"] == 0 and r["en_after"] == 0 and r["out_ua"] == 0


def test_sensor_error_during_the_switch_step_fails_it(mpy, tmp_path):
    r, out = _run(mpy, tmp_path, """
u = fwsim.Unit("palms")
u.sb.fault("i2c_nack", addr=pins.INA219_ADDR)
ok, words = selftest.switch_opens(u.b)
emit("ok", ok)
emit("words", words)
emit("duty_after", sim_duty())
emit("en_after", u.enable())
""")
    assert r["ok"] is False and "current sensor read failed" in r["words"], out
    assert r["duty_after"] == 0 and r["en_after"] == 0
