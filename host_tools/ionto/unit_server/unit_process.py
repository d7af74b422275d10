"""The unit itself: MicroPython's unix port running hw/sim/unit.py over the firmware, one process per
run of the unit, started again with the reset cause a board would see."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..shipped import FIRMWARE, SIM

BLOCK_SIZE = 4096
BLOCK_COUNT = 352  # 1408 KiB: the Pico's filesystem partition

PWRON_RESET = 1
WDT_RESET = 3

_CRASH_LIMIT = 5  # quick crashes in a row before the unit stays off


class UnitServerError(Exception):
    """A bad state folder or image, or no MicroPython: one line for the user."""


def micropython_exe():
    exe = Path(sys.executable).with_name("micropython")
    if exe.exists():
        return str(exe)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = Path(d) / "micropython"
        if p.exists():
            return str(p)
    raise UnitServerError("micropython executable not found (run `make venv`)")


def create_image(path):
    """A fully erased (0xFF) flash image, as a new chip."""
    blank = b"\xff" * BLOCK_SIZE
    with open(path, "wb") as f:
        for _ in range(BLOCK_COUNT):
            f.write(blank)


class UnitProcess:
    """Mixed into UnitServer: self.image, self.fifo_in/out, self.log, self.sticky are the server's."""

    # --- the unit process ----------------------------------------------------------------
    def spawn(self, cause):
        self._drain_fifos()
        cmd = [micropython_exe(), str(SIM / "unit.py"), "--flash", str(self.image),
               "--reset-cause", str(cause), "--ctl-in", str(self.fifo_in), "--ctl-out", str(self.fifo_out),
               "--scenario", self.scenario, "--accel", repr(float(self.accel)), "--serial", self.serial]
        if self.seed_from:
            cmd += ["--seed-from", str(self.seed_from)]
        if self.flash_worst_case:
            cmd.append("--flash-worst-case")
        env = dict(os.environ)
        env["MICROPYPATH"] = "%s:%s" % (SIM, FIRMWARE)
        # Its own process group: Ctrl-C at the terminal stops the server, which then stops
        # the unit; the unit also ends itself when its stdin closes.
        self.child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                      env=env, cwd=str(self.state), process_group=0)
        os.set_blocking(self.child.stdout.fileno(), False)
        os.set_blocking(self.child.stdin.fileno(), False)
        self.to_unit.clear()
        self.boots += 1
        self.off_reason = None
        self.started_at = time.monotonic()
        # The board outlives the MCU: give the new unit its scenario, faults and accel again.
        for c in self.sticky:
            self._relay(None, dict(c))

    def _drain_fifos(self):
        for fd in (self.ctl_w, self.ctl_r):
            try:
                while os.read(fd, 65536):
                    pass
            except BlockingIOError:
                pass
        self.ctl_rbuf = b""

    def _kill(self):
        c = self.child
        if c is None:
            return None
        if c.poll() is None:
            c.kill()
        c.wait()
        self._reap()
        return c.returncode

    def _reap(self):
        """The unit process has ended: collect its last output, fail what it left unanswered."""
        c = self.child
        self.child = None
        try:
            while True:
                b = os.read(c.stdout.fileno(), 65536)
                if not b:
                    break
                self._to_host(b)
        except (BlockingIOError, OSError):
            pass
        for f in (c.stdin, c.stdout):
            try:
                f.close()
            except OSError:
                pass
        self.last_exit = c.returncode
        for rid, (cl, their) in list(self.pending.items()):
            if cl is not None:
                self._reply(cl, {"ok": False, "error": "the unit reset (exit %s) before answering" % c.returncode}, their)
        self.pending.clear()
        self._drain_fifos()

    def _on_exit(self):
        rc = self.child.returncode
        self._reap()
        if rc == -signal.SIGUSR1:
            self._log("watchdog/machine.reset(): restarting with WDT_RESET")
            self.spawn(WDT_RESET)
        elif rc == -signal.SIGUSR2:
            self._log("power cut: restarting with PWRON_RESET")
            self.spawn(PWRON_RESET)
        elif rc == -signal.SIGALRM:
            self.off_reason = "machine.bootloader(): BOOTSEL mode; power_cycle to restart"
            self._log(self.off_reason)
        else:
            now = time.monotonic()
            self.crashes = [t for t in self.crashes if now - t < 10] + [now]
            if len(self.crashes) >= _CRASH_LIMIT:
                self.off_reason = "the unit crashed %d times in a row (exit %s): see %s" % (
                    len(self.crashes), rc, self.state / "unit.log")
                self._log(self.off_reason)
            else:
                self._log("the unit exited unexpectedly (exit %s): restarting with PWRON_RESET" % rc)
                time.sleep(0.2)
                self.spawn(PWRON_RESET)

    def power_cycle(self):
        self._kill()
        self.crashes = []
        self.spawn(PWRON_RESET)
