"""`ionto sim`: serve the virtual unit on a pseudo-terminal, as a Pico appears over USB.

    ionto sim [--state-dir .sim] [--scenario palms] [--accel 1] [--fresh] [--seed-from DIR | --no-seed]

The supervisor (this module, CPython) owns everything that outlives one run of the unit:

- STATE/flash.img   the unit's flash (1408 KiB LittleFS2), kept across restarts and runs
- STATE/port        the pseudo-terminal's path (also printed); STATE/tty links to it
- STATE/control.sock  the control channel (below); STATE/ctl-in, STATE/ctl-out the FIFOs
                    that relay it to the unit; STATE/unit.log the unit's stderr and our log

It runs `micropython hw/sim/unit.py` (MICROPYPATH=hw/sim:firmware) with its stdin/stdout on
pipes and forwards between them and the pty without ever blocking the unit: output nobody
reads piles up to _HOST_BUF_MAX and then the oldest is dropped, as USB CDC drops it. When the
unit resets it is started again with the matching reset cause (see hw/sim/unit.py):
SIGUSR1 (machine.reset(), watchdog) -> WDT_RESET 3; SIGUSR2 (power cut) -> PWRON_RESET 1;
SIGALRM (machine.bootloader()) -> stays off until power_cycle; anything else (a crash) ->
PWRON_RESET after a pause, and after _CRASH_LIMIT quick crashes it stays off.

Control channel: AF_UNIX stream socket, JSON lines, one reply line per request, in order.
A request is an object with "cmd" (and optionally "id", echoed). Replies have "ok".
  handled here:   power_cycle (the supply goes off and on: the unit is killed mid-whatever,
                  flash writes included, and restarts with PWRON_RESET), status, stop,
                  unplug / replug (the USB cable: the host's port vanishes; replug makes a new
                  one, named in the reply and STATE/port), interrupt {"after", "dir", "action",
                  "pid", "signal"} (TEST-ONLY: a signal to a host process, or an unplug, at an
                  exact byte crossing the port)
  in the unit:    ping, accel {"x"}, eval {"expr"} / {"code"} [+ "scope": "sim"] (TEST-ONLY
                  backdoor: evaluates in the unit's __main__), flash {"worst_case"},
                  fault {"kind": "power_cut", "at": N} (the N-th block write/erase from now),
                  fault {"kind": "wdt_starve"} (the firmware's loop hangs at its next clock step)
  on the board:   press, hold, release, scenario, fault (i2c_nack, i2c_stuck, sensor_stuck,
                  sensor_frozen, sensor_gain, sensor_noise, sensor_drift, output_stuck_on,
                  output_dead), clear_faults, usb, state, frame
                  (see hw/sim/simboard.py Board.handle)
The board outlives the MCU: the scenario, board faults, usb and accel set over the channel
are replayed into the unit after every restart. host_tools/ionto/simctl.py is the client.
"""
import argparse
import errno
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import tty
from pathlib import Path

from .shipped import FIRMWARE as FIRMWARE_DIR, SIM as SIM_DIR

BLOCK_SIZE = 4096
BLOCK_COUNT = 352  # 1408 KiB: the Pico's filesystem partition

PWRON_RESET = 1
WDT_RESET = 3

_HOST_BUF_MAX = 64 * 1024  # unit output waiting for a host before the oldest is dropped
_UNIT_BUF_MAX = 1024 * 1024  # host input waiting for the unit
_CRASH_LIMIT = 5  # quick crashes in a row before the unit stays off
_BOARD_STICKY = ("scenario", "usb")  # board settings replayed after a restart
_BOARD_FAULTS = ("i2c_nack", "i2c_stuck", "sensor_stuck", "sensor_frozen", "sensor_gain", "sensor_noise",
                 "sensor_drift", "output_stuck_on", "output_dead")


class SimError(Exception):
    pass


def micropython_exe():
    exe = Path(sys.executable).with_name("micropython")
    if exe.exists():
        return str(exe)
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = Path(d) / "micropython"
        if p.exists():
            return str(p)
    raise SimError("micropython executable not found (run `make venv`)")


