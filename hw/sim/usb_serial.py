# The USB serial line of the virtual unit as the firmware and the REPL see it (stdin/stdout
# of the unit's process, on the host's pseudo-terminal), and the control channel served
# beside it. Used by unit.py; MicroPython only.
#   - Ctrl-C: pump() reads stdin while Python code runs (vclock's poll hook) and raises
#     KeyboardInterrupt on the interrupt character, as the USB CDC interrupt does; other bytes
#     wait for the REPL.
#   - the control channel (JSON lines on the ctl FIFOs) is served from the same poll and
#     while the REPL waits for a key, so it always answers while the unit runs.
import sys

# The real clock, for pacing the REPL's idle time (MicroPython's idiom: an empty sys.path
# reaches the built-in; then forget it so `import time` finds hw/sim/time.py).
_p = sys.path
sys.path = []
import time as _rt  # noqa: E402

sys.path = _p
sys.modules.pop("time", None)
del _p

import io  # noqa: E402
import json  # noqa: E402
import select  # noqa: E402

import vclock  # noqa: E402
from micropython import const  # noqa: E402

_IDLE_POLL_MS = const(10)

_out = sys.stdout.buffer
_in = sys.stdin.buffer


class _Cooked(io.IOBase):
    # rp2's stdout for text: every "\n" leaves as "\r\n".
    def write(self, b):
        n = len(b)
        if isinstance(b, str):
            b = b.encode()
        else:
            b = bytes(b)
        if b"\n" in b:
            b = b.replace(b"\n", b"\r\n")
        _out.write(b)
        return n

    def ioctl(self, op, arg):
        return 0


class Serial:
    """The USB serial line as the firmware and the REPL see it, plus the control channel."""

    def __init__(self, ctl_in, ctl_out, handler, on_hangup):
        self.kbd = False
        self.intr_char = 3  # micropython.kbd_intr(); repl.execute sets 3 at each run
        self.cooked = _Cooked()
        self.buf = bytearray()
        self.rd = 0
        self._one = bytearray(1)
        self._busy = False
        self._ctl_in = ctl_in
        self._ctl_out = ctl_out
        self._handler = handler
        self._on_hangup = on_hangup  # the host side is gone: the unit ends
        self._p = select.poll()
        self._p.register(0, select.POLLIN)
        self._p_in = select.poll()
        self._p_in.register(0, select.POLLIN)
        if ctl_in is not None:
            self._p.register(ctl_in, select.POLLIN)
            self._p_ctl = select.poll()
            self._p_ctl.register(ctl_in, select.POLLIN)

    def write(self, b):
        _out.write(b)

    def getc(self):
        while self.rd >= len(self.buf):
            self.buf[:] = b""
            self.rd = 0
            self._idle()
        c = self.buf[self.rd]
        self.rd += 1
        return c

    def _idle(self):
        # Waiting for a key: real time passes, so virtual time does (timers, the watchdog).
        t0 = _rt.ticks_us()
        self.pump(_IDLE_POLL_MS)
        dt = _rt.ticks_diff(_rt.ticks_us(), t0)
        k = vclock.get_accel()
        vclock.advance(int(dt * k) if k > 0 else dt)

    def pump(self, timeout_ms=0):
        """Take in what the host sent; serve control requests. Ctrl-C raises while code runs."""
        if self._busy:
            return
        self._busy = True
        intr = False
        try:
            for obj, ev in self._p.poll(timeout_ms):
                if obj == 0:
                    intr = self._read_stdin()
                else:
                    self._serve_ctl()
        finally:
            self._busy = False
        if intr:
            raise KeyboardInterrupt

    def _read_stdin(self):
        intr = False
        one = self._one
        n = 0
        while n < 4096 and self._p_in.poll(0):
            if not _in.readinto(one):
                self._on_hangup()  # host side gone
            n += 1
            if one[0] == self.intr_char and self.kbd:
                intr = True  # consumed, as rp2's CDC rx callback does
            else:
                self.buf.append(one[0])
        return intr

    def _serve_ctl(self):
        n = 0
        while n < 16 and self._p_ctl.poll(0):
            n += 1
            line = self._ctl_in.readline()
            if not line:
                return
            rid = None
            try:
                cmd = json.loads(line)
                rid = cmd.get("id")
                reply = self._handler(cmd)
            except Exception as e:
                reply = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
            if rid is not None:
                reply["id"] = rid
            try:
                s = json.dumps(reply)
            except Exception as e:
                s = json.dumps({"ok": False, "id": rid, "error": "reply not JSON: %s" % e})
            self._ctl_out.write(s.encode() + b"\n")
