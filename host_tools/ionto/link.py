"""A unit on a serial port: the one way `ionto` talks to a unit.

It speaks the raw REPL itself, the small protocol mpremote speaks (rawrepl.py), on a port opened
with pyserial as mpremote opens it. Nothing in ionto imports mpremote: its transport API is
marked unstable, and importing it (with its package metadata) would cost every command a
noticeable share of its start-up. mpremote stays installed, pinned, for engineers
(`mpremote connect PORT ...`), and reaches a unit exactly as this does.

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
- Bulk, verified file transfer (transfer.py; the code it runs on the unit is unit_side/*.py).
- Errors in words, with the exit codes of errors.py, for a missing, busy or silent unit.

Its parts: statusline.py (the status channel's lines), ports.py (finding units, which port),
rawrepl.py (the raw REPL's bytes, with deadlines), transfer.py (files), progress.py; this
module is the session: open, listen, refuse while treating, enter, exec, give the unit back.
Every name is importable from here as before (`from ionto.link import Status, Progress`).
"""
import os
import time
import zlib  # noqa: F401 (transfer's checksums: tests reach it here)

from .errors import EXIT_BUSY, EXIT_NO_DEVICE, EXIT_TREATING, EXIT_UNIT, IontoError
from .ports import BAUD, USB_IDS, UnitPort, find_units, resolve_port, time_scale, unit_clock  # noqa: F401
from .progress import Progress  # noqa: F401
from .rawrepl import PORT_ERRORS as _PORT_ERRORS, PushbackSerial as _Serial, RawRepl, Restarted as _Restarted
from .rawrepl import oserr as _oserr
from .statusline import IDLE_STATES, Status, parse_line  # noqa: F401
from .transfer import Files, last_json as _last_json

__all__ = ["Link", "Status", "parse_line", "IDLE_STATES", "UnitPort", "find_units", "resolve_port", "time_scale",
           "Progress", "BAUD", "USB_IDS"]

_BACK_S = 8.0  # after giving the unit back: how long its status line may take to return
# Every exec renews the unit's lease on the host session (firmware/board.py host_lease): its
# deadline plus this margin. A unit whose host vanished restarts its application after that.
_LEASE_MARGIN_S = 10
_REPL_LEASE_S = 120  # firmware/main.py: the lease a host's Ctrl-C starts, before any command renews it
_LEASE = "try:\n import board as _bd\n _bd.host_lease(%d)\nexcept Exception:\n pass\n"


class _Port:
    """The open serial port, as the transport that holds it: `serial`, `close()`."""

    def __init__(self, ser):
        self.serial = ser

    def close(self):
        self.serial.close()