def create_image(path):
    """A fully erased (0xFF) flash image, as a new chip."""
    blank = b"\xff" * BLOCK_SIZE
    with open(path, "wb") as f:
        for _ in range(BLOCK_COUNT):
            f.write(blank)


def _set_nonblock(fd):
    os.set_blocking(fd, False)


class _Client:
    def __init__(self, sock):
        self.sock = sock
        self.rbuf = b""
        self.wbuf = b""


class Supervisor:
    def __init__(self, state_dir=".sim", scenario="palms", accel=1.0, fresh=False, seed_from=None,
                 flash_worst_case=False, quiet=False):
        self.state = Path(state_dir).resolve()
        self.scenario = scenario
        self.accel = accel
        self.fresh = fresh
        self.seed_from = seed_from
        self.flash_worst_case = flash_worst_case
        self.quiet = quiet
        self.child = None
        self.to_host = bytearray()
        self.to_unit = bytearray()
        self.dropped = 0
        self.clients = []
        self.pending = {}  # our id -> (client, their id)
        self.next_id = 1
        self.sticky = []  # board commands replayed after a restart
        self.boots = 0
        self.last_exit = None
        self.crashes = []
        self.off_reason = None
        self.running = True
        self.lifeline = False
        self.trigger = None  # an armed interruption: {"dir", "left", "action", "pid", "signal"}
        self.counts = {"from_host": 0, "to_host": 0}  # bytes across the port since start
        self.master = self.slave = None
        self.registered = None

    # --- setup ---------------------------------------------------------------------------
    def setup(self):
        st = self.state
        st.mkdir(parents=True, exist_ok=True)
        self._lock(st)
        self.image = st / "flash.img"
        if self.fresh and self.image.exists():
            self.image.unlink()
        if not self.image.exists():
            create_image(self.image)
        elif self.image.stat().st_size != BLOCK_SIZE * BLOCK_COUNT:
            raise SimError("%s is not a %d-byte flash image (use --fresh)" % (self.image, BLOCK_SIZE * BLOCK_COUNT))
        # The unit's serial number (machine.unique_id, 8 bytes): one per flash image, so a
        # virtual unit keeps its identity across runs as a board does.
        sn = st / "serial"
        if self.fresh or not sn.exists():
            sn.write_text(os.urandom(8).hex().upper() + "\n")
        self.serial = sn.read_text().strip()
        self.log = open(st / "unit.log", "ab", buffering=0)
        # FIFOs: opened read-write here so neither end ever blocks on open and a dying unit
        # never gives us EOF.
        self.fifo_in = st / "ctl-in"
        self.fifo_out = st / "ctl-out"
        for p in (self.fifo_in, self.fifo_out):
            if p.exists() or p.is_symlink():
                p.unlink()
            os.mkfifo(p, 0o600)
        self.ctl_w = os.open(self.fifo_in, os.O_RDWR | os.O_NONBLOCK)
        self.ctl_r = os.open(self.fifo_out, os.O_RDWR | os.O_NONBLOCK)
        self.ctl_rbuf = b""
        # The pseudo-terminal. Our own slave fd stays open so the master never sees EIO
        # between host connections.
        self._plug()
        # The control socket.
        self.sock_path = st / "control.sock"
        if self.sock_path.exists() or self.sock_path.is_symlink():
            self.sock_path.unlink()
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(str(self.sock_path))
        self.lsock.listen(8)
        self.lsock.setblocking(False)
        self.registered = register(self.port, st, self.serial)

    def _plug(self):
        """A new pseudo-terminal for the host, as a board enumerates on USB."""
        st = self.state
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        _set_nonblock(self.master)
        self.port = os.ttyname(self.slave)
        (st / "port").write_text(self.port + "\n")
        link = st / "tty"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(self.port)

    def unplug(self):
        """The USB cable pulled: the host's port goes away (its reads and writes fail), what the
        unit prints is lost, and the unit itself runs on (it has its own supply)."""
        if self.master is None:
            return
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self.master = self.slave = None
        self.to_host.clear()
        if self.registered is not None:
            try:
                self.registered.unlink()
            except OSError:
                pass
            self.registered = None

    def replug(self):
        """The cable back in: a new port (its path is in STATE/port and the reply)."""
        if self.master is None:
            self._plug()
            self.registered = register(self.port, self.state, self.serial)
        return self.port

    def _count(self, direction, n):
        """Bytes crossing the port, for an armed interruption (the `interrupt` request)."""
        self.counts[direction] += n
        t = self.trigger
        if t is None or t["dir"] != direction:
            return
        t["left"] -= n
        if t["left"] > 0:
            return
        self.trigger = None
        self._log("interruption at its byte: %s" % t["action"])
        if t["action"] == "unplug":
            self.unplug()
        else:
            try:
                os.kill(int(t["pid"]), int(t["signal"]))
            except (ProcessLookupError, PermissionError, ValueError):
                pass

    def _lock(self, st):
        """One supervisor per state folder: a second would serve the same flash image as a
        second unit, and on exit remove the first one's port and control socket. The lock is
        the kernel's (flock), so a crashed supervisor never leaves it behind."""
        import fcntl

        from .errors import EXIT_BUSY, IontoError

        self.lock_fd = os.open(st / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                who = os.read(self.lock_fd, 200).decode(errors="replace").strip() or "?"
            except OSError:
                who = "?"
            os.close(self.lock_fd)
            port = st / "port"
            port = port.read_text().strip() if port.exists() else "?"
            raise IontoError(EXIT_BUSY, "%s is in use by another `ionto sim` (pid %s, port %s): stop that one first, "
                             "or give this one its own --state-dir" % (st, who, port))
        os.ftruncate(self.lock_fd, 0)
        os.write(self.lock_fd, b"%d\n" % os.getpid())

    def _log(self, msg):
        line = "ionto sim: %s\n" % msg
        self.log.write(line.encode())
        if not self.quiet:
            sys.stderr.write(line)
            sys.stderr.flush()

    # --- the unit process ----------------------------------------------------------------
    def spawn(self, cause):
        self._drain_fifos()
        cmd = [micropython_exe(), str(SIM_DIR / "unit.py"), "--flash", str(self.image),
               "--reset-cause", str(cause), "--ctl-in", str(self.fifo_in), "--ctl-out", str(self.fifo_out),
               "--scenario", self.scenario, "--accel", repr(float(self.accel)), "--serial", self.serial]
        if self.seed_from:
            cmd += ["--seed-from", str(self.seed_from)]
        if self.flash_worst_case:
            cmd.append("--flash-worst-case")
        env = dict(os.environ)
        env["MICROPYPATH"] = "%s:%s" % (SIM_DIR, FIRMWARE_DIR)
        # Its own process group: Ctrl-C at the terminal stops the supervisor, which then stops
        # the unit; the unit also ends itself when its stdin closes.
        self.child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                      env=env, cwd=str(self.state), process_group=0)
        _set_nonblock(self.child.stdout.fileno())
        _set_nonblock(self.child.stdin.fileno())
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

    # --- data paths ----------------------------------------------------------------------
    def _to_host(self, b):
        self.to_host += b
        over = len(self.to_host) - _HOST_BUF_MAX
        if over > 0:
            del self.to_host[:over]  # nobody reading: the oldest output is lost
            self.dropped += over

    def _pump_host_out(self):
        if self.master is None:
            self.to_host.clear()  # no host on the cable: USB CDC drops it
            return
        while self.to_host:
            try:
                n = os.write(self.master, self.to_host[:4096])
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.EIO:
                    return
                raise
            del self.to_host[:n]
            self._count("to_host", n)

    def _pump_unit_in(self):
        c = self.child
        while self.to_unit and c is not None:
            try:
                n = os.write(c.stdin.fileno(), self.to_unit[:65536])
            except (BlockingIOError, InterruptedError):
                return
            except BrokenPipeError:
                self.to_unit.clear()
                return
            del self.to_unit[:n]

    # --- control channel -----------------------------------------------------------------
    def _reply(self, client, reply, their_id=None):
        reply.pop("id", None)
        if their_id is not None:
            reply["id"] = their_id
        client.wbuf += json.dumps(reply).encode() + b"\n"
        self._flush_client(client)

    def _flush_client(self, client):
        try:
            while client.wbuf:
                n = client.sock.send(client.wbuf)
                client.wbuf = client.wbuf[n:]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop_client(client)

    def _drop_client(self, client):
        if client in self.clients:
            self.clients.remove(client)
        for rid, (cl, their) in list(self.pending.items()):
            if cl is client:
                self.pending[rid] = (None, None)
        try:
            client.sock.close()
        except OSError:
            pass

    def _relay(self, client, cmd, their_id=None):
        rid = self.next_id
        self.next_id += 1
        cmd["id"] = rid
        self.pending[rid] = (client, their_id)
        data = json.dumps(cmd).encode() + b"\n"
        try:
            os.write(self.ctl_w, data)
        except BlockingIOError:
            del self.pending[rid]
            if client is not None:
                self._reply(client, {"ok": False, "error": "the unit is not reading its control channel"}, their_id)

    def _remember(self, cmd):
        c = cmd.get("cmd")
        kind = cmd.get("kind")
        if c in _BOARD_STICKY or c == "accel":
            self.sticky = [s for s in self.sticky if s.get("cmd") != c]
            self.sticky.append(cmd)
            if c == "scenario" and isinstance(cmd.get("name"), str):
                self.scenario = cmd["name"]
            if c == "accel":
                self.accel = float(cmd.get("x", self.accel))
        elif c == "fault" and kind in _BOARD_FAULTS:
            self.sticky.append(cmd)
        elif c == "clear_faults" or (c == "fault" and kind == "clear"):
            self.sticky = [s for s in self.sticky if s.get("cmd") != "fault"]

    def _request(self, client, line):
        try:
            cmd = json.loads(line)
            if not isinstance(cmd, dict) or not isinstance(cmd.get("cmd"), str):
                raise ValueError("a request is a JSON object with a \"cmd\" string")
        except ValueError as e:
            self._reply(client, {"ok": False, "error": "bad request: %s" % e})
            return
        their = cmd.pop("id", None)
        c = cmd["cmd"]
        if c == "power_cycle":
            self.power_cycle()
            self._reply(client, {"ok": True, "boots": self.boots}, their)
        elif c == "status":
            self._reply(client, self.status(), their)
        elif c == "unplug":
            self.unplug()
            self._reply(client, {"ok": True}, their)
        elif c == "replug":
            self._reply(client, {"ok": True, "port": self.replug()}, their)
        elif c == "interrupt":
            # TEST-ONLY: after `after` more bytes cross the port in direction `dir` (from_host or
            # to_host), send `signal` to `pid`, or unplug the cable (action "unplug"). At the
            # exact byte, so an interruption test needs no timing of its own.
            if cmd.get("action") == "none":
                self.trigger = None
                self._reply(client, {"ok": True}, their)
                return
            try:
                self.trigger = {"dir": cmd.get("dir", "from_host"), "left": max(1, int(cmd.get("after", 1))),
                                "action": cmd.get("action", "signal"), "pid": cmd.get("pid"),
                                "signal": int(cmd.get("signal", signal.SIGINT))}
                if self.trigger["dir"] not in ("from_host", "to_host"):
                    raise ValueError("dir is from_host or to_host")
                self._reply(client, {"ok": True}, their)
            except (TypeError, ValueError) as e:
                self.trigger = None
                self._reply(client, {"ok": False, "error": "interrupt: %s" % e}, their)
        elif c == "stop":
            self._reply(client, {"ok": True}, their)
            self.running = False
        elif self.child is None:
            self._reply(client, {"ok": False, "error": "the unit is off: %s" % self.off_reason}, their)
        else:
            self._remember(dict(cmd))
            self._relay(client, cmd, their)

    def status(self):
        return {"ok": True, "port": self.port, "state_dir": str(self.state), "pid": os.getpid(),
                "unit_pid": self.child.pid if self.child else None, "running": self.child is not None,
                "off_reason": self.off_reason, "boots": self.boots, "last_exit": self.last_exit,
                "output_dropped": self.dropped, "plugged": self.master is not None,
                "bytes": dict(self.counts)}

    def _ctl_replies(self):
        try:
            while True:
                b = os.read(self.ctl_r, 65536)
                if not b:
                    break
                self.ctl_rbuf += b
        except BlockingIOError:
            pass
        while b"\n" in self.ctl_rbuf:
            line, self.ctl_rbuf = self.ctl_rbuf.split(b"\n", 1)
            try:
                reply = json.loads(line)
            except ValueError:
                self._log("garbled control reply: %r" % line[:200])
                continue
            rid = reply.pop("id", None)
            client, their = self.pending.pop(rid, (None, None))
            if client is not None:
                self._reply(client, reply, their)

    # --- main loop -----------------------------------------------------------------------
    def serve(self):
        while self.running:
            c = self.child
            rl = [self.ctl_r, self.lsock] + [cl.sock for cl in self.clients]
            if self.master is not None:
                rl.append(self.master)
            if self.lifeline:
                rl.append(0)
            wl = [cl.sock for cl in self.clients if cl.wbuf]
            if c is not None:
                rl.append(c.stdout.fileno())
                if self.to_unit:
                    wl.append(c.stdin.fileno())
            if self.to_host and self.master is not None:
                wl.append(self.master)
            try:
                r, w, _ = select.select(rl, wl, [], 0.05)
            except InterruptedError:
                continue
            if self.lifeline and 0 in r and not os.read(0, 4096):
                self.running = False  # whoever started us is gone
            if self.master is not None and self.master in r:
                try:
                    b = os.read(self.master, 65536)
                    if len(self.to_unit) < _UNIT_BUF_MAX:
                        self.to_unit += b
                    self._count("from_host", len(b))
                except (BlockingIOError, OSError):
                    pass
            if c is not None and c.stdout.fileno() in r:
                try:
                    b = os.read(c.stdout.fileno(), 65536)
                    if b:
                        self._to_host(b)
                except BlockingIOError:
                    pass
            self._pump_host_out()
            self._pump_unit_in()
            if self.ctl_r in r:
                self._ctl_replies()
            if self.lsock in r:
                try:
                    s, _ = self.lsock.accept()
                    s.setblocking(False)
                    self.clients.append(_Client(s))
                except BlockingIOError:
                    pass
            for cl in list(self.clients):
                if cl.sock in w:
                    self._flush_client(cl)
                if cl.sock in r:
                    try:
                        b = cl.sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        b = b""
                    if not b:
                        self._drop_client(cl)
                        continue
                    cl.rbuf += b
                    while b"\n" in cl.rbuf and cl in self.clients:
                        line, cl.rbuf = cl.rbuf.split(b"\n", 1)
                        if line.strip():
                            self._request(cl, line)
            if self.child is not None and self.child.poll() is not None:
                self._ctl_replies()
                self._on_exit()

    def close(self):
        self._kill()
        for cl in list(self.clients):
            self._drop_client(cl)
        for fd in (self.master, self.slave, self.ctl_w, self.ctl_r):
            if fd is None:
                continue
            try:
                os.close(fd)
            except OSError:
                pass
        self.lsock.close()
        for p in (self.sock_path, self.state / "port", self.state / "tty", getattr(self, "registered", None)):
            if p is None:
                continue
            try:
                p.unlink()
            except OSError:
                pass
        self.log.close()


