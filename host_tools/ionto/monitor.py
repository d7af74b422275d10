"""`ionto monitor [--port P] [--plot/--no-plot] [--duration S] [--csv FILE]`: watch a unit.

A live view of a running treatment (or an idle unit) from the unit's read-only status channel:
state, time left, set and actual current, polarity, whether the current is limited and why,
faults in words, dose, and a plot of actual against set current over the last minutes.

It cannot stop or disturb a treatment, by construction: the port is opened O_RDONLY, so not
one byte (no Ctrl-C, no raw REPL, not even a terminal echo) can reach the unit from here. The
firmware prints, without being asked:

    @ST STATE time_left_s target_ua set_ua actual_ua polarity fault limited_ua mv [dose_uas session]
    @EV ticks EVENT_NAME a b                  (each session event)
    @ID serial_hex version                    (at boot, then every few seconds)

The port is locked (flock, as pyserial's exclusive open does) while the monitor runs, so other
`ionto` commands report the port busy instead of reading from under it. On a terminal the view
is redrawn in place; otherwise (a pipe, a log file) it prints one line per status line and
event. Ctrl-C or --duration ends it (exit 0). Event and fault words are words.py's, the one
vocabulary of every command (from the firmware's own tables).
"""
import csv
import fcntl
import os
import select
import shutil
import sys
import termios
import time
from collections import deque

from . import words
from .errors import EXIT_BUSY, EXIT_NO_DEVICE, EXIT_UNIT, EXIT_USAGE, IontoError
from .link import parse_line, resolve_port
from .words import dose_mamin, event_words, ma, mmss, polarity, state_words, volts  # noqa: F401 (event_words: the view's)

STALE_S = 3.5  # no @ST for this long (host time): say so
_EVENTS_SHOWN = 5
_BACKLOG_QUIET_S = 0.1  # what the port held before we opened it ends when it goes quiet this long
_BACKLOG_MAX_S = 0.5
_CSV_COLUMNS = ("time", "kind", "state", "time_left_s", "target_ua", "set_ua", "actual_ua", "polarity", "fault",
                "limited_ua", "mv", "dose_uas", "session", "event", "a", "b", "words")


