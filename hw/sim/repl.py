# The board's REPL for the virtual unit (MicroPython only): friendly REPL, raw REPL and
# raw-paste mode, byte for byte as shared/runtime/pyexec.c on rp2, so mpremote 1.29 drives
# the virtual unit as it drives a Pico.
#
# The unit supplies the serial line: io.getc() (blocks, keeping the clock and the control
# channel going), io.write(bytes) (raw, like mp_hal_stdout_tx_strn), io.cooked (a stream that
# turns "\n" into "\r\n", as rp2's stdout does for text) and io.kbd (True while Python code
# runs: then io.intr_char, 3 unless micropython.kbd_intr changed it, raises KeyboardInterrupt
# instead of reaching the REPL).
#
# run() returns when the board should soft-reboot (Ctrl-D, or SystemExit from user code);
# `raw` tells the caller which mode to come back in, as pyexec_mode_kind does on rp2.
import io
import sys

from micropython import const

_CTRL_A = const(1)
_CTRL_B = const(2)
_CTRL_C = const(3)
_CTRL_D = const(4)
_CTRL_E = const(5)

# rp2: MICROPY_REPL_STDIN_BUFFER_MAX 256 -> raw-paste flow-control window of 128 bytes.
_PASTE_WINDOW = const(128)

_V = sys.implementation.version
BANNER = ("MicroPython v%d.%d.%d on %s; Raspberry Pi Pico with RP2040 (ionto virtual unit)\r\n"
          'Type "help()" for more information.\r\n') % (_V[0], _V[1], _V[2], sys.version.split(" on ")[-1])

# Frames of the simulator itself are dropped from tracebacks: a board shows only user code.
_SIM_FILES = ("repl.py", "unit.py", "usb_serial.py")


def print_exception(e, out):
    s = io.StringIO()
    sys.print_exception(e, s)
    for line in s.getvalue().split("\n"):
        if not line:
            continue
        if line.startswith('  File "') and line.split('"')[1].split("/")[-1] in _SIM_FILES:
            continue
        out.write(line + "\n")


def _continue(src):
    # mp_repl_continue_with_input(): compound statements, open brackets or strings,
    # decorators and backslash continuations ask for more lines.
    if src.startswith("@") or src.rstrip().endswith(":") or src.endswith("\\"):
        return True
    depth = 0
    q = None
    i = 0
    n = len(src)
    while i < n:
        c = src[i]
        if q:
            if c == "\\":
                i += 1
            elif src.startswith(q, i):
                i += len(q) - 1
                q = None
        elif c == "#":
            while i < n and src[i] != "\n":
                i += 1
        elif c in "'\"":
            q = src[i : i + 3] if src[i : i + 3] in ("'''", '"""') else c
            i += len(q) - 1
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        i += 1
    return depth > 0 or (q is not None and len(q) == 3)


class SoftReboot(Exception):
    pass


