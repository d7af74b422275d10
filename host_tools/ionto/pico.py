"""`ionto pico`: the emulated Pico, the unit's own rp2 image on an emulated RP2040, on a pty.

    ionto pico [--state-dir .pico] [--scenario palms] [--fresh] [--no-usb-power]
    ionto pico --exec a.py,b.py [--json out.json] [--timeout-s 600]      (batch: raw REPL, then exit)

Beside the virtual unit (`ionto sim`: the firmware on the x86 unix port), this runs the image
hw/rp2/build.sh made (hw/rp2/image/firmware.uf2) on rp2040js (node hw/rp2/emu/pico.mjs), with
the reference board around it (hw/rp2/picoboard.py: the virtual unit's plant, INA219 and SSD1306
models). The chip's USB serial port appears on a pseudo-terminal, so mpremote and ionto reach
it as they reach a Pico; `ionto devices` lists it. Emulated time is the chip's: the plant moves
in it, and time.ticks_us() on the chip reads it (hw/rp2/README.md says what it means).

STATE/flash.img    the filesystem partition of the chip's flash (1408 KiB), kept across runs
STATE/serial       the chip's unique ID (its flash's), one per flash image
STATE/port, tty    the pseudo-terminal;  STATE/pico.log  the emulator's log
STATE/clock        the chip's time (board time, us), for host tools' waits (ports.unit_clock)

Python API (tests, benchmarks):

    with Pico(state_dir, usb_power=False) as p:      # boots, waits for the REPL
        out = p.exec("print(1)")                     # raw REPL; raises PicoError on an exception
        p.put("x.py", b"...")                        # a file on the chip's filesystem
        p.board.press("start")                       # the panel, in emulated time
        p.results, p.board.windows, p.emulated_s()
"""
import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from .pico_repl import PicoError, ReplHost
from .shipped import RP2
from .unit_server.usb import open_port

__all__ = ["Pico", "PicoError", "node_exe"]

EMU = RP2 / "emu"
IMAGE = RP2 / "image" / "firmware.uf2"
BOOTROM = EMU / "bootrom-b1.bin"
WATCHDOG_RESET = 3  # pico.mjs exit code: the watchdog (or machine.reset()) restarted the chip


def _board_module():
    from .fw import load

    return load("rp2", "picoboard")


def node_exe():
    exe = shutil.which("node") or shutil.which("nodejs")
    if not exe:
        raise PicoError("node not found: `make venv` installs it (apt-get install nodejs npm)")
    if not (EMU / "node_modules" / "rp2040js").is_dir():
        raise PicoError("the emulator's node package rp2040js is not installed: run `npm ci` in %s "
                        "(`make venv` in a checkout)" % EMU)
    return exe


