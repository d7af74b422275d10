"""The raw REPL's bytes on the wire, each with a deadline: the small protocol mpremote speaks,
spoken here because mpremote's own calls wait without an overall deadline (a byte every few
seconds keeps them waiting, and a rebooted unit prints a status line every second) and print
to stdout on failure.

RawRepl is a part of link.Link (its transport `t`, port `ser`, `port`, `scale`, `gone`); the
session around it (listening, refusing while treating, giving the unit back) is link.py's.
"""
import time

try:
    from termios import error as _TermiosError
except ImportError:  # not on a POSIX host
    _TermiosError = OSError

from .errors import EXIT_NO_DEVICE, EXIT_UNIT, IontoError
from .statusline import APP

# What a port that went away raises: OSError (pyserial's SerialException is one) or, from
# tcdrain/tcsetattr on a hung-up terminal, termios.error (which is not).
PORT_ERRORS = (OSError, _TermiosError)


class Restarted(Exception):
    """The unit's application spoke where the REPL should have: it restarted by itself."""


def oserr(e):
    """Why a port failed, in the user's words (pyserial's are about file descriptors)."""
    text = str(e)
    if getattr(e, "errno", None) in (5, 6, 19) or "returned no data" in text or "Input/output" in text:
        return "cable unplugged or unit powered off"
    return getattr(e, "strerror", None) or text or type(e).__name__


class PushbackSerial:
    """The serial port with a push-back buffer, so a bulk read can give back what it read
    past its answer to the next read."""

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


class RawRepl:
    """The raw REPL's exchanges (a mixin of link.Link)."""

    def _write(self, data):
        try:
            self.ser.write(data)
            self.ser.flush()
        except PORT_ERRORS as e:
            self.gone = True
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away (%s)" % (self.port, oserr(e)))

    def _read(self, n=65536):
        try:
            data = self.ser.read(max(1, min(n, self.ser.in_waiting or 1)))
        except PORT_ERRORS as e:
            self.gone = True
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away (%s)" % (self.port, oserr(e)))
        if data:
            self._any = True
        return data

    def _waiting(self):
        try:
            return self.ser.in_waiting
        except PORT_ERRORS as e:
            self.gone = True
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away (%s)" % (self.port, oserr(e)))

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
        running: the unit restarted) -> Restarted; the deadline -> IontoError."""
        got = bytearray()
        while True:
            i = got.find(ending)
            if i >= 0:
                self.ser.unread(got[i + len(ending):])
                return bytes(got[:i])
            if app_is_error and APP.search(got):
                self._take(bytes(got))
                raise Restarted()
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
        means the unit restarted meanwhile (power lost, reset): Restarted."""
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
            if APP.search(tail + data):
                self._take(tail + data)
                raise Restarted()
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
