"""The one adapter between `ionto` and mpremote: a unit on a serial port.

mpremote's transport API is marked unstable, so nothing else in ionto imports mpremote: when a
new mpremote changes it, this file is the one to fix (pyproject.toml pins the version).

    from ionto.link import Link, resolve_port, find_units

    with Link.open(port) as u:          # None: the only unit connected (IONTO_PORT, else auto)
        st = u.listen(1.5)              # read-only: the status channel (@ST/@EV/@ID lines)
        u.enter()                       # refuses while treating; Ctrl-C; raw REPL, no soft reset
        data = u.read_file("/log/s000001.trc")
    # leaving after enter(): raw REPL exited and the unit restarted, so main.py runs again (a soft
    # reboot; one hard reset instead when a treatment armed the watchdog; the next boot is
    # logged 'after a host session')

What mpremote lacks and this adds:
- The status channel. The firmware prints `@ST ...` once a second, `@EV ...` per session event
  and `@ID serial version` every few seconds (firmware/app.py). Listening never sends a byte,
  so it cannot disturb a treatment; every command that needs the REPL listens first and refuses
  (EXIT_TREATING) without sending anything while a treatment runs. The firmware also ignores
  Ctrl-C while treating, so a race cannot cut a treatment short either.
- Bulk, verified file transfer. mpremote's `fs cp` from a unit reads one byte per call; here a
  file comes as base64 lines of 3 KiB (one exec for the whole file) followed by its size and
  CRC32, checked on the host. Writes go in 4 KiB chunks, several files per round trip, to
  temporary files, which are read back (size + CRC32) and only then renamed over the targets,
  so an interrupted copy never leaves half a file.
- Errors in words, with the exit codes of errors.py, for a missing, busy or silent unit.
"""
import binascii
import json
import os
import re
import sys
import time
import zlib

try:
    from termios import error as _TermiosError
except ImportError:  # not on a POSIX host
    _TermiosError = OSError

# What a port that went away raises: OSError (pyserial's SerialException is one) or, from
# tcdrain/tcsetattr on a hung-up terminal, termios.error (which is not).
_PORT_ERRORS = (OSError, _TermiosError)

from .errors import (EXIT_AMBIGUOUS, EXIT_BUSY, EXIT_NO_DEVICE, EXIT_TREATING, EXIT_UNIT, IontoError)

BAUD = 115200
IDLE_STATES = ("IDLE", "DONE", "STOPPED", "FAULT")  # session.STATE_NAMES
# USB IDs a MicroPython board enumerates with: Raspberry Pi (rp2 MicroPython 0x0005) and
# MicroPython's own VID.
USB_IDS = ((0x2E8A, None), (0xF055, None))

_READ_CHUNK = 3072  # bytes per base64 line from the unit (4 KiB of text)
_WRITE_CHUNK = 4096  # bytes per write call on the unit
_BATCH_TEXT = 16384  # source text per REPL round trip when writing (several chunks, several files)
_LINE = re.compile(rb"@(ST|EV|ID) ([^\r\n]*)\r?\n")
# The application's status line at the start of a line: seen inside a REPL answer, it means the
# unit restarted (power lost, reset) and its application runs again.
_APP = re.compile(rb"(?:^|\n)@(?:ST|ID) [A-Z0-9]")
_BACK_S = 8.0  # after giving the unit back: how long its status line may take to return
# Every exec renews the unit's lease on the host session (firmware/board.py host_lease): its
# deadline plus this margin. A unit whose host vanished restarts its application after that.
_LEASE_MARGIN_S = 10
_REPL_LEASE_S = 120  # firmware/main.py: the lease a host's Ctrl-C starts, before any command renews it
_LEASE = "try:\n import board as _bd\n _bd.host_lease(%d)\nexcept Exception:\n pass\n"


class _Restarted(Exception):
    """The unit's application spoke where the REPL should have: it restarted by itself."""


def _oserr(e):
    """Why a port failed, in the user's words (pyserial's are about file descriptors)."""
    text = str(e)
    if getattr(e, "errno", None) in (5, 6, 19) or "returned no data" in text or "Input/output" in text:
        return "cable unplugged or unit powered off"
    return getattr(e, "strerror", None) or text or type(e).__name__


# --- the status channel ------------------------------------------------------------------
class Status:
    """One `@ST` line: STATE time_left_s target_ua set_ua actual_ua polarity fault limited_ua mv
    [dose_uas session]. Older firmware gives the first nine fields only."""

    FIELDS = ("time_left_s", "target_ua", "set_ua", "actual_ua", "polarity", "fault", "limited_ua", "mv",
              "dose_uas", "session")

    def __init__(self, text, at=None):
        w = text.split()
        # The status line writes a state as one word (RAMP_UP); the user reads it as the unit's
        # display and logs write it (RAMP UP), in every output: words, JSON and CSV.
        self.state = w[0].replace("_", " ")
        self.at = time.monotonic() if at is None else at
        for i, name in enumerate(self.FIELDS):
            try:
                v = int(w[1 + i])
            except (IndexError, ValueError):
                v = None
            setattr(self, name, v)

    @property
    def treating(self):
        return self.state not in IDLE_STATES

    def as_dict(self):
        d = {"state": self.state}
        for n in self.FIELDS:
            d[n] = getattr(self, n)
        return d

    def __repr__(self):
        return "Status(%s)" % self.as_dict()