def registry_dir():
    """Where running virtual units register themselves for `ionto devices` (one JSON file
    each: port, state_dir, serial, pid). IONTO_SIM_REGISTRY overrides it (tests)."""
    d = os.environ.get("IONTO_SIM_REGISTRY")
    return Path(d) if d else Path("/tmp") / ("ionto-sims-%d" % os.getuid())


def register(port, state_dir, serial):
    d = registry_dir()
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        f = d / ("%d.json" % os.getpid())
        f.write_text(json.dumps({"port": port, "state_dir": str(state_dir), "serial": serial, "pid": os.getpid()}))
        return f
    except OSError:
        return None  # listing is a convenience: a unit without an entry still serves its port


def registered():
    """Live virtual units: [{"port", "state_dir", "serial", "pid"}] (stale entries dropped)."""
    out = []
    d = registry_dir()
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.json")):
        try:
            e = json.loads(f.read_text())
            os.kill(int(e["pid"]), 0)
        except ProcessLookupError:
            try:
                f.unlink()
            except OSError:
                pass
            continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if os.path.exists(e.get("port", "")):
            out.append(e)
    return out


def add_arguments(p):
    p.add_argument("--state-dir", default=".sim", help="where the flash image, port and control socket live (.sim)")
    p.add_argument("--scenario", default="palms", help="patient scenario (hw/sim/scenarios; palms)")
    p.add_argument("--accel", type=float, default=1.0, help="virtual time per real time; 0 = as fast as possible (1)")
    p.add_argument("--fresh", action="store_true", help="start from a blank (erased) flash image")
    p.add_argument("--seed-from", metavar="DIR", help="copy DIR's files into the flash if /main.py is absent "
                   "(default: firmware/ with its manifest, built into STATE/firmware-bundle)")
    p.add_argument("--no-seed", action="store_true", help="never copy files into the flash")
    p.add_argument("--flash-worst-case", action="store_true", help="charge datasheet worst-case program/erase times")
    p.add_argument("--quiet", action="store_true", help="log restarts only to STATE/unit.log")
    p.add_argument("--stdin-lifeline", action="store_true",
                   help="stop when stdin closes (a parent that starts us holds its other end)")
    p.add_argument("--panel", action="store_true", help="also serve the front panel in a browser (ionto panel)")
    from .panel import add_panel_arguments

    add_panel_arguments(p)


