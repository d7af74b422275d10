"""The firmware end to end on the virtual unit, under the real MicroPython unix port.

Each test runs a tests/mpy/fw_*.py script: the real firmware (App, session, supervisor,
drivers) on the simulated board (hw/sim), in one interpreter through tests/mpy/fwsim.py. The
scripts print "@R [key, value]" lines; the assertions are here. What is asserted is the
board's view: the enable line GP17, the plant's TRUE current, the display's text, the
buzzer, the watchdog's reset handler.

The two long runs (the one full 20-minute session, and the glycopyrrolate preset past half
time) start in the background when this module starts, so they use the second core while
the short scripts run; their tests collect them at the end.
"""
import json
import os
import subprocess

import pytest

from conftest import FIRMWARE, MPY_TESTS, ROOT, SIM, micropython_exe

import limits as L

pytestmark = pytest.mark.slow


def _env():
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(SIM), str(FIRMWARE), str(MPY_TESTS), ".frozen"])
    return env


def _parse(out):
    r = {}
    for line in out.splitlines():
        if line.startswith("@R "):
            k, v = json.loads(line[3:])
            r[k] = v
    return r


def run(script, *args, cwd=None, timeout=300):
    p = subprocess.run([micropython_exe(), str(MPY_TESTS / script), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=_env(), cwd=cwd or str(ROOT))
    if p.returncode != 0:
        pytest.fail("%s %s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (script, args, p.returncode, p.stdout, p.stderr))
    return _parse(p.stdout), p.stdout


class _Background:
    """Scripts started once, collected by the tests that need them."""

    def __init__(self):
        self.procs = {}

    def start(self, key, script, *args):
        if key not in self.procs:
            self.procs[key] = subprocess.Popen(
                [micropython_exe(), str(MPY_TESTS / script), *map(str, args)], stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(ROOT))

    def result(self, key, timeout=400):
        p = self.procs[key]
        out, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            pytest.fail("%s exited %d\n--- stdout\n%s\n--- stderr\n%s" % (key, p.returncode, out, err))
        return _parse(out)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def background():
    bg = _Background()
    bg.start("full", "fw_full.py")
    bg.start("glyco", "fw_session.py", "glyco")
    yield bg
    bg.stop()


@pytest.fixture(scope="module", autouse=True)
def _start_background(background):
    yield


# --- boot and self-test -------------------------------------------------------------------
@pytest.fixture
def bundle(tmp_path):
    """A firmware bundle with its manifest, as the unit's flash holds it (cwd of main.py)."""
    from ionto import firmware_build

    d = tmp_path / "fw"
    firmware_build.build(d)
    return d


def boot(bundle, case):
    # main.py runs on a LittleFS flash image mounted at "/" inside the script (as the unit's).
    return run("fw_boot.py", case, str(bundle), str(bundle.parent / "flash.img"), cwd=str(bundle.parent))


def _selftest_lines(out):
    return {ln.split()[1] if not ln.startswith("selftest zero") else "zero": ln
            for ln in out.splitlines() if ln.startswith("selftest ")}


def _off_after(r):
    # main.py's finally: the output is off at the pins and in the plant, no current flows.
    assert r["ended_by"] == "KeyboardInterrupt"
    assert r["enable_pin"] == 0 and r["plant_enable"] == 0
    assert r["wdt_armed"] is False  # boot and idle never arm the watchdog


def test_boot_good_unit_passes_and_start_asks_for_confirmation(bundle):
    r, out = boot(bundle, "good")
    st = _selftest_lines(out)
    assert all(" ok " in ln for ln in st.values()), out
    assert set(st) == {"sensor", "zero", "switch", "hw", "buttons", "config", "firmware"}
    assert r["selftest_ok"] is True and r["state"] == "CONFIRM"
    assert r["screen"][0] == "CONFIRM" and "START to confirm" in r["screen"]
    assert r["ui_errors"] == 0
    _off_after(r)
    assert r["duty"] == 0 and r["true_ua_after"] == 0
    assert "@ST CONFIRM" in out  # the read-only status line on the serial port


@pytest.mark.parametrize("case,item,words,screen", [
    ("sensor_nack", "sensor", "current sensor not answering", "SENSOR FAULT"),
    ("stuck_on", "zero", "current flows with output off", "OUTPUT STUCK ON"),
    ("button_held", "buttons", "a button is held or stuck", "SELF-TEST FAILED"),
])
def test_boot_selftest_fails_and_start_is_refused(bundle, case, item, words, screen):
    r, out = boot(bundle, case)
    st = _selftest_lines(out)
    assert "FAIL" in st[item] and words in st[item], out
    assert r["selftest_ok"] is False
    # START pressed at 1 s: no confirmation, no output; the display says why in words.
    assert r["state"] in ("IDLE", "FAULT")
    assert r["screen"][0] == screen
    if case == "button_held":
        assert r["refuse"] == L.B_SELFTEST
        assert "a button is held or stuck" in " ".join(r["screen"])
    _off_after(r)
    if case != "stuck_on":
        assert r["true_ua_after"] == 0
    # stuck_on: the welded switch leaks whatever the firmware does (that is why it must not
    # treat); the self-test saw it with the clamp at its open level. Off, the model's clamp is
    # an ideal 0 V sink, so what the true current is afterwards says nothing about the board
    # (there R12 limits the sink): not asserted either way.


@pytest.mark.parametrize("preset, change, words", [
    (0, {"target_ua": 40_000}, "target_ua"),  # above the hard ceiling
    # a drug preset (named otherwise) with its ceiling raised, or reversing: the unit refuses
    # it as the host does, in one line
    (3, {"name": "drug_pad", "ceiling_ua": 9_000}, "above the glycopyrrolate ceiling"),
    (3, {"name": "drug_pad", "reverse": True}, "not allowed for glycopyrrolate"),
])
def test_boot_invalid_config_refuses_start(bundle, preset, change, words):
    cfg = json.loads(json.dumps(__import__("config").defaults()))
    cfg["presets"][preset].update(change)
    if preset == 3:
        cfg["default_preset"] = cfg["presets"][0]["name"]
    (bundle / "config.json").write_text(json.dumps(cfg))
    r, out = boot(bundle, "good")
    st = _selftest_lines(out)
    assert "FAIL" in st["config"] and words in st["config"], out
    assert ("presets[%d]" % preset) in st["config"], out  # the line names the preset at fault
    assert r["config_ok"] is False and r["selftest_ok"] is False
    assert r["state"] == "IDLE" and r["screen"][0] == "CONFIG INVALID"
    _off_after(r)


@pytest.mark.parametrize("how,words", [
    ("missing", "no firmware manifest"),
    ("tampered", "firmware file changed: app.py"),
    ("file_gone", "firmware file missing: ramp.py"),
])
def test_boot_firmware_integrity(bundle, how, words):
    if how == "missing":
        (bundle / "manifest.json").unlink()
    elif how == "tampered":
        with open(bundle / "app.py", "a") as f:
            f.write("\n# changed\n")
    else:
        (bundle / "ramp.py").unlink()
    r, out = boot(bundle, "good")
    st = _selftest_lines(out)
    assert "FAIL" in st["firmware"] and words in st["firmware"], out
    assert r["selftest_ok"] is False and r["state"] == "IDLE"
    assert r["screen"][0] == "SELF-TEST FAILED" and r["refuse"] == L.B_SELFTEST
    _off_after(r)


# --- safety faults during a treatment -----------------------------------------------------
TICK_US = L.LOOP_PERIOD_US
P_MS = L.LOOP_PERIOD_MS
# Per-tick bounds scale with the period: the ramp (at most 1 mA/s up, 2 mA/s down) plus the
# trim (1 mA/s) over one period, plus rounding; the true current's largest change between two
# ticks with the contact steady, 15 uA per ms of period (30 uA at the former 2 ms).
CMD_UP_MAX = (L.RAMP_UP_MAX_UA_S + L.TRIM_ERR_MAX_UA * 1000 // L.TRIM_TI_MS) * P_MS // 1000 + 2
CMD_DOWN_MAX = (L.RAMP_DOWN_MAX_UA_S + L.TRIM_ERR_MAX_UA * 1000 // L.TRIM_TI_MS) * P_MS // 1000 + 2
STEP_MAX = 15 * P_MS


def fault(kind):
    r, _ = run("fw_faults.py", kind)
    return r


def _cut(r, code, within_us, screen):
    assert r["before_state"] == "TREAT" and r["before_ua"] > 4_000
    assert r["fault"] == code and r["state"] == "FAULT"
    assert r["react_us"] is not None and r["react_us"] <= within_us, r
    assert r["enable_pin"] == 0 and r["cmd_ua"] == 0
    assert r["true_ua_50ms"] == 0  # the plant's current has fallen
    assert r["end_reason"] == "fault"
    assert r["screen"][0] == screen and r["screen"][-1] == "STOP  clear"
    assert r["buzzing"] is True  # the fault alarm sounds


@pytest.mark.parametrize("kind", ["i2c_nack", "i2c_stuck"])
def test_sensor_i2c_failure_cuts_the_output_and_latches(kind):
    r = fault(kind)
    # Detected after the tolerated window (two failed reads), cut in the same tick.
    _cut(r, "sensor_i2c", L.I2C_ERROR_WINDOW_MS * 1000 + 2 * TICK_US, "SENSOR FAULT")
    # Latched: STOP while the bus still fails is refused; once it answers, STOP clears.
    assert r["after_stop_present"] == "FAULT" and r["refuse_present"] == L.B_CAUSE
    assert r["after_stop_gone"] == "IDLE" and r["enable_after_clear"] == 0


def test_sensor_stale_conversions_cut_the_output():
    r = fault("stale")
    # STALE_MS from the last conversion the status read saw (read every SENSOR_FLAGS_MS)
    _cut(r, "sensor_stale", (L.STALE_MS + L.SENSOR_FLAGS_MS) * 1000 + 2 * TICK_US, "SENSOR FAULT")
    assert r["screen"][1] == "no new reading"
    assert r["after_stop_present"] == "FAULT" and r["after_stop_gone"] == "IDLE"


def test_sensor_stuck_is_found_implausible_when_the_command_falls():
    # A sensor stuck at the treatment current looks plausible until the current changes:
    # during STOP's ramp-down the second channel falls away from it (readings differ).
    r = fault("sensor_stuck")
    assert r["fault"] == "sensor_mismatch" and r["state"] == "FAULT"
    assert r["react_us"] is not None and r["react_us"] < 1_000_000  # well before the STOP ramp ends
    assert r["enable_pin"] == 0 and r["true_ua_50ms"] == 0
    assert r["screen"][0] == "SENSOR FAULT" and r["screen"][1] == "readings differ"
    assert r["after_stop_present"] == "FAULT" and r["after_stop_gone"] == "IDLE"


def test_over_current_read_by_the_sensor_cuts_at_once():
    # The INA219 reads 31 mA while the second channel reads the true 5 mA: cut at once, and
    # named for what it is, a sensing fault.
    r = fault("sensor_over")
    _cut(r, "sensor_mismatch", 2 * TICK_US, "SENSOR FAULT")
    assert r["screen"][1] == "readings differ"
    assert r["after_stop_present"] == "FAULT" and r["after_stop_gone"] == "IDLE"


def test_over_current_in_the_plant_cuts_before_it_grows():
    # The source runs at twice its command: the true current crosses the ceiling and the
    # output is cut within a few ticks of the reading showing it. (The clamp follows the
    # voltage up a period at a time, and the skin's capacitance draws the source's full
    # current while it charges: a few ms above the ceiling.)
    r = fault("plant_over")
    _cut(r, "over_ceiling", 5 * TICK_US, "OVERCURRENT")
    # The doubled source heads for 2 x 5 mA = 10 mA (tau ~1.6 ms): within the one period
    # before the reading shows it (10 ms) the true current passes the 8 mA ceiling by at most
    # what it rises in that period, and is cut before it settles at 10 mA.
    assert r["max_true_ua_before_cut"] < 2 * 5_000


def test_hardware_limiter_trip_cuts_the_output_in_one_tick():
    # Under current only a collapsed load draws 35 mA through the clamp: SHORT CIRCUIT.
    r = fault("hw_limit")
    _cut(r, "short", TICK_US, "SHORT CIRCUIT")
    # The limiter latch opens with enable low: the cause is gone, STOP clears.
    assert r["after_stop_present"] == "IDLE"


def test_short_circuit_during_treatment_is_cut_in_one_tick():
    # Both electrodes into one tray mid-treatment: the charged output dumps into 200 ohm and
    # the hardware limiter opens first, or the supervisor sees the short: either way, cut, and
    # the nurse reads what to act on (SHORT CIRCUIT), not which part acted.
    r = fault("short")
    assert r["fault"] == "short"
    _cut(r, "short", L.SHORT_WINDOW_MS * 1000 + 2 * TICK_US, "SHORT CIRCUIT")
    assert r["screen"][1] == "check trays"


def test_short_circuit_scenario_faults_before_the_current_grows():
    r = fault("short_scenario")
    assert r["fault"] == "short" and r["state"] == "FAULT"
    assert r["states"] == ["IDLE", "CONFIRM", "CONTACT", "RAMP UP", "FAULT"]
    assert r["peak_ua"] < 1_000  # judged from SHORT_MIN_UA (400 uA) on
    assert r["enable_pin"] == 0 and r["true_ua_50ms"] == 0
    assert r["screen"][:2] == ["SHORT CIRCUIT", "check trays"]


def test_output_dead_is_a_fault_not_a_pause():
    # Output stage dies mid-treatment (hands still in the water): no current and, once the
    # skin capacitance has discharged, no electrode voltage. A fault in words.
    r = fault("output_dead")
    assert r["state"] == "FAULT" and r["fault"] == "output_dead", r
    # Judged over DEAD_WINDOW_MS once the skin capacitance has discharged: within a second.
    assert r["react_us"] <= L.DEAD_WINDOW_MS * 1000 + 500_000
    assert r["screen"][0] == "OUTPUT FAULT"


def test_stuck_on_output_faults_and_the_starved_watchdog_resets_the_unit():
    # Welded switch and a leaking source: after STOP current flows with the output off. The
    # supervisor faults and stops feeding the watchdog; the chip resets (the last lever).
    r = fault("stuck_on")
    assert r["state"] == "FAULT" and r["enable_pin"] == 0
    assert r["true_ua_50ms"] > L.ZERO_TOL_UA  # flowing regardless of the enable line
    assert r["reset"] == 3  # machine.WDT_RESET
    assert r["reset_after_ms"] < 2_500 + 1_000 + 500  # STOP ramp + WDT timeout + slack


def test_hung_loop_is_reset_by_the_watchdog():
    r, _ = run("fw_watchdog.py")
    assert r["armed_in_idle"] is False
    assert r["reset"] == 3
    assert 900 <= r["hang_to_reset_ms"] <= 1_100  # app.WDT_MS after the last feed


# --- transitions --------------------------------------------------------------------------
def session(topic):
    r, _ = run("fw_session.py", topic)
    return r


def test_confirm_times_out_and_stop_cancels():
    r = session("confirm")
    assert r["after_start"] == "CONFIRM" and r["confirm_screen"][0] == "CONFIRM"
    assert r["after_timeout"] == "IDLE"
    assert r["after_stop"] == "IDLE" and r["idle_screen"][0] == "READY"
    assert r["enable_ever"] == []  # the output was never enabled


def test_mode_cycles_presets_in_idle_only():
    r = session("mode")
    assert r["presets"] == ["hands_feet", "feet", "armpits", "glycopyrrolate", "hands_feet"]
    assert r["shown"][1:] == r["presets"][1:]  # the display names the preset
    assert r["mode_in_confirm"] == ["CONFIRM", "hands_feet"]


def test_up_down_adjust_within_the_ceiling_through_the_ramp():
    r = session("updown")
    assert r["idle_target"] == 5_000
    assert r["mode_in_treat"] == ["TREAT", "fast"]
    assert r["target_after_up"] == 5_500
    assert 0 < r["set_rise_100ms"] <= 60  # 500 uA/s slew, not a 500 uA jump
    assert r["target_at_ceiling"] == 6_000
    assert abs(r["true_at_ceiling"] - 6_000) <= 100
    assert r["target_after_down"] == 5_500 and abs(r["true_after_down"] - 5_500) <= 100
    assert r["peak_ua"] <= 6_000 + L.CEILING_TOL_UA
    assert r["max_step_ua"] <= STEP_MAX and r["max_cmd_up_ua"] <= CMD_UP_MAX


def test_stop_ramps_down_within_3_s_to_stopped():
    r = session("stop")
    assert r["set_before"] == 8_000
    assert r["stop_ms"] <= 3_000
    assert r["states"] == ["TREAT", "STOPPING", "STOPPED"]
    # 8 mA in 2.5 s is 6.4 uA per tick; the trim may add 2.
    assert r["max_cmd_down_ua"] <= 8_000 * P_MS // L.STOP_RAMP_MS + 3
    assert r["max_step_ua"] <= STEP_MAX
    assert r["enable"] == 0 and r["true_ua"] == 0
    assert r["end_reason"] == "stopped by nurse" and r["screen"][:2] == ["STOPPED", "stopped by nurse"]


def test_pulsed_preset_gates_the_output_and_shows_the_average():
    r = session("pulsed")
    assert r["state"] == "TREAT"
    assert r["gate"] == [True, 1_000, 32_768]
    assert r["set_avg_ua"] == r["set_ua"] // 2
    assert "avg set   2.5 mA" in r["screen"] and "pulsed DC" in r["screen"]
    assert abs(r["avg_true_ua"] - 2_500) <= 250


def test_hand_lifted_pauses_and_reimmersion_ramps_from_zero():
    r = session("contact")
    assert r["before"][0] == "TREAT"
    assert r["pause_ms"] <= L.CONTACT_LOST_MS + 2 * TICK_US // 1000
    assert r["cmd_at_pause"] <= L.CONTACT_TEST_UA and r["set_at_pause"] <= L.CONTACT_TEST_UA
    assert r["treat_ms_frozen"] == 0  # the timer stopped
    assert r["paused_screen"][:2] == ["PAUSED", "Contact lost -"]
    assert r["pause_beeps_ms"][:2] == [80, 80]
    assert r["set_at_resume"] <= L.CONTACT_TEST_UA  # a fresh ramp from zero
    assert r["after"][0] == "TREAT" and abs(r["after"][1] - 5_000) <= 100
    assert r["peak_after_immersion"] <= r["target"] + L.CEILING_TOL_UA
    assert r["max_step_ua"] <= STEP_MAX and r["max_cmd_up_ua"] <= CMD_UP_MAX
    assert r["treat_ms_running"] > 10_000  # and runs again


def test_compliance_limited_shows_x_of_y_and_keeps_running():
    r = session("compliance")
    assert r["screen"][0].startswith("LIMITED")
    line = r["screen"][2]
    assert line.endswith(" of 15.0 mA"), line
    assert abs(float(line.split()[0]) * 1000 - r["true_ua"]) < 300
    assert r["screen"][3] == "skin resist high" and r["limit_reason"] == L.LIM_COMPLIANCE
    assert r["still"][0] in ("RAMP UP", "TREAT") and r["still"][1] is True
    # 10 s of ticks: one of them may be the collector's two-period slot (app.GC_MS)
    assert 10_000 <= r["still"][2] <= 10_000 + P_MS and r["fault"] == 0


def test_heap_locked_treatment_runs_without_memory_error():
    r, _ = run("fw_heap.py", "asis")
    assert r["error"] is None
    assert r["state"] == "TREAT" and r["treat_ms"] > 150_000
    assert r["ui_errors"] == [0, ""]
    assert "PAUSED" in r["states"] and abs(r["true_ua"] - 5_500) <= 150


def test_invariants_under_random_sequences():
    first, n = 1, 5
    r, out = run("fw_props.py", first, n, 20)
    for seed in range(first, first + n):
        assert r["violations_%d" % seed] == [], (r["seed"], out)
        up, allowed = r["max_cmd_up_%d" % seed]
        assert up <= allowed, out
        assert r["overshoot_%d" % seed] == 0, out
        assert r["resets_%d" % seed] == 0, out


# --- the long runs (background) -----------------------------------------------------------
def test_glycopyrrolate_never_reverses(background):
    r = background.result("glyco")
    assert r["preset"][0] == "glycopyrrolate" and r["preset"][1] is False
    assert r["treat_ms"] > 600_000  # past half time
    assert r["state"] == "TREAT" and r["reversed"] is False
    assert r["polarity_edges"] == []
    assert abs(r["true_ua"] - 4_000) <= 150


def test_full_session_every_transition(background):
    r = background.result("full")
    # REVERSING twice: down to zero (REV_DOWN), then up again (REV_UP) after the switch.
    assert r["states"] == ["IDLE", "CONFIRM", "CONTACT", "RAMP UP", "TREAT", "REVERSING", "REVERSING", "TREAT",
                           "RAMP DOWN", "DONE"], r["states"]
    assert r["confirm_screen"][0] == "CONFIRM"
    assert r["treat_screen"][0].startswith("TREAT") and "set      10.0 mA" in r["treat_screen"]
    assert r["after_reverse"][0] == "TREAT" and r["after_reverse"][1] == 1
    assert abs(r["after_reverse"][2] - 10_000) <= 200
    # Polarity switched once, at half time, with no current flowing.
    edges = r["polarity_edges"]
    assert len(edges) == 1 and edges[0][1] == 1 and edges[0][2] <= L.ZERO_TOL_UA, edges
    # Time left counts down to zero.
    lefts = r["lefts"]
    assert lefts == sorted(lefts, reverse=True) and lefts[0] > 1_150 and lefts[-1] < 30
    assert r["treat_ms"] >= 1_200_000 and r["end_reason"] == "time complete"
    # Dose: about 10 mA for 20 min, less the ramps and the reversal.
    assert 185 <= r["dose_mamin"] <= 200
    assert r["done_screen"][:2] == ["DONE", "time complete"]
    assert "%d mA.min" % r["dose_mamin"] in r["done_screen"][2]
    assert r["end_beeps_ms"] == [200, 200, 200]  # END: three beeps
    assert r["enable"] == 0 and r["true_ua"] == 0 and r["fault"] == 0
    assert r["ramp_down_ms"] <= 10_000 / r["slews"][1] * 1000 + 500
    assert r["peak_ua"] <= 10_000 + L.CEILING_TOL_UA
    assert r["max_step_ua"] <= 20 * P_MS and r["max_cmd_up_ua"] <= CMD_UP_MAX and r["max_cmd_down_ua"] <= CMD_DOWN_MAX
    assert r["ui_errors"] == 0
