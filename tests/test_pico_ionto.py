"""`ionto flash` onto the emulated Pico's REPL, then `ionto status`: end to end, as on a board.

A fresh (erased) chip: our frozen _boot.py formats it, `ionto flash` compiles and deploys the
firmware over the USB serial port's pseudo-terminal, verifies it and resets the chip (a watchdog
reset: the emulator restarts the chip, the board runs on); `ionto status` then reads the
firmware, self-test and storage from the unit. The emulated chip runs ~10x slower than a board
(host tools stretch their waits by the rate it registers), so this takes minutes: slow.
"""
import os
import subprocess
import sys

import pytest

from ionto.pico import Pico

pytestmark = pytest.mark.slow


def _ionto(*args, timeout):
    return subprocess.run([sys.executable, "-m", "ionto.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_ionto_flash_then_status_on_the_emulated_pico(tmp_path):
    # Flash busy times off: they are realistic elsewhere (test_pico), here they only cost minutes.
    with Pico(tmp_path / "pico", fresh=True, register=True, flash_timing=False) as p:
        r = _ionto("flash", "--port", p.port, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "verified" in r.stdout and "after reboot" in r.stdout, r.stdout
        assert p.boots == 2  # the flash ended in one reset of the chip
        r = _ionto("status", "--port", p.port, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        assert p.serial in out
        assert "intact" in out and "self-test  passed" in out, out
        assert "storage    flash" in out, out