# --- the port, read-only ----------------------------------------------------------------------
class ReadOnlyPort:
    """A serial port opened O_RDONLY (writing is impossible: the kernel refuses it), locked
    against other programs, in raw mode so the terminal driver never echoes what it reads."""

    def __init__(self, port):
        self.port = port
        if not os.path.exists(port):
            raise IontoError(EXIT_NO_DEVICE, "no device at %s: is the unit plugged in (or `ionto sim` running)?" % port)
        try:
            self.fd = os.open(port, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except PermissionError:
            raise IontoError(EXIT_BUSY, "permission denied on %s: add your user to the port's group (dialout or "
                             "uucp) and log in again" % port)
        except OSError as e:
            raise IontoError(EXIT_NO_DEVICE, "cannot open %s: %s" % (port, e.strerror or e))
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise IontoError(EXIT_BUSY, "%s is busy: another program has it (an ionto command, mpremote, a serial "
                             "terminal); close it and try again" % port)
        if os.isatty(self.fd):
            # Raw: no echo (which would write back to the unit), no line editing, no CR/NL mapping.
            a = termios.tcgetattr(self.fd)
            a[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR |
                      termios.IGNCR | termios.ICRNL | termios.IXON | termios.IXOFF)
            a[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
            a[2] = (a[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8 | termios.CREAD | termios.CLOCAL
            a[6][termios.VMIN] = 0
            a[6][termios.VTIME] = 0
            termios.tcsetattr(self.fd, termios.TCSANOW, a)

    def read(self, timeout):
        """Bytes that arrived within timeout (b"" if none). The device gone -> EXIT_NO_DEVICE."""
        try:
            r, _w, _x = select.select([self.fd], [], [], max(0.0, timeout))
            if not r:
                return b""
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return b""
        except InterruptedError:
            return b""
        except OSError as e:
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away: %s" % (self.port, e.strerror or e))
        if not data and not os.path.exists(self.port):
            raise IontoError(EXIT_NO_DEVICE, "the unit on %s went away" % self.port)
        return data

    def close(self):
        if self.fd is not None:
            os.close(self.fd)  # closing also releases the lock
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --- the model --------------------------------------------------------------------------------
class View:
    """What the monitor knows: the last status, identity, recent events and the history of
    (set, actual) current, one sample per @ST line (the unit prints one a second of its time)."""

    def __init__(self, history_s=600):
        self.status = None
        self.status_at = None
        self.identity = None
        self.shown_identity = None
        self.events = deque(maxlen=_EVENTS_SHOWN)
        self.hist = deque(maxlen=history_s)
        self.n_status = 0
        self.n_events = 0
        self.dose_est_uas = 0  # when the firmware does not report dose_uas

    def feed(self, line, now, record=True):
        """One line from the unit -> ('ST'|'EV'|'ID', value) or None. record=False: take the
        state but not the history (lines that waited in the port before we opened it)."""
        p = parse_line(line.encode() if isinstance(line, str) else line)
        if p is None:
            return None
        kind, v = p
        if kind == "ST":
            prev = self.status
            if prev is not None and not prev.treating and v.treating:
                self.dose_est_uas = 0  # a new session
            self.status, self.status_at = v, now
            if record:
                self.n_status += 1
                self.hist.append((v.set_ua or 0, v.actual_ua or 0, v.target_ua or 0))
                if v.treating and v.actual_ua:
                    self.dose_est_uas += v.actual_ua  # one line per unit second
        elif kind == "ID":
            self.identity = v
        elif record:
            self.n_events += 1
            v = dict(v, words=event_words(v["name"], v["a"], v["b"]), at=now)
            self.events.append(v)
        return kind, v

    def dose(self):
        """(mA.min, estimated?)."""
        st = self.status
        if st is not None and st.dose_uas is not None:
            return words.mamin(st.dose_uas), False
        return words.mamin(self.dose_est_uas), True

    def stale(self, now):
        return self.status_at is None or now - self.status_at > STALE_S

    # --- text ---------------------------------------------------------------------------
    def status_words(self):
        """A few short phrases about the current status."""
        st = self.status
        if st is None:
            return []
        out = []
        if st.limited_ua is not None and st.limited_ua >= 0:
            out.append("LIMITED to %s of %s target (skin resistance or output at its limit)"
                       % (ma(st.limited_ua), ma(st.target_ua)))
        if st.fault:
            out.append("FAULT " + words.fault_words(st.fault)
                       + (": " + words.fault_advice(st.fault) if st.state == "FAULT" else ""))
        return out

    def line(self, now_text):
        """One plain line for the latest status."""
        st = self.status
        dose, est = self.dose()
        parts = ["%s %-9s" % (now_text, state_words(st.state)), "left %s" % mmss(st.time_left_s),
                 "set %s" % ma(st.set_ua, 2), "actual %s" % ma(st.actual_ua, 2), "target %s" % ma(st.target_ua, 2),
                 "pol %s" % polarity(st.polarity), volts(st.mv or 0),
                 "dose %s%s" % ("~" if est else "", dose_mamin(dose))]
        if st.session is not None:
            parts.append("session %d" % st.session)
        return "  ".join(parts + self.status_words())

    def frame(self, port, width, now, plot=True, height=5, color=False):
        """The full view as lines (for redrawing a terminal in place)."""
        out = []
        ident = self.identity
        head = "ionto monitor  %s" % port
        if ident:
            head += "  unit %s  firmware %s" % (ident["serial"], ident["version"])
        out.append(head + "  " + time.strftime("%H:%M:%S"))
        st = self.status
        if st is None:
            out.append("waiting for the unit's status line (its application must be running)...")
        else:
            dose, est = self.dose()
            out.append("state   %-12s time left %-7s polarity %s%s" % (
                state_words(st.state), mmss(st.time_left_s), polarity(st.polarity),
                "   session %d" % st.session if st.session is not None else ""))
            out.append("current set %s   actual %s   target %s   electrodes %s" % (
                ma(st.set_ua, 2), ma(st.actual_ua, 2), ma(st.target_ua, 2), volts(st.mv or 0)))
            out.append("dose    %s%s%s" % ("~" if est else "", dose_mamin(dose),
                                                  "  (estimated here: this firmware does not report it)" if est else ""))
            for w in self.status_words():
                out.append("        " + w)
            if self.stale(now):
                out.append("        no status for %.0f s: the unit is busy at its REPL, resetting, or unplugged"
                           % (now - self.status_at))
        tail = []
        if self.events:
            tail.append("events:")
            for e in self.events:
                tail.append("  %s  %s" % (time.strftime("%H:%M:%S", time.localtime(e["wall"])) if "wall" in e else "",
                                          e["words"]))
        tail.append("Ctrl-C to quit; the treatment is not affected (this view only listens)")
        # Text is cut to the terminal's width (a wrapped line would break the redraw); the
        # plot is drawn to fit (and its colour codes must not be cut).
        w = max(20, width - 1)
        chart = plot_lines([h[0] for h in self.hist], [h[1] for h in self.hist], w, height, color) if plot else []
        return [line[:w] for line in out] + chart + [line[:w] for line in tail]


# --- the plot --------------------------------------------------------------------------------
# Braille dots: bit for (row 0..3 from the top, column 0..1) of a 2x4 cell.
_DOT = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_GREEN, _YELLOW, _RESET = "\x1b[32m", "\x1b[33m", "\x1b[0m"


def _nice_max(v):
    top = max(1000, v)  # at least 1 mA of scale
    for step in (1000, 2000, 5000, 10000):
        if top <= step * 5:
            return -(-top // step) * step
    return -(-top // 10000) * 10000


def plot_lines(set_ua, actual_ua, width=80, height=5, color=False):
    """A braille chart of the last samples: actual current filled from the bottom, set current
    as a line above it (so a gap shows a current that does not reach its setpoint). One dot
    column per sample (one unit second), two per character. -> lines (axis included)."""
    label_w = 6
    cols = max(10, width - label_w - 2)
    n = cols * 2
    s = list(set_ua)[-n:]
    a = list(actual_ua)[-n:]
    top = _nice_max(max(s + a + [0]))
    levels = height * 4
    cells = [[0] * cols for _ in range(height)]
    kind = [[0] * cols for _ in range(height)]  # 1: set only, 2: actual
    off = n - len(s)  # right-aligned: the newest sample at the right edge

    def dot(x, lv, k):
        row = height - 1 - lv // 4
        cells[row][x // 2] |= _DOT[3 - lv % 4][x % 2]
        kind[row][x // 2] = max(kind[row][x // 2], k)

    for i, (sv, av) in enumerate(zip(s, a)):
        x = off + i
        la = min(levels, int(round(max(0, av) * levels / top)))
        for lv in range(la):
            dot(x, lv, 2)
        ls = min(levels, int(round(max(0, sv) * levels / top)))
        if ls > 0:
            dot(x, ls - 1, 1)
    out = []
    for r in range(height):
        if r == 0:
            label = "%5.1f" % (top / 1000.0)
        elif r == height - 1:
            label = "%5.1f" % 0
        else:
            label = " " * 5
        chars = []
        for c in range(cols):
            ch = chr(0x2800 + cells[r][c])
            if color and cells[r][c]:
                ch = (_GREEN if kind[r][c] == 2 else _YELLOW) + ch + _RESET
            chars.append(ch)
        out.append("%s %s%s" % (label, "┤" if r in (0, height - 1) else "│", "".join(chars)))
    span = "-%s" % mmss(n)
    axis = " " * label_w + "└" + "─" * cols
    out.append(axis)
    ticks = " " * (label_w + 1) + span + " " * max(1, cols - len(span) - 3) + "now"
    out.append(ticks)
    out.append((" " * (label_w + 1) + "mA: filled = actual current, line = set current (one dot a second)")[:width])
    return out


# --- the command ---------------------------------------------------------------------------
def add_arguments(p):
    p.add_argument("--port", help="the unit's serial port (default: $IONTO_PORT, else the only unit)")
    p.add_argument("--plot", dest="plot", action="store_true", default=None,
                   help="draw the current plot (default on a terminal; in a pipe, once at the end)")
    p.add_argument("--no-plot", dest="plot", action="store_false", help="no plot")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--csv", metavar="FILE", help="also write every status line and event to FILE as CSV")


def run(args, stream=None):
    out = stream or sys.stdout
    tty = hasattr(out, "isatty") and out.isatty()
    plot = tty if args.plot is None else args.plot
    port = resolve_port(args.port)
    view = View()
    csv_file = writer = None
    if args.csv:
        try:
            csv_file = open(args.csv, "w", newline="")
        except OSError as e:
            raise IontoError(EXIT_USAGE, "cannot write %s: %s" % (args.csv, e.strerror or e))
        writer = csv.writer(csv_file)
        writer.writerow(_CSV_COLUMNS)
    color = tty and not os.environ.get("NO_COLOR")
    drawn = 0
    t0 = time.monotonic()
    deadline = None if args.duration is None else t0 + args.duration
    buf = b""
    try:
        with ReadOnlyPort(port) as rp:
            # What waited in the port before we opened it is old: take the latest status and
            # identity from it, but no history or events.
            start = time.monotonic()
            while time.monotonic() - start < _BACKLOG_MAX_S:
                data = rp.read(_BACKLOG_QUIET_S)
                if not data:
                    break
                buf += data
            *old, buf = buf.split(b"\n")
            for line in old:
                view.feed(_from_at(line) + b"\n", time.monotonic(), record=False)
            if not tty:
                _say_plain(out, view, None)
            last_draw = 0.0
            while True:
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                wait = 0.25 if deadline is None else min(0.25, deadline - now)
                data = rp.read(wait)
                now = time.monotonic()
                changed = False
                if data:
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    if len(buf) > 4096:
                        buf = b""  # not our protocol (REPL output, noise): drop it
                    for raw in lines:
                        got = view.feed(_from_at(raw) + b"\n", now)
                        if got is None:
                            continue
                        kind, v = got
                        if kind == "EV":
                            v["wall"] = time.time()
                        changed = True
                        if writer is not None and kind in ("ST", "EV"):
                            writer.writerow(_csv_row(kind, v))
                        if not tty:
                            _say_plain(out, view, (kind, v))
                if tty and (changed or now - last_draw >= 1.0):
                    width = shutil.get_terminal_size((100, 24)).columns
                    lines = view.frame(port, width, now, plot=plot, color=color)
                    if drawn:
                        out.write("\x1b[%dF\x1b[J" % drawn)  # back to the frame's first line, clear below
                    out.write("\n".join(lines) + "\n")
                    out.flush()
                    drawn = len(lines)
                    last_draw = now
    except KeyboardInterrupt:
        pass  # Ctrl-C: the unit never saw it (nothing is sent); we just stop listening
    finally:
        if csv_file is not None:
            csv_file.close()
    if not tty:
        if plot and view.hist:
            out.write("\n".join(plot_lines([h[0] for h in view.hist], [h[1] for h in view.hist])) + "\n")
        out.flush()
    if view.n_status == 0 and view.status is None:
        raise IontoError(EXIT_UNIT, "no status from the unit on %s in %.0f s: its application is not running "
                         "(at the REPL, or crashed): `ionto status` shows why" % (port, time.monotonic() - t0))
    return 0


def _from_at(raw):
    """A status-channel line may follow other output on the same line (a REPL prompt...)."""
    i = raw.find(b"@")
    return raw[i:] if i > 0 else raw


def _say_plain(out, view, item):
    stamp = time.strftime("%H:%M:%S")
    if item is None:
        if view.identity:
            view.shown_identity = view.identity
            out.write("%s unit %s firmware %s\n" % (stamp, view.identity["serial"], view.identity["version"]))
        out.flush()
        return
    kind, v = item
    if kind == "ST":
        out.write(view.line(stamp) + "\n")
    elif kind == "EV":
        out.write("%s event: %s\n" % (stamp, v["words"]))
    elif kind == "ID" and v != view.shown_identity:
        view.shown_identity = v
        out.write("%s unit %s firmware %s\n" % (stamp, v["serial"], v["version"]))
    out.flush()


def _csv_row(kind, v):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    if kind == "ST":
        d = v.as_dict()
        return [stamp, "ST"] + [d.get(k) if d.get(k) is not None else "" for k in _CSV_COLUMNS[2:13]] + ["", "", "", ""]
    return [stamp, "EV"] + [""] * 11 + [v["name"], v["a"], v["b"], v["words"]]

