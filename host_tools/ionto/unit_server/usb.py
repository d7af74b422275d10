"""The virtual unit's USB side: the pseudo-terminal a host opens, plugged and unplugged like the
cable, and the byte pumps between it and the unit process that never block the unit."""
import errno
import os
import tty

from .registry import register

_HOST_BUF_MAX = 64 * 1024  # unit output waiting for a host before the oldest is dropped


def _set_nonblock(fd):
    os.set_blocking(fd, False)


def open_port(state):
    """A new raw pseudo-terminal for the host, as a board enumerates on USB: (master, slave,
    its path), the path written to <state>/port and linked as <state>/tty. Shared by the
    virtual unit and the emulated Pico, so both appear to host tools alike."""
    master, slave = os.openpty()
    tty.setraw(slave)
    _set_nonblock(master)
    port = os.ttyname(slave)
    (state / "port").write_text(port + "\n")
    link = state / "tty"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(port)
    return master, slave, port


class UsbPort:
    """Mixed into UnitServer: self.state, self.serial, self.child, self.to_host, self.to_unit,
    self.counts, self.trigger, self.registered are the server's."""

    def _plug(self):
        """A new pseudo-terminal for the host, as a board enumerates on USB."""
        self.master, self.slave, self.port = open_port(self.state)

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
