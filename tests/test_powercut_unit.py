"""On the pseudo-terminal virtual unit with the firmware bundle: a host sets the clock, a
treatment runs (the watchdog is armed), the host's next session ends with the watchdog reset
and the clock carries on; then a treatment is cut by a power loss at a moment of virtual time:
no flash write happened while current flowed, and the next boot closes the session with its
dose, treatment time and trace from the FRAM journal."""
import json
import time

import pytest

import config
import logstore as LS
import records as R
import session as S
from ionto.scripted import press, wait_for, wait_virtual_s
from ionto.simctl import VirtualUnit

from helpers import boots, host_session, ready, run_treatment, unit_file, wait_restart

pytestmark = pytest.mark.slow


def test_clock_kept_after_a_treatment_and_a_power_cut_loses_no_dose(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, accel=0) as vu:
        c = vu.ctl
        ready(c)
        cfg = config.defaults()
        cfg["presets"][0].update(target_ua=8000, ramp_up_s=10, ramp_down_s=5, reverse=False)
        now = int(time.time())
        put, clk = host_session(vu, ("config_put", json.dumps(cfg)), ("clock_set", now))
        assert put["ok"] and clk["new"] >= now
        assert c.eval("log.rtc_valid") is True
        # A treatment: the watchdog is armed from START and cannot be stopped.
        run_treatment(c)
        assert c.eval("_b.wdt is not None") is True
        t_before = c.eval("__import__('time').time()")
        # The next host session ends with a watchdog reset: the RTC restarts at 2021 on rp2,
        # and main.py puts the kept time back before anything is logged.
        host_session(vu, ("info",))
        st = c.state()["unit"]
        assert st["reset_cause"] == 3
        t_after = c.eval("__import__('time').time()")
        assert t_after >= t_before and c.eval("__import__('time').gmtime()[0]") >= 2026
        assert c.eval("log.rtc_valid") is True
        evs = R.read(unit_file(c, "events.log"))
        assert any(r["type"] == "text" and r["code"] == LS.L_CLOCK and "kept" in r["text"] for r in evs)
        boot = c.eval("log.boot")
        sums = [r for r in R.read(unit_file(c, "s%06d.sum" % c.eval("log.session")))]
        assert sums[0]["rtc_valid"] is True  # the treatment before was dated too

        # A treatment cut by a power loss.
        press(c, "START", "START")
        wait_for(c, "app.s.state == %d" % S.TREAT, timeout=120)
        n = c.eval("log.open_session")
        ops = c.state()["unit"]["flash"]["ops"]
        wait_virtual_s(c, 6)
        assert c.state()["unit"]["flash"]["ops"] == ops  # no flash write while current flows
        n_boots = boots(c)
        # Read in the simulator in one request, with the virtual instant they hold at: however
        # late the host sends the cut, the bound below is the unit's own time between the two.
        t0_us, dose0, treat0, sec0 = c.eval("[vclock.now_us(), R.g['app'].s.sup.dose_uas, "
                                            "R.g['app'].s.treat_ms // 1000, R.g['log']._sec]", scope="sim")
        cut_us = c.power_cut(after_ms=700)["power_cut_at_us"]
        flowed_s = (cut_us - t0_us) / 1e6
        wait_restart(c, n_boots)
        ready(c)
        assert c.eval("log.boot") == boot + 1
        assert c.state()["unit"]["reset_cause"] == 1
        recs = R.read(unit_file(c, "s%06d.sum" % n))
        assert [r["type"] for r in recs] == ["summary", "end"]
        end = recs[1]
        assert end["reason"] == LS.END_POWER_LOST
        # What flowed until the cut (flowed_s after dose0), to within the second in progress.
        assert dose0 - 8000 <= end["dose_uas"] <= dose0 + (flowed_s + 1) * 8000 * 1.01
        assert treat0 - 1 <= end["treat_s"] <= treat0 + flowed_s + 1
        samples = [x for r in R.read(unit_file(c, "s%06d.trc" % n)) if r["type"] == "samples" for x in r["samples"]]
        assert end["samples"] == len(samples) >= sec0 - 1
        assert max(x[1] for x in samples) > 7000
        # A power-on clears the watchdog scratch: the clock is not invented.
        assert c.eval("__import__('time').gmtime()[0]") == 2021
