"""`ionto flash`, `ionto status` and `ionto logs pull` on the emulated Pico, end to end, as on a
board: one chip through the whole story (booting it and deploying the firmware cost most of the
time, so the steps share it and run in order in one test).

A fresh (erased) chip: our frozen _boot.py formats it, `ionto flash` compiles and deploys the
firmware over the USB serial port's pseudo-terminal, verifies it and resets the chip (a watchdog
reset: the emulator restarts the chip, the board runs on); flashed again while the application
runs, it copies nothing and does not reset the chip; `ionto status` then reads the
firmware, self-test and storage from the unit. The nurse's buttons on the board run a short
session on the chip (START, confirm, the contact check, the ramp, STOP), followed on its status
lines; `ionto logs pull` then copies its log from the emulated flash into an archive, verified,
and `ionto logs list` shows it. The host tools hear the application's status lines from the
chip (a board's lines end "\r\r\n"), and a listen that hears nothing (the fresh chip has no
application) ends on the chip's own clock. The emulated chip runs several times slower than a
board while it works, so this takes a minute or two: slow.
"""
import os
import sqlite3
import subprocess
import sys

import pytest
import session as S

from ionto.pico import Pico

pytestmark = pytest.mark.slow


def _ionto(*args, timeout):
    return subprocess.run([sys.executable, "-m", "ionto.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_ionto_flash_status_and_logs_pull_on_the_emulated_pico(tmp_path):
    # Flash busy times off: they are realistic elsewhere (test_pico), here they only cost minutes.
    with Pico(tmp_path / "pico", fresh=True, register=True, flash_timing=False) as p:
        r = _ionto("flash", "--port", p.port, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "verified" in r.stdout and "after reboot" in r.stdout, r.stdout
        assert p.boots == 2  # the flash ended in one reset of the chip
        # Again, with the application running: its hashes prove it up to date; no reset.
        r = _ionto("flash", "--port", p.port, timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "already up to date, integrity ok" in r.stdout, r.stdout
        assert p.boots == 2
        r = _ionto("status", "--port", p.port, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        assert p.serial in out
        assert "intact" in out and "self-test  passed" in out, out
        assert "storage    flash" in out, out
        assert "state      IDLE" in out, out  # from the chip's status line, not "at REPL"

        # A short session: the unit on its own supply (no USB host: START allowed), the nurse's
        # buttons, followed on the application's status lines (@ST STATE ...).
        with p._lock:
            p.board.set_usb(False)
        p.wait_output(b"@ST IDLE", 300)
        p.press("start")
        p.wait_output(b"@ST CONFIRM", 300)
        p.press("start")
        p.wait_output(b"@ST RAMP_UP", 300)
        p.press("stop")
        p.wait_output(b"@ST STOPPED", 300)
        assert p.board.plant.current_ua(p.board.now_us()) < 100  # ramped down, output off

        db = tmp_path / "archive.sqlite"
        r = _ionto("logs", "pull", "--port", p.port, "--archive", str(db), timeout=900)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "1 session new" in r.stdout and "0 damaged records" in r.stdout, r.stdout
        con = sqlite3.connect(str(db))
        try:
            rows = con.execute("SELECT serial, end_reason, complete, n_samples FROM sessions").fetchall()
        finally:
            con.close()
        assert len(rows) == 1 and rows[0][:3] == (p.serial, S.END_STOP, 1), rows
        assert rows[0][3] >= 1, rows  # its trace came with it
        r = _ionto("logs", "list", "--archive", str(db), timeout=120)
        assert r.returncode == 0 and p.serial in r.stdout, r.stdout + r.stderr
