"""`ionto bench --port PORT`: the on-board benchmark, run on a unit over its USB serial port.

    ionto bench --port /dev/ttyACM0 [--json out.json] [--ticks 500] [--i2c 200]

Sends bench/mpy_onboard.py through the raw REPL (ionto/link.py, without a soft reset) and
prints what the unit measured, one `name: value unit` line per figure as `make
bench` does, after one '#' header line that says where the figures come from. On the virtual
unit (`ionto sim`) the times are virtual: they include the simulated wire time charged to the
virtual clock, not the unix port's own speed.

Before it interrupts anything it listens to the unit's status line (`@ST STATE ...`, once a
second while main.py runs) and refuses, without sending a byte, while a treatment is under
way; the script on the unit checks main.py's `app` again. Entering the raw REPL stops main.py
(Ctrl-C; its finally leaves the output off); leaving, link.py restarts the unit so main.py
runs again (a soft reboot, or one hard reset when a treatment armed the watchdog).

Exit codes (errors are one line on stderr, `ionto bench: error: ...`, no traceback):
    0  figures printed
    2  bad arguments
    3  no device at PORT, or it cannot be opened
    4  PORT is busy: another program (mpremote, a monitor, ionto sim's own client) has it
    5  refused: the unit is treating, or its watchdog is armed after a treatment
    6  the unit did not answer, or the bench failed on it
"""
import json
import re
from pathlib import Path

from . import errors, link
from .errors import IontoError
from .shipped import BENCH

SCRIPT = BENCH / "mpy_onboard.py"
_FIGURE = re.compile(r"^(\w+): (\S+)(?: (.*))?$")

EXIT_NO_DEVICE = errors.EXIT_NO_DEVICE
EXIT_BUSY = errors.EXIT_BUSY
EXIT_REFUSED = errors.EXIT_TREATING
EXIT_UNIT = errors.EXIT_UNIT


def add_arguments(p):
    p.add_argument("--port", help="the unit's serial port (a Pico's /dev/ttyACM0, or ionto sim's pty; "
                   "default: IONTO_PORT, else the only unit connected)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON ({name: {value, unit}}, as bench/results.json)")
    p.add_argument("--ticks", type=int, default=500, help="control-loop ticks to time (500 = 5 s at the 100 Hz loop)")
    p.add_argument("--i2c", type=int, default=200, help="INA219 reads to time")
    p.add_argument("--listen", type=float, default=1.5, help="seconds to listen for the status line before connecting")


def measure(port, ticks=500, i2c=200, listen=1.5, timeout=60):
    """Run the bench on the unit at port: (platform, [(name, value, unit)]). Refuses (exit 5)
    while a treatment runs, without sending a byte."""
    with link.Link.open(port) as u:
        u.enter(listen_s=listen)
        text = u.exec(SCRIPT.read_text() + "\n_bench(%d, %d)\n" % (ticks, i2c), timeout=timeout)
    platform = "unknown"
    figures = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("@REFUSE "):
            raise IontoError(EXIT_REFUSED, "refused: " + line[len("@REFUSE "):])
        if line.startswith("@PLATFORM "):
            platform = line.split(None, 1)[1]
            continue
        m = _FIGURE.match(line)
        if m:
            figures.append((m.group(1), _number(m.group(2)), m.group(3) or ""))
    if "@DONE" not in text or not figures:
        raise IontoError(EXIT_UNIT, "the bench did not finish on the unit: %r" % text[-200:])
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
    # Errors are IontoError: the CLI says them in one line (`ionto bench: error: ...`) with
    # their exit code, as for every command.
    platform, figures = measure(args.port, args.ticks, args.i2c, args.listen)
    print(header(args.port, platform))
    for name, value, unit in figures:
        print("%s: %s %s" % (name, value, unit), flush=True)
    if args.json:
        data = dict((n, {"value": v, "unit": u}) for n, v, u in figures)
        Path(args.json).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print("# main.py was stopped for the bench and restarted (soft reboot) afterwards")
    return 0