class Pico(ReplHost):
    """One emulated Pico: chip process, board, and the USB serial bridged to a pty (the host's
    side of it, exec() and friends, in pico_repl.py)."""

    def __init__(self, state_dir=".pico", image=IMAGE, scenario="palms", usb_power=True, fresh=False,
                 flash_timing=True, log=None, register=False):
        self.state = Path(state_dir).resolve()
        self.image = Path(image)
        self.scenario = scenario
        self.usb_power = usb_power
        self.fresh = fresh
        self.flash_timing = flash_timing
        self.echo_log = log
        self.do_register = register
        self.child = None
        self.running = False
        self.boots = 0
        self.results = []  # @RESULT {...} lines of exec() runs
        self._thread = None
        self._lock = threading.Lock()
        self._to_host = bytearray()
        self._to_chip = bytearray()
        self._req_buf = b""
        self._reset = None  # (reason, scratch) for the next start, after a watchdog reset
        self.off_reason = None
        self.registered = None
        self._host_fd = None
        self._clock_fd = None
        self.clock_file = None

    # --- lifecycle ---------------------------------------------------------------------------
    def setup(self):
        pb = _board_module()
        st = self.state
        st.mkdir(parents=True, exist_ok=True)
        self.flash = st / "flash.img"
        if self.fresh and self.flash.exists():
            self.flash.unlink()
        if not self.flash.exists() or self.flash.stat().st_size != pb.FS_BYTES:
            self.flash.write_bytes(b"\xff" * pb.FS_BYTES)  # an erased chip: _boot.py formats it
        sn = st / "serial"
        if self.fresh or not sn.exists():
            sn.write_text(os.urandom(8).hex().upper() + "\n")
        self.serial = sn.read_text().strip()
        self.logf = open(st / "pico.log", "ab", buffering=0)
        self.board = pb.PicoBoard(self.scenario, usb_host_present=self.usb_power)
        self.chip_config = pb.chip_config()
        self.master, self.slave, self.port = open_port(st)
        self._rate_mark = None
        self.clock_file = st / "clock"
        self._clock_fd = os.open(str(self.clock_file), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._clock_at = 0.0
        self._tell_clock()
        if self.do_register:
            self._register(self.scale)  # until measured

    def _register(self, scale):
        """List this unit for `ionto devices` (the virtual units' registry), with how many times
        slower than a board it runs: host tools stretch their waits by it (link.time_scale)."""
        from .unit_server import registry_dir

        try:
            d = registry_dir()
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
            f = d / ("%d.json" % os.getpid())
            tmp = f.with_suffix(".tmp")
            tmp.write_text(json.dumps({"port": self.port, "state_dir": str(self.state), "serial": self.serial,
                                       "pid": os.getpid(), "kind": "emulated Pico", "time_scale": round(scale, 1),
                                       "clock": str(self.clock_file)}))
            os.replace(tmp, f)
            self.registered = f
        except OSError:
            pass

    def _measure_rate(self):
        # emulated seconds per wall second over the last few seconds -> the registered time scale
        now = time.monotonic()
        emu = self.board.now_us()
        if self._rate_mark is None:
            self._rate_mark = (now, emu)
            return
        t0, e0 = self._rate_mark
        if now - t0 >= 3.0:
            self._rate_mark = (now, emu)
            self.rate = (emu - e0) / 1e6 / (now - t0)
            # The slowest rate seen counts: asleep at its REPL the chip runs faster than real
            # time, but what a host waits for (a boot, the status line) is the busy chip's.
            # Until the chip has been seen busy (slower than real time), a conservative 20.
            if 0 < self.rate < 1:
                busy = min(200.0, 1.3 / self.rate)
                self.scale = busy if not self._seen_busy else max(self.scale, busy)
                self._seen_busy = True
            if self.do_register:
                self._register(self.scale)

    def _tell_clock(self):
        # The chip's time for host tools (ports.unit_clock), a few times a wall second: written
        # in place, twice on the line, so a reader that catches a write halfway sees the two differ.
        now = time.monotonic()
        fd = self._clock_fd
        if fd is not None and now - self._clock_at >= 0.02:
            self._clock_at = now
            us = self.board.now_us()
            try:
                os.pwrite(fd, b"%020d %020d\n" % (us, us), 0)
            except OSError:
                pass

    rate = None  # emulated s per wall s, measured while running
    scale = 20.0  # registered time scale: the most times slower than a board seen so far
    _seen_busy = False

    def _log(self, msg):
        line = "ionto pico: %s\n" % msg
        self.logf.write(line.encode())
        if self.echo_log:
            self.echo_log.write(line)
            self.echo_log.flush()

    def spawn(self):
        node = node_exe()
        host_r, self._host_w = os.pipe()  # host -> chip serial bytes
        self._req_r, req_w = os.pipe()  # chip -> board requests
        cmd = [node, str(EMU / "pico.mjs"), "--image", str(self.image), "--bootrom", str(BOOTROM),
               "--flash-file", str(self.flash), "--board", json.dumps(self.chip_config), "--serial", self.serial,
               "--fd-in", str(host_r), "--fd-req", str(req_w), "--flash-timing", "1" if self.flash_timing else "0"]
        if self._reset:
            cmd += ["--reset-reason", str(self._reset[0]), "--scratch", self._reset[1]]
            self._reset = None
        self.child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.logf,
                                      pass_fds=(host_r, req_w), cwd=str(EMU), process_group=0)
        os.close(host_r)
        os.close(req_w)
        os.set_blocking(self.child.stdout.fileno(), False)
        os.set_blocking(self._host_w, False)
        self._req_buf = b""
        self._to_chip.clear()
        self.board.ended = None
        self.boots += 1

    def _reap(self):
        c = self.child
        self.child = None
        for fd in (self._host_w, self._req_r):
            if fd >= 0:
                os.close(fd)
        self._host_w = self._req_r = -1
        for f in (c.stdin, c.stdout):
            try:
                f.close()
            except OSError:
                pass
        rc = c.wait()
        ended = self.board.ended
        if rc == WATCHDOG_RESET and ended and self.running:
            reason, _, scratch = ended[1].partition(" ")
            self._reset = (reason, scratch)
            self._log("watchdog reset: the chip restarts")
            self.board.chip_reset()
            self.spawn()
        elif self.running:  # not asked to stop: the emulator failed
            self.off_reason = "the emulator ended (exit %s): see %s" % (rc, self.state / "pico.log")
            self._log(self.off_reason)

    def start(self, wait_repl=True, timeout=120):
        self.setup()
        self.running = True
        self.spawn()
        self._thread = threading.Thread(target=self.serve, name="pico", daemon=True)
        self._thread.start()
        if wait_repl:
            self.wait_usb(timeout)
        return self

    def stop(self):
        # The chip may be waiting on the board for an answer: keep serving until it has written
        # its flash back and exited.
        self.running = False
        c = self.child
        if c is not None:
            c.send_signal(signal.SIGTERM)
            os.close(self._host_w)  # and the host side closes: the chip process ends either way
            self._host_w = -1
        if self._thread is not None:
            self._thread.join(20)
        c = self.child
        if c is not None:  # did not end: no flash write-back
            c.kill()
            self._reap()
        if self._host_fd is not None:
            os.close(self._host_fd)
            self._host_fd = None
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        fd, self._clock_fd = self._clock_fd, None
        if fd is not None:
            os.close(fd)
        for p in (self.state / "port", self.state / "tty", self.registered, self.clock_file):
            if p is not None:
                try:
                    p.unlink()
                except OSError:
                    pass
        self.logf.close()

    def __enter__(self):
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # --- the bridge: pty <-> chip serial, board requests -------------------------------------
    def serve(self):
        while self.running or self.child is not None:
            c = self.child
            if c is None:
                time.sleep(0.05)
                continue
            rl = [self.master, c.stdout.fileno(), self._req_r]
            wl = []
            if self._to_host:
                wl.append(self.master)
            if self._to_chip and self._host_w >= 0:
                wl.append(self._host_w)
            try:
                r, w, _ = select.select(rl, wl, [], 0.05)
            except InterruptedError:
                continue
            except (ValueError, OSError):  # a pipe closed under us: the chip process is ending
                r = w = []
            if self._req_r in r:
                self._board_requests()
            self._measure_rate()
            self._tell_clock()
            if c.stdout.fileno() in r:
                try:
                    b = os.read(c.stdout.fileno(), 65536)
                except BlockingIOError:
                    b = None
                if b:
                    self._to_host += b
                    if len(self._to_host) > 64 * 1024:  # nobody reading: drop the oldest, as USB CDC does
                        del self._to_host[: len(self._to_host) - 64 * 1024]
            if self.master in r:
                try:
                    self._to_chip += os.read(self.master, 65536)
                except (BlockingIOError, OSError):
                    pass
            for fd, buf in ((self.master, self._to_host), (self._host_w, self._to_chip)):
                if buf and fd >= 0:
                    try:
                        n = os.write(fd, buf[:4096])
                        del buf[:n]
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        if fd == self._host_w:
                            buf.clear()
            if c.poll() is not None:
                self._board_requests()
                self._reap()

    def _board_requests(self):
        try:
            b = os.read(self._req_r, 65536)
        except (BlockingIOError, OSError):
            return
        if not b:
            return
        self._req_buf += b
        replies = []
        with self._lock:
            while b"\n" in self._req_buf:
                line, self._req_buf = self._req_buf.split(b"\n", 1)
                rep = self.board.handle(line.decode("latin1"))
                if rep is not None:
                    replies.append(rep + "\n")
        if replies and self.child is not None:
            try:
                self.child.stdin.write("".join(replies).encode())
                self.child.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    # --- host side: what a test or a benchmark does over the pty ----------------------------
    def emulated_s(self):
        return self.board.chip_us / 1e6

    def press(self, button, ms=100):
        with self._lock:
            self.board.press(button, ms)

