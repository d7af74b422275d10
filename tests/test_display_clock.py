"""Every state change redraws the page it implies, in the same loop pass (app._events), and a
refusal shown before does not outlive the state it belonged to; the clock a host set survives
the watchdog reset that follows a treatment (board.keep_time / restore_time over rp2's
machine.mem_backup), and a power-on clears it. The in-process virtual unit under MicroPython
(tests/mpy/fw_display.py)."""
import json
import os
import subprocess

import pytest

from conftest import FIRMWARE, MPY_TESTS, ROOT, SIM, micropython_exe


def run(topic):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(SIM), str(FIRMWARE), str(MPY_TESTS), ".frozen"])
    p = subprocess.run([micropython_exe(), str(MPY_TESTS / "fw_display.py"), topic], capture_output=True, text=True,
                       timeout=300, env=env, cwd=str(ROOT))
    if p.returncode != 0:
        pytest.fail("fw_display.py %s exited %d\n%s\n%s" % (topic, p.returncode, p.stdout, p.stderr))
    return dict(json.loads(ln[3:]) for ln in p.stdout.splitlines() if ln.startswith("@R "))


def test_fault_cleared_after_a_refused_stop_shows_ready_and_mode_shows_the_preset():
    r = run("fault")
    assert r["fault_page"] == ["SENSOR FAULT", "no reply"]  # drawn in the tick of the fault
    assert r["refused_page"] == ["SENSOR FAULT", "no reply"]  # STOP refused: the fault stays
    # Cause gone, STOP: idle, and the display says so in that same tick, and later too.
    assert r["idle_page"] == ["READY", "fast"]
    assert r["idle_page_later"] == ["READY", "fast"]
    assert r["mode_page"] == ["READY", r["mode_preset"]] and r["mode_preset"] != "fast"


def test_mode_after_a_refused_start_shows_the_new_preset():
    r = run("refused")
    assert r["refused_page"] == ["USB CONNECTED", "unplug to treat"]
    assert r["mode_page"] == ["READY", r["mode_preset"]]


def test_clock_survives_the_watchdog_reset_after_a_treatment_not_a_power_on():
    r = run("clock")
    assert r["kept"] is not None and r["rtc_after_reset_raw"] == 2021  # rp2 restarts its RTC
    assert r["restored"] is True and r["year_after"] == 2026
    # Kept each second: at most about a second behind the time before the reset.
    assert 0 <= r["time_before"] - r["time_after"] <= 1
    assert r["restore_again"] is None
    assert r["after_power_on"] is None and r["year_after_power_on"] == 2021
    assert r["kept_after_power_on"] is None
