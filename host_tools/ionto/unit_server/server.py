"""UnitServer: one virtual unit's state folder (flash image, serial number, port, control socket,
log) and the loop that moves bytes between the host's pty, the unit process and the control
clients without ever blocking the unit."""
import os
import select
import socket
import sys
from pathlib import Path

from .control import ControlChannel, _Client
from .registry import register
from .unit_process import BLOCK_COUNT, BLOCK_SIZE, UnitProcess, UnitServerError, create_image  # noqa: F401
from .usb import UsbPort

_UNIT_BUF_MAX = 1024 * 1024  # host input waiting for the unit


class UnitServer(UnitProcess, UsbPort, ControlChannel):
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
            raise UnitServerError("%s is not a %d-byte flash image (use --fresh)" % (self.image, BLOCK_SIZE * BLOCK_COUNT))
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

    def _lock(self, st):
        """One server per state folder: a second would serve the same flash image as a second
        unit, and on exit remove the first one's port and control socket. The lock is the
        kernel's (flock), so a crashed server never leaves it behind."""
        import fcntl

        from ..errors import EXIT_BUSY, IontoError

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
