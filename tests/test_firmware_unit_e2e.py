"""The firmware on the real pseudo-terminal virtual unit: `ionto sim` runs unit.py with the
firmware bundle (firmware_build.build) on its flash, main.py starts at power-on, the nurse
starts a treatment through the control channel, and a host tries to interrupt it with
mpremote (Ctrl-C): ignored while the treatment runs; once it ended the host gets in and
main.py's finally leaves the output off: enable low, no current.
"""
import os
import subprocess
import sys
import time
import tty
from pathlib import Path

import pytest

from ionto.scripted import paced, press, wait_for, wait_virtual_s
from ionto.simctl import VirtualUnit

pytestmark = pytest.mark.slow

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))


def test_mpremote_cannot_cut_a_treatment_and_gets_in_once_it_ended(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, scenario="palms", accel=0) as vu:
        c = vu.ctl
        c.usb(host_present=False)  # isolated supply in the clinic: START is allowed
        wait_for(c, "app is not None and app.ticks > 50", timeout=60)
        assert c.eval("app.s.selftest_ok") is True
        with paced(c):  # CONFIRM's 30 s must not run out before the host sees it
            press(c, "START")  # and let the press's debounce pass before the next
            assert c.eval("app.s.state") == 1  # CONFIRM
            press(c, "START")
        # Into the ramp with real current flowing.
        wait_for(c, "app.s.state in (3, 4) and app.s.actual_ua > 1500", timeout=120)
        st = c.state()
        assert st["enable"] == 1 and st["true_ua"] > 1_000
        # A host breaks in as mpremote does (\r Ctrl-C Ctrl-C): ignored during a treatment (an
        # abrupt stop is a shock); the treatment carries on. (A whole mpremote would then send
        # its raw-REPL bytes too, which wait in the input for the REPL: `ionto` listens to the
        # status channel first and never sends them while a treatment runs.)
        fd = os.open(vu.port, os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            for _ in range(5):
                os.write(fd, b"\r\x03\x03")
                wait_virtual_s(c, 0.2)
        finally:
            os.close(fd)
        st = c.state()
        assert st["unit"]["state"] == "main" and st["enable"] == 1 and st["true_ua"] > 1_000
        # Once the nurse stopped it (ramped down, output off) the host gets in, and main.py's
        # finally leaves the output off.
        press(c, "STOP")
        wait_for(c, "app.s.state == 11", timeout=30)  # STOPPED
        r = subprocess.run([MPREMOTE, "connect", vu.port, "resume", "exec", "import time\ntime.sleep_ms(200)\nprint('host in')"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "host in" in r.stdout
        st = c.state()
        assert st["enable"] == 0
        assert st["true_ua"] == 0
        assert st["setpoint_duty"] == 0