def parse_line(line):
    """('ST', Status) | ('EV', dict) | ('ID', dict) | None for one status-channel line (str)."""
    m = _LINE.match(line.encode() if isinstance(line, str) else line)
    if m is None:
        return None
    kind = m.group(1).decode()
    text = m.group(2).decode(errors="replace")
    try:
        if kind == "ST":
            return kind, Status(text)
        w = text.split()
        if kind == "EV":
            return kind, {"ticks": int(w[0]), "name": w[1], "a": int(w[2]), "b": int(w[3])}
        # Serial numbers are written in capitals everywhere (hostcmd, the archive, `ionto devices`).
        return kind, {"serial": w[0].upper(), "version": w[1] if len(w) > 1 else "?"}
    except (IndexError, ValueError):
        return None


# --- finding units ---------------------------------------------------------------------------
class UnitPort:
    def __init__(self, device, kind, serial=None, description=""):
        self.device = device
        self.kind = kind
        self.serial = serial
        self.description = description

    def __repr__(self):
        return "UnitPort(%r, %r, %r)" % (self.device, self.kind, self.serial)


def find_units(include_virtual=True):
    """MicroPython boards on USB (by USB vendor ID) and running virtual units (`ionto sim`)."""
    out = []
    try:
        from serial.tools import list_ports

        for p in sorted(list_ports.comports(), key=lambda p: p.device):
            if any(p.vid == vid and (pid is None or p.pid == pid) for vid, pid in USB_IDS):
                out.append(UnitPort(p.device, "usb", p.serial_number, p.description or ""))
    except Exception:  # no USB enumeration on this host: virtual units can still be listed
        pass
    if include_virtual:
        from .unit_server import registered

        for e in registered():
            out.append(UnitPort(e["port"], "virtual", e.get("serial"), "ionto sim in %s" % e.get("state_dir")))
    return out


def time_scale(port):
    """How many times slower than a board the unit on `port` runs: an emulated Pico (`ionto
    pico`) registers the rate it measures; boards and the virtual unit are 1. Every wait for the
    unit's answer is stretched by it, so the same commands work on a slow target."""
    try:
        from .unit_server import registered

        real = os.path.realpath(port)
        for e in registered():
            if os.path.realpath(e.get("port", "")) == real:
                return max(1.0, float(e.get("time_scale", 1.0)))
    except (OSError, ValueError, TypeError):
        pass
    return 1.0


def resolve_port(port=None):
    """The port to use: --port, else IONTO_PORT, else the only unit connected."""
    port = port or os.environ.get("IONTO_PORT")
    if port:
        return port
    units = find_units()
    if not units:
        raise IontoError(EXIT_NO_DEVICE, "no unit found: plug the unit in over USB (or start `ionto sim`), "
                         "or name its port with --port")
    if len(units) > 1:
        raise IontoError(EXIT_AMBIGUOUS, "%d units connected (%s): choose one with --port"
                         % (len(units), ", ".join(u.device for u in units)))
    return units[0].device


# --- progress ----------------------------------------------------------------------------------
class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total, label, stream=None):
        self.total = max(1, int(total))
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def __call__(self, done, total=None):
        if total:
            self.total = max(1, int(total))
        self.done = done
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write("\r%-24s [%-30s] %3d%%" % (self.label[:24], bar, frac * 100))
        self.stream.flush()

    def advance(self, n=1):
        self(self.done + n)

    def close(self):
        if self.live:
            self.stream.write("\r" + " " * 64 + "\r")
            self.stream.flush()


# --- the link ----------------------------------------------------------------------------------
def _transport_errors():
    from mpremote.transport import TransportError

    return TransportError


class _Serial:
    """The transport's serial port with a push-back buffer, so bulk reads here can return
    what they read past their answer to mpremote, which reads the same port."""

    def __init__(self, ser):
        self._ser = ser
        self._back = b""

    def unread(self, data):
        self._back = bytes(data) + self._back

    def read(self, n=1):
        if self._back:
            b, self._back = self._back[:n], self._back[n:]
            return b
        return self._ser.read(n)

    def inWaiting(self):
        return len(self._back) + self._ser.inWaiting()

    @property
    def in_waiting(self):
        return self.inWaiting()

    def __getattr__(self, name):
        return getattr(self._ser, name)

    def __setattr__(self, name, value):
        if name in ("_ser", "_back"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._ser, name, value)


