"""`ionto bench --port PORT`: the on-board benchmark, run on a unit over its USB serial port.

    ionto bench --port /dev/ttyACM0 [--json out.json] [--ticks 500] [--i2c 200]

Sends bench/mpy_onboard.py through the raw REPL (mpremote's SerialTransport, without a soft
reset) and prints what the unit measured, one `name: value unit` line per figure as `make
bench` does, after one '#' header line that says where the figures come from. On the virtual
unit (`ionto sim`) the times are virtual: they include the simulated wire time charged to the
virtual clock, not the unix port's own speed.

Before it interrupts anything it listens to the unit's status line (`@ST STATE ...`, once a
second while main.py runs) and refuses, without sending a byte, while a treatment is under
way; the script on the unit checks main.py's `app` again. Entering the raw REPL stops main.py
(Ctrl-C; its finally leaves the output off): afterwards the unit sits at its REPL until it is
reset or power-cycled.

Exit codes (errors are one line on stderr, no traceback):
    0  figures printed
    2  bad arguments
    3  no device at PORT, or it cannot be opened
    4  PORT is busy: another program (mpremote, a monitor, ionto sim's own client) has it
    5  refused: the unit is treating, or its watchdog is armed after a treatment
    6  the unit did not answer, or the bench failed on it
"""
import json
import os
import re
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "mpy_onboard.py"
IDLE_STATES = ("IDLE", "DONE", "STOPPED", "FAULT")  # as session.STATE_NAMES, spaces as '_'
_FIGURE = re.compile(r"^(\w+): (\S+)(?: (.*))?$")
_STATUS = re.compile(rb"@ST (\S+) ")

EXIT_NO_DEVICE = 3
EXIT_BUSY = 4
EXIT_REFUSED = 5
EXIT_UNIT = 6


class BenchError(Exception):
    def __init__(self, code, msg):
        Exception.__init__(self, msg)
        self.code = code


def add_arguments(p):
    p.add_argument("--port", required=True, help="the unit's serial port (a Pico's /dev/ttyACM0, or ionto sim's pty)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON ({name: {value, unit}}, as bench/results.json)")
    p.add_argument("--ticks", type=int, default=500, help="control-loop ticks to time (500 = 1 s at 500 Hz)")
    p.add_argument("--i2c", type=int, default=200, help="INA219 reads to time")
    p.add_argument("--listen", type=float, default=1.5, help="seconds to listen for the status line before connecting")


def _open(port):
    """SerialTransport on port, or BenchError saying why not in words."""
    import serial
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport

    if not os.path.exists(port):
        raise BenchError(EXIT_NO_DEVICE, "no device at %s: is the unit plugged in (or `ionto sim` running)?" % port)
    # SerialTransport reports every open failure as "failed to access": probe first for the reason.
    try:
        serial.Serial(port, 115200, exclusive=True).close()
    except serial.SerialException as e:
        if "lock" in str(e).lower() or "busy" in str(e).lower():
            raise BenchError(EXIT_BUSY, "%s is busy: close the other program using it (mpremote, a monitor)" % port)
        raise BenchError(EXIT_NO_DEVICE, "cannot open %s: %s" % (port, getattr(e, "strerror", None) or e))
    try:
        return SerialTransport(port, baudrate=115200)
    except TransportError as e:
        raise BenchError(EXIT_BUSY, "cannot open %s: %s" % (port, e))


def listen_state(ser, seconds):
    """The last state the unit's status line reported within `seconds`, or None (no main.py
    running, or a unit that does not print it)."""
    old = ser.timeout
    ser.timeout = 0.05
    buf = b""
    state = None
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            buf += ser.read(4096)
            found = _STATUS.findall(buf)
            if found:
                state = found[-1].decode(errors="replace")
                if len(found) > 1:
                    break  # two lines: a current answer, no need to wait longer
                buf = buf[buf.rfind(b"@ST "):]
            if len(buf) > 65536:
                buf = buf[-4096:]
    finally:
        ser.timeout = old
    return state


def measure(port, ticks=500, i2c=200, listen=1.5, timeout=60):
    """Run the bench on the unit at port: (platform, [(name, value, unit)])."""
    from mpremote.transport import TransportError

    t = _open(port)
    try:
        state = listen_state(t.serial, listen)
        if state is not None and state not in IDLE_STATES:
            raise BenchError(EXIT_REFUSED, "the unit is treating (%s): not interrupting it; run the bench when it is idle"
                             % state.replace("_", " "))
        try:
            t.enter_raw_repl(soft_reset=False)
            code = SCRIPT.read_text() + "\n_bench(%d, %d)\n" % (ticks, i2c)
            out, err = t.exec_raw(code, timeout=timeout)
        except TransportError as e:
            raise BenchError(EXIT_UNIT, "the unit did not answer on %s: %s" % (port, e))
        try:
            t.exit_raw_repl()
        except Exception:
            pass
    finally:
        try:
            t.close()
        except Exception:
            pass
    text = out.decode(errors="replace")
    if err:
        last = err.decode(errors="replace").strip().splitlines()[-1:] or ["?"]
        raise BenchError(EXIT_UNIT, "the bench failed on the unit: %s" % last[0])
    platform = "unknown"
    figures = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("@REFUSE "):
            raise BenchError(EXIT_REFUSED, "refused: " + line[len("@REFUSE "):])
        if line.startswith("@PLATFORM "):
            platform = line.split(None, 1)[1]
            continue
        m = _FIGURE.match(line)
        if m:
            figures.append((m.group(1), _number(m.group(2)), m.group(3) or ""))
    if "@DONE" not in text or not figures:
        raise BenchError(EXIT_UNIT, "the bench did not finish on the unit: %r" % text[-200:])
    return platform, figures


def _number(s):
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s


def header(port, platform):
    if platform == "rp2":
        return "# ionto bench on %s (rp2): real times from the Pico's clock" % port
    return ("# ionto bench on %s (%s: the virtual unit): times are VIRTUAL, they include the simulated "
            "wire time charged to the virtual clock, not the unix port's own speed" % (port, platform))


def run(args):
    try:
        platform, figures = measure(args.port, args.ticks, args.i2c, args.listen)
    except BenchError as e:
        sys.stderr.write("ionto bench: %s\n" % e)
        return e.code
    print(header(args.port, platform))
    for name, value, unit in figures:
        print("%s: %s %s" % (name, value, unit), flush=True)
    if args.json:
        data = dict((n, {"value": v, "unit": u}) for n, v, u in figures)
        Path(args.json).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print("# main.py was stopped: the unit is at its REPL; reset or power-cycle it before treating")
    return 0