class Link(RawRepl, Files):
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
        self.unit_clock = None  # unit_clock(port): an emulated unit's own time, if it tells it
        self._deflate = None  # can the unit inflate zlib streams (its `deflate` module)?
        transport.serial.timeout = 0.05

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def open(cls, port=None, drain=True):
        """The unit on `port`, the port opened; `drain`: drop a backlog from before (see
        _drain). Only a reopen right after the unit's reset skips that: all that comes then is
        the new boot's, the @ID line with the version it runs among it."""
        port = resolve_port(port)
        if not os.path.exists(port):
            raise IontoError(EXIT_NO_DEVICE, "no device at %s: is the unit plugged in (or `ionto sim` running)?" % port)
        if not os.access(port, os.R_OK | os.W_OK):
            raise IontoError(EXIT_BUSY, "permission denied on %s: add your user to the port's group "
                             "(dialout or uucp) and log in again" % port)
        import serial

        # Opened as mpremote's SerialTransport opens it (exclusive; opening flushes what the
        # port held), once, and pyserial's own error says why it could not be.
        try:
            ser = serial.Serial(port, BAUD, exclusive=True, timeout=0.05, inter_byte_timeout=1)
        except serial.SerialException as e:
            text = str(e).lower()
            if "lock" in text or "busy" in text or "resource temporarily" in text:
                raise IontoError(EXIT_BUSY, "%s is busy: close the other program using it (mpremote, a monitor, "
                                 "a serial terminal)" % port)
            if "permission" in text:
                raise IontoError(EXIT_BUSY, "permission denied on %s: add your user to the dialout group" % port)
            raise IontoError(EXIT_NO_DEVICE, "cannot open %s: %s" % (port, getattr(e, "strerror", None) or e))
        u = cls(port, _Port(ser))
        from .interrupt import work

        work.unit = "the unit on %s was not disturbed (nothing was sent to it)" % port
        u.scale = time_scale(port)
        u.unit_clock = unit_clock(port)
        if drain:
            u._drain()
        return u

    def _drain(self, quiet_s=0.05, max_s=0.5):
        """Drop what the port held from before we opened it (a virtual unit keeps up to 64 KiB
        for a host that is not there): a stale IDLE must never pass for the unit's state now.
        Opening flushed what the port itself held; a backlog still to come arrives at once,
        in large reads. So the first bytes to come decide: nothing by quiet_s, or a line or two
        (dropped too: a remainder of a few lines may still be old), and draining stops there; a
        large read is a backlog, read until the port goes quiet or only a line or two trickles
        in within quiet_s (a unit running flat out prints without pause)."""
        old = self.ser.timeout
        self.ser.timeout = quiet_s
        end = time.monotonic() + max_s
        try:
            got = self.ser.read(max(1, self.ser.in_waiting))
            if not got:
                return
            got += self.ser.read(self.ser.in_waiting)  # the rest of what came with that first byte
            if len(got) < 256:
                return
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
        """Yield lines the unit prints, without ever writing to it; stops after `timeout` s of
        the unit's time: stretched by its time scale, or, where the unit tells its own clock
        (an emulated Pico), once it has lived them (and as many wall seconds have passed, as
        with a board) with nothing more coming."""
        t0 = time.monotonic()
        deadline = None if timeout is None else t0 + timeout * self.scale
        clock = self.unit_clock if timeout is not None else None
        unit_end = None
        if clock is not None:
            u0 = clock()
            unit_end = None if u0 is None else u0 + timeout
        old = self.ser.timeout
        self.ser.timeout = 0.05
        try:
            while deadline is None or time.monotonic() < deadline:
                try:
                    # What is there, else the first byte to come (by 50 ms, to check the
                    # deadline): a line is seen as it arrives, not at the end of a read window.
                    data = self.ser.read(max(1, min(4096, self.ser.in_waiting)))
                except Exception as e:
                    self.gone = True
                    raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away: %s" % (self.port, _oserr(e)))
                if data:
                    self._any = True
                for line in self._take(data):
                    yield line
                if not data and unit_end is not None and time.monotonic() - t0 >= timeout:
                    now = clock()
                    if now is not None and now >= unit_end:
                        return
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
            # Ctrl-C, then Ctrl-A at once (as mpremote does): the unit keeps what follows the
            # Ctrl-C in its input until its REPL reads it, after main.py's finally. Whatever the
            # application prints until then (a status line, the traceback) comes before the raw
            # REPL's own prompt, which is what ends the wait.
            self._write(b"\r\x03")
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

    def eval(self, expr):
        """The value of a Python expression on the unit (it must be JSON-serialisable there)."""
        out = self.exec("import json\nprint(json.dumps(%s))" % expr)
        return _last_json(out, expr)

    def hostcmd(self, name, *args):
        """Call firmware/hostcmd.py's `name(*args)` on the unit -> its JSON result."""
        # G: the REPL's globals, where main.py ran (its `log` and `app` are reused).
        call = "import hostcmd\nhostcmd.G = globals()\nhostcmd.%s(%s)" % (name, ", ".join(repr(a) for a in args))
        return _last_json(self.exec(call, timeout=60), "hostcmd." + name)

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
                # Not drained: nothing ran between our last read and the reset (we held the
                # raw REPL), so all that comes is the new boot's, its @ID among the first lines.
                fresh = Link.open(port, drain=False)
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