class Link:
    """One unit on one serial port (a Pico's USB CDC, or the virtual unit's pty)."""

    def __init__(self, port, transport):
        self.port = port
        self.t = transport
        transport.serial = _Serial(transport.serial)
        self.ser = transport.serial
        self.status = None  # last Status seen
        self.identity = None  # last @ID seen: {"serial", "version"}
        self.events = []  # @EV dicts seen
        self.in_repl = False  # at the raw REPL's prompt, ours
        self.touched = False  # we sent what stops main.py: leaving must restart it
        self.gone = False  # the port went away (cable unplugged, unit powered off)
        self.restarted = False  # the unit restarted by itself during a command
        self.left = None  # how close() left the unit, in words (after an interruption or error)
        self._busy = False  # a command is on its way: its answer may still be coming
        self._any = False  # anything at all came from the port
        self._paste = None  # raw-paste mode: None untried, True/False
        self._quick_close = True  # a clean leave does not wait for the status line
        self._lease_s = _LEASE_MARGIN_S + 30
        self._buf = b""
        self.scale = 1.0  # time_scale(port): waits are stretched on a slow (emulated) unit
        self._deflate = None  # can the unit inflate zlib streams (its `deflate` module)?
        transport.serial.timeout = 0.05

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, port=None):
        port = resolve_port(port)
        if not os.path.exists(port):
            raise IontoError(EXIT_NO_DEVICE, "no device at %s: is the unit plugged in (or `ionto sim` running)?" % port)
        if not os.access(port, os.R_OK | os.W_OK):
            raise IontoError(EXIT_BUSY, "permission denied on %s: add your user to the port's group "
                             "(dialout or uucp) and log in again" % port)
        import serial

        # SerialTransport reports every open failure as "failed to access": probe first for why.
        try:
            serial.Serial(port, BAUD, exclusive=True).close()
        except serial.SerialException as e:
            text = str(e).lower()
            if "lock" in text or "busy" in text or "resource temporarily" in text:
                raise IontoError(EXIT_BUSY, "%s is busy: close the other program using it (mpremote, a monitor, "
                                 "a serial terminal)" % port)
            if "permission" in text:
                raise IontoError(EXIT_BUSY, "permission denied on %s: add your user to the dialout group" % port)
            raise IontoError(EXIT_NO_DEVICE, "cannot open %s: %s" % (port, getattr(e, "strerror", None) or e))
        from mpremote.transport_serial import SerialTransport

        try:
            t = SerialTransport(port, baudrate=BAUD, exclusive=True)
        except _transport_errors() as e:
            raise IontoError(EXIT_BUSY, "cannot open %s: %s" % (port, e))
        u = cls(port, t)
        from .interrupt import work

        work.unit = "the unit on %s was not disturbed (nothing was sent to it)" % port
        u.scale = time_scale(port)
        u._drain()
        return u

    def _drain(self, quiet_s=0.05, max_s=0.5):
        """Drop what the port held from before we opened it (a virtual unit keeps up to 64 KiB
        for a host that is not there): a stale IDLE must never pass for the unit's state now.
        The backlog arrives at once in large reads; it has passed when the port goes quiet or
        only a line or two trickles in (a unit running flat out prints without pause)."""
        old = self.ser.timeout
        self.ser.timeout = quiet_s
        end = time.monotonic() + max_s
        try:
            while time.monotonic() < end:
                got = self.ser.read(65536)
                if len(got) < 256:
                    break
        finally:
            self.ser.timeout = old

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self, restart=True):
        """Leave the unit as found: out of the raw REPL and, if we stopped main.py, restart it so
        the application (and the nurse's buttons) runs again: a soft reboot, or one hard reset
        when a treatment armed the watchdog (hostcmd.host_done says which).

        This also runs when the command was cut short (Ctrl-C, SIGTERM, a closed terminal, an
        error, the unit restarting under us): then the unit may be mid-command, so it is
        interrupted first (Ctrl-C) and the raw REPL entered afresh; the application's return is
        confirmed on the status line. Signals wait until this is done (interrupt.deferred), and
        every wait here has a deadline. The outcome, in words, goes to interrupt.work.unit."""
        if self.t is None:
            return
        from . import interrupt

        clean = self.in_repl and not self._busy
        self.touched_at_close = self.touched or self.restarted
        with interrupt.deferred():
            outcome = None
            try:
                if self.gone:
                    outcome = self._gone_words()
                elif self.touched and restart:
                    outcome = self._give_back(clean)
                elif self.restarted:
                    outcome = "the unit on %s restarted by itself (power lost or reset) into its application" % self.port
            except IontoError as e:
                outcome = self._gone_words() if self.gone else (
                    "the unit on %s did not answer (%s): power-cycle it" % (self.port, e.message))
            except _PORT_ERRORS:
                self.gone = True
                outcome = self._gone_words()
            finally:
                try:
                    self.t.close()
                except Exception:
                    pass
                self.t = None
                self.in_repl = False
            if outcome:
                self.left = outcome
                interrupt.work.unit = outcome
                if not clean and (self.gone or self.touched_at_close):
                    interrupt.work.abnormal = True

    def _gone_words(self):
        return ("nothing more could be sent: the unit returns to its application by itself within %d s, or "
                "when powered again" % max(self._lease_s, _REPL_LEASE_S))

    def _give_back(self, clean):
        """Restart the unit's application -> the outcome in words."""
        if not clean and not self._resync():
            # No raw REPL: the unit restarted by itself (power lost, watchdog), or a treatment
            # runs (it ignores Ctrl-C then). Its status line says which.
            st = self.listen(2.5)
            if st is not None:
                return "the unit on %s is in its application (%s)" % (self.port, st.state.replace("_", " "))
            return "the unit on %s does not answer: power-cycle it" % self.port
        armed = self._leave_armed()
        if armed:
            # The watchdog is armed (a treatment ran since power-on): after a soft reboot
            # nothing would feed it and it would reset the unit a second later. A hard
            # reset now is one clean restart instead of two.
            self._send_code("import machine\nmachine.reset()", deadline=time.monotonic() + 3 * self.scale)
        else:
            self._write(b"\r\x02")  # Ctrl-B: the friendly REPL
            self._write(b"\x04")  # Ctrl-D there: soft reboot -> main.py
            try:
                # The unit has left its REPL when it says so: only then is the command over.
                self._expect(b"soft reboot\r\n", deadline=time.monotonic() + 3 * self.scale)
            except IontoError:
                if self.gone:
                    raise
        self.in_repl = False
        self.touched = False
        from .interrupt import pending

        if clean and self._quick_close and pending() is None:
            return "the unit on %s was restarted into its application" % self.port
        try:
            st = self.listen(_BACK_S, min_st=1)
        except IontoError:
            if not armed:
                raise
            # A board's port goes away with a hard reset and comes back as it enumerates.
            self.gone = False
            return "the unit on %s was reset into its application (its port returns in a moment)" % self.port
        if st is None:
            return "the unit on %s was restarted but its status line has not come back: check it" % self.port
        return "the unit on %s is back in its application (%s)" % (self.port, st.state.replace("_", " "))

    def _resync(self):
        """Stop whatever runs at the REPL (Ctrl-C) and enter the raw REPL afresh -> True if it
        answered. Never raises on a silent unit; deadlines throughout."""
        try:
            self._write(b"\r\x03")
            self._quiet(0.1, 1.0)
            self._write(b"\x03\r\x01")
            self._expect(b"raw REPL; CTRL-B to exit\r\n>", deadline=time.monotonic() + 3 * self.scale)
        except IontoError:
            if self.gone:
                raise
            return False
        self.in_repl = True
        self._busy = False
        return True

    def _leave_armed(self):
        """Tell the unit we are leaving (hostcmd.host_done: its next boot is logged as the end
        of a host session) -> True if its watchdog is armed. A unit without hostcmd -> False."""
        try:
            out = self.exec("try:\n import hostcmd\nexcept ImportError:\n hostcmd = None\n"
                            "if hostcmd:\n hostcmd.G = globals()\n hostcmd.host_done()\n", timeout=10)
        except IontoError:
            if self.gone:
                raise
            return False
        try:
            return bool(_last_json(out, "host_done").get("wdt"))
        except (IontoError, AttributeError):
            return False

    # --- the status channel (read-only) ---------------------------------------------------
    def _take(self, data):
        """Feed received bytes; returns the complete lines (str) they finish."""
        self._buf += data
        lines = []
        while True:
            i = self._buf.find(b"\n")
            if i < 0:
                break
            raw = self._buf[: i + 1]
            self._buf = self._buf[i + 1:]
            line = raw.decode(errors="replace").rstrip("\r\n")
            lines.append(line)
            p = parse_line(raw[raw.find(b"@"):] if b"@" in raw else raw)
            if p is not None:
                kind, v = p
                if kind == "ST":
                    self.status = v
                elif kind == "ID":
                    self.identity = v
                else:
                    self.events.append(v)
        if len(self._buf) > 65536:
            self._buf = self._buf[-4096:]
        return lines

    def lines(self, timeout=None):
        """Yield lines the unit prints, without ever writing to it; stops after `timeout` s."""
        deadline = None if timeout is None else time.monotonic() + timeout * self.scale
        old = self.ser.timeout
        self.ser.timeout = 0.05
        try:
            while deadline is None or time.monotonic() < deadline:
                try:
                    data = self.ser.read(4096)
                except Exception as e:
                    self.gone = True
                    raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away: %s" % (self.port, _oserr(e)))
                if data:
                    self._any = True
                for line in self._take(data):
                    yield line
        finally:
            self.ser.timeout = old

    def listen(self, seconds=1.5, want=("ST",), min_st=2):
        """Read the status channel for up to `seconds` (less once `min_st` @ST lines came - two
        prove a current answer - and an @ID if wanted) -> the last Status, or None if main.py
        is not running."""
        seen = {"ST": 0, "ID": 0}
        st0, id0 = self.status, self.identity
        for _ in self.lines(seconds):
            if self.status is not st0:
                seen["ST"] += 1
                st0 = self.status
            if self.identity is not id0:
                seen["ID"] += 1
                id0 = self.identity
            if all(seen.get(k, 0) >= (min_st if k == "ST" else 1) for k in want):
                break
        return self.status if seen["ST"] else None

    def check_idle(self, seconds=1.5):
        st = self.listen(seconds)
        if st is not None and st.treating:
            raise IontoError(EXIT_TREATING, "a treatment is running on %s (%s): not interrupting it; try again when "
                             "the unit is idle (its display shows READY, DONE or STOPPED)"
                             % (self.port, st.state.replace("_", " ")))
        return st

    # --- the raw REPL ------------------------------------------------------------------------
    # mpremote's own raw-REPL calls wait without an overall deadline (a byte every few seconds
    # keeps them waiting, and a rebooted unit prints a status line every second) and print to
    # stdout on failure; the protocol is small, so it is spoken here, with deadlines.
    def enter(self, listen_s=1.5):
        """Refuse while a treatment runs (nothing sent); else stop main.py (Ctrl-C: its finally
        leaves the output off) and enter the raw REPL without a soft reset."""
        if self.in_repl:
            return
        self.check_idle(listen_s)
        self.touched = True  # from the first byte on, leaving must give the unit back
        try:
            self._write(b"\r\x03")
            # What the application printed before it stopped: until the port goes quiet.
            self._quiet(0.1, 2.0)
            self._write(b"\r\x01")
            self._expect(b"raw REPL; CTRL-B to exit\r\n>", deadline=time.monotonic() + 5 * self.scale)
        except IontoError:
            if self.gone:
                raise
            # No raw REPL: either a treatment started meanwhile (the firmware ignores Ctrl-C
            # while treating) or the unit is not answering.
            st = self.listen(2.5)
            if st is not None and st.treating:
                self.touched = False
                raise IontoError(EXIT_TREATING, "a treatment started on %s: not interrupting it; try again when the "
                                 "unit is idle" % self.port)
            if st is None and not self._any:
                raise IontoError(EXIT_UNIT, "nothing on %s answers like a unit (no status line, no REPL): is it "
                                 "the unit's port? `ionto devices` lists them" % self.port)
            raise IontoError(EXIT_UNIT, "the unit on %s does not answer at its REPL: power-cycle it and try again"
                             % self.port)
        self.in_repl = True
        self._busy = False
        self._buf = b""

    def exec(self, code, timeout=30, consumer=None):
        """Run code on the unit -> its printed text. The unit's error -> IontoError(EXIT_UNIT).
        `timeout`: the whole exchange's deadline in seconds (not a pause between bytes)."""
        if not self.in_repl:
            self.enter()
        deadline = time.monotonic() + timeout * self.scale
        # The unit's lease on this host session (board.host_lease): if the host vanishes (cable
        # pulled, the host killed) the unit restarts its application by itself after it.
        self._lease_s = int(timeout) + _LEASE_MARGIN_S
        code = _LEASE % (self._lease_s * 1000) + code
        try:
            self._busy = True
            self._send_code(code, deadline)
            out, err = self._follow(deadline, consumer)
            self._expect(b">", deadline=time.monotonic() + 2 * self.scale, app_is_error=True)
            self._busy = False
        except _Restarted:
            self.in_repl = False
            self.touched = False  # it restarted into its application: nothing to give back
            self.restarted = True
            raise IontoError(EXIT_UNIT, "the unit on %s restarted during the command (power lost or reset): "
                             "what it was doing may be incomplete" % self.port)
        if err:
            lines = err.decode(errors="replace").strip().splitlines() or ["?"]
            raise IontoError(EXIT_UNIT, "on the unit: %s" % lines[-1])
        return out.decode(errors="replace")

    # --- bytes on the wire, each with a deadline -----------------------------------------------
    def _write(self, data):
        try:
            self.ser.write(data)
            self.ser.flush()
        except _PORT_ERRORS as e:
            self.gone = True
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away (%s)" % (self.port, _oserr(e)))

    def _read(self, n=65536):
        try:
            data = self.ser.read(max(1, min(n, self.ser.in_waiting or 1)))
        except _PORT_ERRORS as e:
            self.gone = True
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away (%s)" % (self.port, _oserr(e)))
        if data:
            self._any = True
        return data

    def _waiting(self):
        try:
            return self.ser.in_waiting
        except _PORT_ERRORS as e:
            self.gone = True
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away (%s)" % (self.port, _oserr(e)))

    def _quiet(self, quiet_s, max_s):
        """Read and drop until nothing came for quiet_s (at most max_s)."""
        end = time.monotonic() + max_s
        last = time.monotonic()
        while time.monotonic() < end:
            if self._read():
                last = time.monotonic()
            elif time.monotonic() - last >= quiet_s:
                return

    def _expect(self, ending, deadline, app_is_error=False):
        """Read until `ending` -> what came before it. A status line instead (the application is
        running: the unit restarted) -> _Restarted; the deadline -> IontoError."""
        got = bytearray()
        while True:
            i = got.find(ending)
            if i >= 0:
                self.ser.unread(got[i + len(ending):])
                return bytes(got[:i])
            if app_is_error and _APP.search(got):
                self._take(bytes(got))
                raise _Restarted()
            if time.monotonic() > deadline:
                raise IontoError(EXIT_UNIT, "the unit on %s did not answer in time (waiting for %r)" % (self.port, ending))
            got += self._read()

    def _send_code(self, code, deadline):
        """The raw REPL's way in (raw-paste mode with its flow control where the unit offers
        it, else plain raw mode), up to the unit's 'OK' or its acknowledgement."""
        data = code.encode() if isinstance(code, str) else code
        if self._paste is not False:
            self._write(b"\x05A\x01")
            head = self._read_n(2, deadline)
            if head == b"R\x01":
                self._paste = True
                self._paste_write(data, deadline)
                return
            self._paste = False
            if head != b"R\x00":
                # Not understood at all: the unit printed its raw REPL prompt again.
                self._expect(b"w REPL; CTRL-B to exit\r\n>", deadline, app_is_error=True)
        for i in range(0, len(data), 256):
            self._write(data[i:i + 256])
            time.sleep(0.01)  # rp2's REPL input buffer is 256 bytes: let it drain
        self._write(b"\x04")
        ok = self._read_n(2, deadline)
        if ok != b"OK":
            raise IontoError(EXIT_UNIT, "the unit on %s did not take the command (%r)" % (self.port, ok))

    def _read_n(self, n, deadline):
        got = b""
        while len(got) < n:
            if time.monotonic() > deadline:
                raise IontoError(EXIT_UNIT, "the unit on %s did not answer in time" % self.port)
            got += self._read(n - len(got))
        return got

    def _paste_write(self, data, deadline):
        import struct

        window = struct.unpack("<H", self._read_n(2, deadline))[0]
        remain = window
        i = 0
        while i < len(data):
            while remain == 0 or self._waiting():
                b = self._read_n(1, deadline)
                if b == b"\x01":
                    remain += window
                elif b == b"\x04":
                    self._write(b"\x04")  # the unit ended the paste early (its error follows)
                    return
                else:
                    raise IontoError(EXIT_UNIT, "unexpected %r from the unit on %s while sending" % (b, self.port))
            chunk = data[i:i + remain]
            self._write(chunk)
            remain -= len(chunk)
            i += len(chunk)
        self._write(b"\x04")
        self._expect(b"\x04", deadline)

    def _follow(self, deadline, consumer=None):
        """The raw REPL's answer: stdout up to 0x04, then stderr up to 0x04, in blocks (which is
        what makes bulk transfers fast), by the deadline. The application's status line in it
        means the unit restarted meanwhile (power lost, reset): _Restarted."""
        parts = [bytearray(), bytearray()]
        which = 0
        tail = b""
        while True:
            data = self._read()
            if not data:
                if time.monotonic() > deadline:
                    raise IontoError(EXIT_UNIT, "the unit on %s did not finish in time: the command's "
                                     "deadline passed" % self.port)
                continue
            if _APP.search(tail + data):
                self._take(tail + data)
                raise _Restarted()
            tail = data[-16:]
            while data:
                i = data.find(b"\x04")
                piece = data if i < 0 else data[:i]
                parts[which] += piece
                if which == 0 and consumer is not None and piece:
                    consumer(piece)
                if i < 0:
                    break
                which += 1
                data = data[i + 1:]
                if which == 2:
                    self.ser.unread(data)
                    return bytes(parts[0]), bytes(parts[1])

    def eval(self, expr):
        """The value of a Python expression on the unit (it must be JSON-serialisable there)."""
        out = self.exec("import json\nprint(json.dumps(%s))" % expr)
        return _last_json(out, expr)

    def hostcmd(self, name, *args):
        """Call firmware/hostcmd.py's `name(*args)` on the unit -> its JSON result."""
        # G: the REPL's globals, where main.py ran (its `log` and `app` are reused).
        call = "import hostcmd\nhostcmd.G = globals()\nhostcmd.%s(%s)" % (name, ", ".join(repr(a) for a in args))
        return _last_json(self.exec(call, timeout=60), "hostcmd." + name)

    # --- files -------------------------------------------------------------------------------
    def read_file(self, path, progress=None, offset=0):
        """The file's bytes from `offset`, in bulk, checked against the size and CRC32 the unit
        computed while sending."""
        code = (
            "import sys, binascii\n"
            "def _rd(p, o):\n"
            " c = 0; n = 0; b = bytearray(%d); m = memoryview(b)\n"
            " f = open(p, 'rb')\n"
            " try:\n"
            "  f.seek(o)\n"
            "  while True:\n"
            "   k = f.readinto(b)\n"
            "   if not k: break\n"
            "   c = binascii.crc32(m[:k], c); n += k\n"
            "   sys.stdout.write(binascii.b2a_base64(m[:k]))\n"
            " finally:\n"
            "  f.close()\n"
            " print('#END', n, c & 0xffffffff)\n"
            "_rd(%r, %d)\n" % (_READ_CHUNK, path, offset))
        got = [0]

        def consumer(chunk):
            got[0] += len(chunk)
            if progress is not None:
                progress(got[0] * 3 // 4)

        try:
            text = self.exec(code, timeout=60, consumer=consumer)
        except IontoError as e:
            if "OSError" in str(e) and ("ENOENT" in str(e) or "2]" in str(e)):
                raise IontoError(EXIT_UNIT, "no file %s on the unit" % path)
            raise
        data = bytearray()
        end = None
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#END"):
                end = line.split()
                continue
            try:
                data += binascii.a2b_base64(line)
            except binascii.Error:
                raise IontoError(EXIT_UNIT, "garbled transfer of %s from the unit: try again" % path)
        if end is None or int(end[1]) != len(data) or int(end[2]) != zlib.crc32(bytes(data)):
            raise IontoError(EXIT_UNIT, "transfer of %s failed its check (size or CRC32): try again" % path)
        return bytes(data)

    def write_file(self, path, data, progress=None):
        """Write data to path on the unit (see write_files)."""
        self.write_files([(path, data)], progress)

    def write_files(self, files, progress=None):
        """Write [(path, data)] on the unit: each into path + '.part' in base64 chunks (zlib-
        compressed and inflated there when that pays), several files per REPL round trip; then
        every .part is read back (size, CRC32 of the real bytes) in one trip and only then all
        are renamed over their targets. progress(bytes_done) as chunks go."""
        files = [(p, bytes(d)) for p, d in files]
        packed = self._pack(files)
        batch = []
        size = 0
        done = 0
        for (path, data), z in zip(files, packed):
            # One open file per target across chunks (and across round trips: `_f` lives in
            # the REPL's globals); LittleFS commits metadata at every close.
            body = data if z is None else z
            batch.append("_f = open(%r, 'wb')" % (path + (".part" if z is None else ".part.z")))
            for i in range(0, len(body), _WRITE_CHUNK):
                chunk = body[i:i + _WRITE_CHUNK]
                batch.append("_w(%r)" % binascii.b2a_base64(chunk, newline=False))
                size += len(chunk) * 4 // 3 + 10
                if size >= _BATCH_TEXT:
                    self._run_writes(batch)
                    batch, size = [], 0
                    if progress is not None:
                        progress(done + i * len(data) // max(1, len(body)))
            batch.append("_f.close()")
            done += len(data)
        if batch:
            self._run_writes(batch)
        zipped = [path for (path, _d), z in zip(files, packed) if z is not None]
        if zipped:
            # Inflate on the unit (its `deflate` module), .part.z -> .part, in small pieces.
            self.exec("import deflate, os\n"
                      "def _inflate(ps):\n"
                      " b = bytearray(512)\n"
                      " for p in ps:\n"
                      "  with open(p + '.part.z', 'rb') as fi:\n"
                      "   with open(p + '.part', 'wb') as fo:\n"
                      "    d = deflate.DeflateIO(fi, deflate.ZLIB)\n"
                      "    while True:\n"
                      "     k = d.readinto(b)\n"
                      "     if not k: break\n"
                      "     fo.write(memoryview(b)[:k])\n"
                      "  os.remove(p + '.part.z')\n"
                      "_inflate(%r)\n" % zipped, timeout=60)
        if progress is not None:
            progress(done)
        got = _last_json(self.exec(
            "import binascii, json\n"
            "def _ck(ps):\n"
            " r = []; b = bytearray(1024); m = memoryview(b)\n"
            " for p in ps:\n"
            "  c = 0; n = 0\n"
            "  with open(p, 'rb') as f:\n"
            "   while True:\n"
            "    k = f.readinto(b)\n"
            "    if not k: break\n"
            "    c = binascii.crc32(m[:k], c); n += k\n"
            "  r.append([n, c & 0xffffffff])\n"
            " print(json.dumps(r))\n"
            "_ck(%r)\n" % [p + ".part" for p, _d in files]), "write check")
        bad = [p for (p, d), (n, c) in zip(files, got) if n != len(d) or c != zlib.crc32(d)]
        if bad:
            for p, _d in files:
                self.remove(p + ".part")
            raise IontoError(EXIT_UNIT, "writing %s on the unit failed its check (size or CRC32): try again" % bad[0])
        # LittleFS renames over an existing file atomically: the target is wholly old or wholly
        # new at every instant. (A filesystem that refuses gets remove + rename.)
        self.exec("import os\n"
                  "for _p in %r:\n"
                  " try:\n  os.rename(_p + '.part', _p)\n"
                  " except OSError:\n  os.remove(_p); os.rename(_p + '.part', _p)\n" % [p for p, _d in files])

    def _pack(self, files):
        """zlib-compressed bodies where the unit can inflate them and it saves a tenth or more
        (.mpy files shrink by about a third): fewer bytes through the REPL. None: send as is."""
        if self._deflate is None:
            try:
                self.exec("import deflate\ndeflate.DeflateIO")
                self._deflate = True
            except IontoError:
                self._deflate = False
        out = []
        for _p, data in files:
            z = zlib.compress(data, 9) if self._deflate and len(data) >= 512 else None
            out.append(z if z is not None and len(z) <= len(data) * 9 // 10 else None)
        return out

    def _run_writes(self, calls):
        try:
            self.exec("import binascii\n"
                      "def _w(d):\n"
                      " _f.write(binascii.a2b_base64(d))\n"
                      + "\n".join(calls) + "\n")
        except IontoError:
            self.exec("try:\n _f.close()\nexcept Exception:\n pass")
            raise

    def sha256(self, paths):
        """{path: sha-256 hex, or None if the file is missing} for files on the unit."""
        code = (
            "import hashlib, binascii, json\n"
            "def _h(ps):\n"
            " r = {}; b = bytearray(1024); m = memoryview(b)\n"
            " for p in ps:\n"
            "  try:\n"
            "   f = open(p, 'rb')\n"
            "  except OSError:\n"
            "   r[p] = None; continue\n"
            "  h = hashlib.sha256()\n"
            "  while True:\n"
            "   k = f.readinto(b)\n"
            "   if not k: break\n"
            "   h.update(m[:k])\n"
            "  f.close(); r[p] = binascii.hexlify(h.digest()).decode()\n"
            " print(json.dumps(r))\n"
            "_h(%r)\n" % (list(paths),))
        return _last_json(self.exec(code, timeout=120), "sha256")

    def listdir(self, path="/"):
        """[(name, size, is_dir)] of a directory on the unit ([] if it does not exist)."""
        code = (
            "import os, json\n"
            "def _ls(d):\n"
            " r = []\n"
            " try:\n"
            "  for e in os.ilistdir(d):\n"
            "   r.append([e[0], e[3] if len(e) > 3 else 0, e[1] == 0x4000])\n"
            " except OSError:\n"
            "  pass\n"
            " print(json.dumps(r))\n"
            "_ls(%r)\n" % path)
        return [tuple(e) for e in _last_json(self.exec(code), "listdir")]

    def remove(self, path):
        self.exec("import os\ntry:\n os.remove(%r)\nexcept OSError:\n pass" % path)

    def mkdir(self, path):
        self.exec("import os\ntry:\n os.mkdir(%r)\nexcept OSError:\n pass" % path)

    # --- resets ------------------------------------------------------------------------------
    def reboot(self, wait=10.0):
        """Hard-reset the unit (machine.reset()) and wait for its application to come back (its
        status line) -> the first Status, or None if it came back without main.py running."""
        if not self.in_repl:
            self.enter()
        self._leave_armed()  # the boot that follows is logged as the end of a host session
        try:
            self._send_code("import machine\nmachine.reset()", time.monotonic() + 5)
        except IontoError:
            if self.gone:
                raise
        self.in_repl = False
        self.touched = False  # the reset restarts the application
        # A board re-enumerates on USB (the port vanishes and returns); the virtual unit keeps
        # its pty. Reopen until the port answers.
        port = self.port
        try:
            self.t.close()
        except Exception:
            pass
        self.t = None
        deadline = time.monotonic() + wait * self.scale
        # A board drops off USB and enumerates again: give its old device node time to go.
        # The virtual unit's pseudo-terminal stays.
        time.sleep(0.05 if os.path.realpath(port).startswith("/dev/pts/") else 0.3)
        while True:
            try:
                fresh = Link.open(port)
                break
            except IontoError:
                if time.monotonic() > deadline:
                    raise IontoError(EXIT_NO_DEVICE, "the unit did not come back on %s after its reset: "
                                     "check the cable and run `ionto devices`" % port)
                time.sleep(0.2)
        self.t, self.ser, self._buf = fresh.t, fresh.ser, b""
        fresh.t = None
        self.touched = self._busy = False
        self.status = self.identity = None
        # Reopened after the reset: whatever comes now is the new boot's, so one @ST will do.
        return self.listen(max(1.0, (deadline - time.monotonic()) / self.scale), want=("ST", "ID"), min_st=1)


def _last_json(text, what):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line[:1] in "[{\"" or line in ("null", "true", "false") or line[:1].isdigit() or line[:1] == "-":
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise IontoError(EXIT_UNIT, "the unit gave no answer to %s: %r" % (what, text[-200:]))
