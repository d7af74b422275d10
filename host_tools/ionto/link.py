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

from .errors import (EXIT_AMBIGUOUS, EXIT_BUSY, EXIT_NO_DEVICE, EXIT_TREATING, EXIT_UNIT, IontoError)

BAUD = 115200
IDLE_STATES = ("IDLE", "DONE", "STOPPED", "FAULT")  # session.STATE_NAMES, spaces as '_'
# USB IDs a MicroPython board enumerates with: Raspberry Pi (rp2 MicroPython 0x0005) and
# MicroPython's own VID.
USB_IDS = ((0x2E8A, None), (0xF055, None))

_READ_CHUNK = 3072  # bytes per base64 line from the unit (4 KiB of text)
_WRITE_CHUNK = 4096  # bytes per write call on the unit
_BATCH_TEXT = 16384  # source text per REPL round trip when writing (several chunks, several files)
_LINE = re.compile(rb"@(ST|EV|ID) ([^\r\n]*)\r?\n")


# --- the status channel ------------------------------------------------------------------
class Status:
    """One `@ST` line: STATE time_left_s target_ua set_ua actual_ua polarity fault limited_ua mv
    [dose_uas session]. Older firmware gives the first nine fields only."""

    FIELDS = ("time_left_s", "target_ua", "set_ua", "actual_ua", "polarity", "fault", "limited_ua", "mv",
              "dose_uas", "session")

    def __init__(self, text, at=None):
        w = text.split()
        self.state = w[0]
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
        return kind, {"serial": w[0], "version": w[1] if len(w) > 1 else "?"}
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
        from .sim import registered

        for e in registered():
            out.append(UnitPort(e["port"], "virtual", e.get("serial"), "ionto sim in %s" % e.get("state_dir")))
    return out


def time_scale(port):
    """How many times slower than a board the unit on `port` runs: an emulated Pico (`ionto
    pico`) registers the rate it measures; boards and the virtual unit are 1. Every wait for the
    unit's answer is stretched by it, so the same commands work on a slow target."""
    try:
        from .sim import registered

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
        self.in_repl = False
        self._buf = b""
        self.scale = 1.0  # time_scale(port): waits are stretched on a slow (emulated) unit
        self._deflate = None  # can the unit inflate zlib streams (its `deflate` module)?

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
        when a treatment armed the watchdog (hostcmd.host_done says which)."""
        if self.t is None:
            return
        try:
            if self.in_repl and restart and self._leave_armed():
                # The watchdog is armed (a treatment ran since power-on): after a soft reboot
                # nothing would feed it and it would reset the unit a second later. A hard
                # reset now is one clean restart instead of two.
                self.t.exec_raw_no_follow("import machine\nmachine.reset()")
            elif self.in_repl:
                self.t.exit_raw_repl()
                if restart:
                    self.ser.write(b"\x04")  # Ctrl-D at the friendly REPL: soft reboot -> main.py
                    self.ser.flush()
                    time.sleep(0.05)
        except Exception:
            pass
        try:
            self.t.close()
        except Exception:
            pass
        self.t = None
        self.in_repl = False

    def _leave_armed(self):
        """Tell the unit we are leaving (hostcmd.host_done: its next boot is logged as the end
        of a host session) -> True if its watchdog is armed. A unit without hostcmd -> False."""
        try:
            out = self.exec("try:\n import hostcmd\nexcept ImportError:\n hostcmd = None\n"
                            "if hostcmd:\n hostcmd.G = globals()\n hostcmd.host_done()\n", timeout=10)
        except IontoError:
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
                    raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away: %s" % (self.port, e))
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
                             "the unit is idle (DONE, STOPPED or IDLE on its display)"
                             % (self.port, st.state.replace("_", " ")))
        return st

    # --- the raw REPL ------------------------------------------------------------------------
    def enter(self, listen_s=1.5):
        """Refuse while a treatment runs (nothing sent); else stop main.py (Ctrl-C: its finally
        leaves the output off) and enter the raw REPL without a soft reset."""
        if self.in_repl:
            return
        self.check_idle(listen_s)
        try:
            self.t.enter_raw_repl(soft_reset=False, timeout_overall=5 * self.scale)
        except _transport_errors():
            # No raw REPL: either a treatment started meanwhile (the firmware ignores Ctrl-C
            # while treating) or the unit is not answering.
            st = self.listen(2.5)
            if st is not None and st.treating:
                raise IontoError(EXIT_TREATING, "a treatment started on %s: not interrupting it; try again when the "
                                 "unit is idle" % self.port)
            raise IontoError(EXIT_UNIT, "the unit on %s does not answer at its REPL: power-cycle it and try again"
                             % self.port)
        self.in_repl = True
        self._buf = b""

    def exec(self, code, timeout=30, consumer=None):
        """Run code on the unit -> its printed text. The unit's error -> IontoError(EXIT_UNIT)."""
        if not self.in_repl:
            self.enter()
        try:
            self.t.exec_raw_no_follow(code)
            out, err = self._follow(timeout, consumer)
        except _transport_errors() as e:
            raise IontoError(EXIT_UNIT, "the unit on %s stopped answering: %s" % (self.port, e))
        except OSError as e:
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away: %s" % (self.port, e))
        if err:
            lines = err.decode(errors="replace").strip().splitlines() or ["?"]
            raise IontoError(EXIT_UNIT, "on the unit: %s" % lines[-1])
        return out.decode(errors="replace")

    def _follow(self, timeout, consumer=None):
        """The raw REPL's answer: stdout up to 0x04, then stderr up to 0x04. mpremote reads it
        one byte per call (its follow()); here it comes in blocks, which is what makes bulk
        transfers fast."""
        ser = self.ser
        parts = [bytearray(), bytearray()]
        which = 0
        last = time.monotonic()
        old = ser.timeout
        ser.timeout = 0.02
        try:
            while True:
                data = ser.read(max(1, min(65536, ser.in_waiting)))
                if not data:
                    if time.monotonic() - last > timeout * self.scale:
                        raise _transport_errors()("timeout waiting for the unit's answer")
                    continue
                last = time.monotonic()
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
                        # What follows the second 0x04 (the next '>' prompt) is mpremote's.
                        ser.unread(data)
                        return bytes(parts[0]), bytes(parts[1])
        finally:
            ser.timeout = old

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
            self.t.exec_raw_no_follow("import machine\nmachine.reset()")
        except _transport_errors():
            pass
        except OSError:
            pass
        self.in_repl = False
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