# --- the command ----------------------------------------------------------------------------------
def add_arguments(p):
    p.add_argument("--state-dir", default=".pico", help="where the flash image, port and log live (.pico)")
    p.add_argument("--scenario", default="palms", help="patient scenario of the plant (hw/sim/scenarios; palms)")
    p.add_argument("--fresh", action="store_true", help="start from an erased flash")
    p.add_argument("--image", default=str(IMAGE), help="the UF2 image to run (hw/rp2/image/firmware.uf2)")
    p.add_argument("--no-usb-power", action="store_true",
                   help="VBUS sense low: the unit is powered from its supply, as during a treatment")
    p.add_argument("--no-flash-timing", action="store_true", help="flash program/erase take no time")
    p.add_argument("--exec", metavar="A.py,B.py", help="batch: run each file over the raw REPL, then exit")
    p.add_argument("--json", metavar="OUT", help="batch: write @RESULT lines, measurement windows, times here")
    p.add_argument("--timeout-s", type=float, default=600, help="batch: wall-clock limit per file (600)")


def run(args):
    pico = Pico(args.state_dir, image=args.image, scenario=args.scenario, usb_power=not args.no_usb_power,
                fresh=args.fresh, flash_timing=not args.no_flash_timing, log=sys.stderr,
                register=not args.exec)

    def _term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)
    wall0 = time.monotonic()
    try:
        pico.start(wait_repl=bool(args.exec))
        if not args.exec:
            print(pico.port, flush=True)
            sys.stderr.write("ionto pico: emulated Pico on %s (mpremote connect %s); Ctrl-C stops\n"
                             % (pico.port, pico.port))
            while pico.running and (pico.child is not None or not pico.off_reason):
                time.sleep(0.2)
            if pico.off_reason:
                raise PicoError(pico.off_reason)
            return 0
        rc = 0
        for f in args.exec.split(","):
            try:
                pico.exec(Path(f).read_text(), timeout=args.timeout_s, echo=lambda s: (sys.stdout.write(s), sys.stdout.flush()))
            except PicoError as e:
                sys.stdout.write("\n--- %s: %s\n" % (f, e.message))
                rc = 1
                break
        if args.json:
            Path(args.json).write_text(json.dumps({"results": pico.results, "windows": pico.board.windows,
                                                   "emulated_s": pico.board.now_us() / 1e6,
                                                   "wall_s": time.monotonic() - wall0}, indent=1))
        return rc
    except KeyboardInterrupt:
        return 0
    finally:
        pico.stop()


def main(argv=None):
    p = argparse.ArgumentParser(prog="ionto pico", description="The emulated Pico on a pseudo-terminal.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
