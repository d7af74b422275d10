"""The unit's status channel: the lines its application prints without being asked.

    @ST STATE time_left_s target_ua set_ua actual_ua polarity fault limited_ua mv [dose_uas session]
    @EV ticks EVENT_NAME a b                  (each session event)
    @ID serial_hex version                    (at boot, then every few seconds)

(firmware/app.py writes them.) Reading them never needs a byte sent to the unit.

    kind, value = parse_line(b"@ST TREAT 1170 15000 15000 14980 0 0 -1 21000\r\n")
"""
import re
import time

IDLE_STATES = ("IDLE", "DONE", "STOPPED", "FAULT")  # the firmware's names of the states that do not treat
# The firmware ends each line with "\r\n"; on rp2 its text stdout turns every "\n" into "\r\n" on
# the way out, so a board's lines end "\r\r\n" (the virtual unit's stdout is not cooked: "\r\n").
LINE = re.compile(rb"@(ST|EV|ID) ([^\r\n]*)\r*\n")
# The application's status line at the start of a line: seen inside a REPL answer, it means the
# unit restarted (power lost, reset) and its application runs again.
APP = re.compile(rb"(?:^|\n)@(?:ST|ID) [A-Z0-9]")


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
    m = LINE.match(line.encode() if isinstance(line, str) else line)
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