class Repl:
    def __init__(self, io_, globals_):
        self.io = io_
        self.g = globals_
        self.raw = False

    # --- running code -------------------------------------------------------------------

    def execute(self, src, name, mode, eof=False):
        """Compile and run; tracebacks go out cooked. SystemExit -> SoftReboot.

        eof: the raw REPL's framing, "\\x04" after stdout and again after the error text.
        Returns False if the code raised.
        """
        io_ = self.io
        ok = True
        exit_ = False
        try:
            try:
                io_.kbd = True
                io_.intr_char = 3  # pyexec sets Ctrl-C at each run; kbd_intr() may change it
                if mode == "single":
                    try:
                        code = compile(src, name, "eval")
                    except SyntaxError:
                        code = None
                    if code is not None:
                        r = eval(code, self.g)
                        if r is not None:
                            self.g["_"] = r
                            io_.cooked.write(repr(r) + "\n")
                        return True
                    mode = "exec"
                exec(compile(src, name, mode), self.g)
            finally:
                io_.kbd = False
        except SystemExit:
            exit_ = True
            if eof:
                io_.write(b"\x04")
        except BaseException as e:  # KeyboardInterrupt too: the REPL carries on
            ok = False
            if eof:
                io_.write(b"\x04")
            print_exception(e, io_.cooked)
        else:
            if eof:
                io_.write(b"\x04")
        if eof:
            io_.write(b"\x04")
        if exit_:
            raise SoftReboot()
        return ok

    def run_file(self, path):
        """pyexec_file_if_exists(): True if absent or ran cleanly; SoftReboot on SystemExit."""
        try:
            f = open(path)
        except OSError:
            return True
        try:
            src = f.read()
        finally:
            f.close()
        self.g["__file__"] = path
        return self.execute(src, path, "exec")

    # --- the REPLs ----------------------------------------------------------------------

    def run(self):
        """Serve the REPL until a soft reboot is asked for (returns)."""
        try:
            while True:
                if self.raw:
                    self._raw()
                else:
                    self._friendly()
        except SoftReboot:
            return

    def _friendly(self):
        io_ = self.io
        io_.write(BANNER.encode())
        while True:
            line = bytearray()
            c = self._readline(line, b">>> ")
            if c == _CTRL_A:
                io_.write(b"\r\n")
                self.raw = True
                return
            if c == _CTRL_B:
                io_.write(b"\r\n")
                return  # banner again
            if c == _CTRL_C:
                io_.write(b"\r\n")
                continue
            if c == _CTRL_D:
                io_.write(b"\r\n")
                raise SoftReboot()
            if c == _CTRL_E:
                self._paste()
                continue
            if not line:
                continue
            src = line.decode()
            cancelled = False
            while _continue(src):
                line = bytearray()
                c = self._readline(line, b"... ")
                if c == _CTRL_C:
                    io_.write(b"\r\n")
                    cancelled = True
                    break
                if c == _CTRL_D or not line:
                    break
                src += "\n" + line.decode()
            if not cancelled:
                self.execute(src, "<stdin>", "single")

    def _readline(self, line, prompt):
        # A small readline(): echo, backspace, Enter; control keys on an empty line return.
        io_ = self.io
        io_.write(prompt)
        while True:
            c = io_.getc()
            if c == 13:
                io_.write(b"\r\n")
                return 0
            if _CTRL_A <= c <= _CTRL_E and not line:
                return c
            if c == _CTRL_C:
                return c
            if c in (8, 127):
                if line:
                    line.pop()
                    io_.write(b"\x08 \x08")
            elif c == 10 or c == 27 or c < 32 and c != 9:
                pass  # LF after CR, escape sequences and stray controls
            else:
                line.append(c)
                io_.write(bytes((c,)))

    def _paste(self):
        io_ = self.io
        io_.write(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        buf = bytearray()
        while True:
            c = io_.getc()
            if c == _CTRL_C:
                io_.write(b"\r\n")
                return
            if c == _CTRL_D:
                io_.write(b"\r\n")
                break
            if c == 13:
                buf.append(10)
                io_.write(b"\r\n=== ")
            elif c != 10:
                buf.append(c)
                io_.write(bytes((c,)))
        self.execute(buf.decode(), "<stdin>", "exec")

    def _raw(self):
        io_ = self.io
        io_.write(b"raw REPL; CTRL-B to exit\r\n")
        line = bytearray()
        while True:
            line[:] = b""
            io_.write(b">")
            while True:
                c = io_.getc()
                if c == _CTRL_A:
                    if len(line) == 2 and line[0] == _CTRL_E:
                        self._raw_paste(line[1])
                        line[:] = b""
                        io_.write(b">")
                        continue
                    return  # reset the raw REPL: its banner again
                if c == _CTRL_B:
                    io_.write(b"\r\n")
                    self.raw = False
                    return
                if c == _CTRL_C:
                    line[:] = b""
                elif c == _CTRL_D:
                    break
                else:
                    line.append(c)
            io_.write(b"OK")
            if not line:
                io_.write(b"\r\n")
                raise SoftReboot()
            self.execute(line.decode(), "<stdin>", "exec", eof=True)

    def _raw_paste(self, cmd):
        io_ = self.io
        if cmd != ord("A"):
            io_.write(b"R\x00")
            return
        io_.write(b"R\x01")
        io_.write(bytes((_PASTE_WINDOW & 0xFF, _PASTE_WINDOW >> 8, 1)))
        buf = bytearray()
        remain = _PASTE_WINDOW
        while True:
            c = io_.getc()
            if c == _CTRL_C or c == _CTRL_D:
                io_.write(b"\x04")  # end acknowledged
                if c == _CTRL_C:
                    io_.write(b"\x04")
                    io_.cooked.write("KeyboardInterrupt: \n")
                    io_.write(b"\x04")
                    return
                break
            buf.append(c)
            remain -= 1
            if remain == 0:
                io_.write(b"\x01")  # another window free
                remain = _PASTE_WINDOW
        self.execute(buf.decode(), "<stdin>", "exec", eof=True)
