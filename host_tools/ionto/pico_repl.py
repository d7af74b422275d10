"""The host's side of the emulated Pico's USB serial port: what a test or a benchmark does over its
pseudo-terminal (the raw REPL, files, the running application's output). A mixin of
ionto.pico.Pico, which provides `port`, `child`, `off_reason` and `state`.
"""
import binascii
import json
import os
import select
import time
import tty

from .errors import EXIT_INTERNAL, IontoError


class PicoError(IontoError):
    def __init__(self, message):
        super().__init__(EXIT_INTERNAL, message)


class ReplHost:
    _host_fd = None

    def _host(self):
        if self._host_fd is None:
            self._host_fd = os.open(self.port, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self._host_fd)
        return self._host_fd

    def _write(self, data, timeout=60):
        """All of data onto the port; PicoError when the emulator has ended (nobody drains the
        port any more) or takes nothing for `timeout` wall seconds."""
        fd = self._host()
        end = time.monotonic() + timeout
        while data:
            try:
                n = os.write(fd, data)
                data = data[n:]
                end = time.monotonic() + timeout
            except BlockingIOError:
                if self.child is None and self.off_reason:
                    raise PicoError(self.off_reason)
                if time.monotonic() > end:
                    raise PicoError("the emulated Pico took no input for %.0f s (see %s)"
                                    % (timeout, self.state / "pico.log"))
                time.sleep(0.01)

    def _read_until(self, marker, timeout, sink=None):
        """Bytes read up to marker (dropped from the result); PicoError after timeout wall seconds."""
        fd = self._host()
        buf = bytearray()
        end = time.monotonic() + timeout
        while True:
            i = buf.find(marker)
            if i >= 0:
                rest = bytes(buf[i + len(marker):])
                self._pushback = rest + self._pushback
                return bytes(buf[:i])
            if self._pushback:
                buf += self._pushback
                self._pushback = b""
                continue
            if time.monotonic() > end:
                raise PicoError("no %r from the emulated Pico in %.0f s (have %r)" % (marker, timeout, bytes(buf[-200:])))
            if self.child is None and self.off_reason:
                raise PicoError(self.off_reason)
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    b = os.read(fd, 65536)
                except (BlockingIOError, OSError):
                    continue
                if sink is not None:
                    sink(b)
                buf += b

    _pushback = b""

    def wait_usb(self, timeout=120):
        """Wait until the chip's REPL answers on the port (boot, and main.py if any, interrupted)."""
        end = time.monotonic() + timeout
        while True:
            self._pushback = b""
            self._write(b"\r\x03")
            try:
                self._read_until(b">>> ", min(5, max(0.1, end - time.monotonic())))
                return
            except PicoError:
                if self.child is None and self.off_reason:
                    raise  # the emulator ended: no REPL will answer
                if time.monotonic() > end:
                    raise PicoError("the emulated Pico's REPL did not answer in %.0f s (see %s)"
                                    % (timeout, self.state / "pico.log"))

    def wait_output(self, marker, timeout=600):
        """Read the chip's serial output (the running application's status lines) until marker;
        the port is released afterwards so a host tool can open it."""
        try:
            return self._read_until(marker, timeout)
        finally:
            self._pushback = b""
            if self._host_fd is not None:
                os.close(self._host_fd)
                self._host_fd = None

    def exec(self, code, timeout=600, echo=None):
        """Run code on the chip over the raw REPL; its stdout. PicoError with the traceback on an
        exception. `@RESULT {json}` lines are collected in self.results; echo(str) sees the output."""
        if isinstance(code, str):
            code = code.encode()
        self._write(b"\r\x03\x03")
        self._pushback = b""
        self._write(b"\x01")
        self._read_until(b"raw REPL; CTRL-B to exit\r\n>", 30)
        self._write(code)
        self._write(b"\x04")
        self._read_until(b"OK", 60)
        done = [False]

        def sink(b):
            # echo the program's output, not the raw REPL's framing after it
            if echo is not None and not done[0]:
                i = b.find(b"\x04")
                if i >= 0:
                    done[0] = True
                    b = b[:i]
                echo(b.decode("utf-8", "replace"))

        out = self._read_until(b"\x04", timeout, sink)
        err = self._read_until(b"\x04", 30)
        self._read_until(b">", 30)
        self._write(b"\x02")  # back to the friendly REPL
        text = out.decode("utf-8", "replace")
        for line in text.splitlines():
            i = line.find("@RESULT ")
            if i >= 0:
                try:
                    self.results.append(json.loads(line[i + 8:]))
                except ValueError:
                    pass
        if err.strip():
            raise PicoError("exception on the emulated Pico:\n%s" % err.decode("utf-8", "replace"))
        return text


    def put(self, name, data):
        """Write a file on the chip's filesystem over the raw REPL (bytes or str)."""
        self.put_files([(name, data)])

    def put_files(self, files, batch=16384):
        """Write [(name, bytes or str)] on the chip, several files per raw-REPL run: base64 text
        the chip decodes in C (a bytes literal of binary costs about three characters a byte
        for the chip to receive and parse, base64 four for three)."""
        runs, lines, size = [], [], 0
        for name, data in files:
            if isinstance(data, str):
                data = data.encode()
            lines.append("f = open(%r, 'wb')" % name)
            for i in range(0, len(data), 3072):
                lines.append("f.write(a(%r))" % binascii.b2a_base64(data[i:i + 3072], newline=False))
                size += 4100
                if size >= batch:
                    runs.append(lines + ["f.close()"])
                    lines, size = ["f = open(%r, 'ab')" % name], 0
            lines.append("f.close()")
        runs.append(lines)
        for lines in runs:
            self.exec("from binascii import a2b_base64 as a\n" + "\n".join(lines) + "\ndel a\n")