def run(args):
    from .errors import EXIT_USAGE, IontoError

    try:
        return _run(args)
    except SimError as e:  # a bad state folder or image: one line, exit 2
        raise IontoError(EXIT_USAGE, str(e))


def _run(args):
    seed = None
    if not args.no_seed:
        if args.seed_from:
            seed = Path(args.seed_from).resolve()
            if not seed.is_dir():
                raise SimError("--seed-from %s: not a directory" % args.seed_from)
        elif (FIRMWARE_DIR / "main.py").exists():
            # The firmware as a deployment would put it on a board: files plus the manifest
            # the unit's self-test checks (a bare copy would fail it and refuse treatment).
            from . import firmware_build

            seed = Path(args.state_dir).resolve() / "firmware-bundle"
            firmware_build.build(seed)
    sup = Supervisor(args.state_dir, args.scenario, args.accel, args.fresh, seed, args.flash_worst_case, args.quiet)

    def _term(signum, frame):
        sup.running = False

    sup.lifeline = args.stdin_lifeline
    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)
    sup.setup()
    try:
        sup.spawn(PWRON_RESET)
        print(sup.port, flush=True)
        if not args.quiet:
            sys.stderr.write("ionto sim: virtual unit on %s (mpremote connect %s); control socket %s; Ctrl-C stops\n"
                             % (sup.port, sup.port, sup.sock_path))
        panel = None
        if args.panel:
            from .panel import start_panel

            panel = start_panel(args, sup.state, unplug_usb=True)
        try:
            sup.serve()
        except KeyboardInterrupt:
            pass
        finally:
            if panel is not None:
                panel.stop(unit_going=True)
    finally:
        sup.close()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="ionto sim", description="Serve the virtual unit on a pseudo-terminal.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
