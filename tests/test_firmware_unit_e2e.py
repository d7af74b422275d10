"""The firmware on the real pseudo-terminal virtual unit: `ionto sim` runs unit.py with the
firmware bundle (firmware_build.build) on its flash, main.py starts at power-on, the nurse
starts a treatment through the control channel, and the host interrupts it with mpremote
(Ctrl-C). main.py's finally must leave the output off: enable low, no current.
"""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ionto import firmware_build
from ionto.scripted import press, wait_for
from ionto.simctl import VirtualUnit

pytestmark = pytest.mark.slow

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))


def test_ctrl_c_from_mpremote_mid_treatment_leaves_the_output_off(tmp_path):
    bundle = tmp_path / "fw"
    firmware_build.build(bundle)
    with VirtualUnit(seed_from=bundle, scenario="palms", accel=0) as vu:
        c = vu.ctl
        c.usb(host_present=False)  # isolated supply in the clinic: START is allowed
        wait_for(c, "app is not None and app.ticks > 50", timeout=60)
        assert c.eval("app.s.selftest_ok") is True
        press(c, "START")  # and let the press's debounce pass before the next
        assert c.eval("app.s.state") == 1  # CONFIRM
        press(c, "START")
        # Into the ramp with real current flowing.
        wait_for(c, "app.s.state in (3, 4) and app.s.actual_ua > 1500", timeout=120)
        st = c.state()
        assert st["enable"] == 1 and st["true_ua"] > 1_000
        # The host connects: mpremote interrupts main.py with Ctrl-C and runs its code.
        r = subprocess.run([MPREMOTE, "connect", vu.port, "resume", "exec", "import time\ntime.sleep_ms(200)\nprint('host in')"],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "host in" in r.stdout
        st = c.state()
        assert st["enable"] == 0
        assert st["true_ua"] == 0
        assert st["setpoint_duty"] == 0
