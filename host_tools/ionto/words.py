"""The one vocabulary of the host tools: every word and number format the user reads.

States, session events, faults, end reasons, polarity, currents, durations, doses and unit
times are written here and nowhere else, so `ionto monitor`, `ionto logs`, `ionto status`, the
course report and the panel say the same thing the same way (the panel page formats its
readout in its own JavaScript, to these formats, so a saved record replays without the host). The words come from the firmware's
own tables (session.STATE_NAMES / END_TEXT / EVENT_NAMES, limits.FAULTS, logstore.LOG_NAMES),
imported, never copied; where the unit's display has a word (A+ / B+, RAMP UP, minutes:seconds,
SHORT CIRCUIT / check trays) the host uses that word, as the nurse guide does.

    ma(12345) -> "12.3 mA"        mmss(75) -> "1:15"          dose(600000) -> "10.0 mA.min"
    polarity(1) -> "B+"           state_name(3) -> "RAMP UP"  fault_words(5) -> "short (SHORT CIRCUIT / check trays)"
    event_words("reverse", 1, 600) -> "polarity reversed to B+ after 10:00 of treatment"

Tests (tests/test_words.py) check that no other host module formats these on its own.
"""
import time

from .fw import firmware


def _S():
    return firmware("session")


def _L():
    return firmware("limits")


# --- numbers -----------------------------------------------------------------------------------
def ma(ua, digits=1, unit=True, none="-"):
    """A current in uA -> "12.3 mA" (or "12.3" for a table column headed mA)."""
    return ma_value(None if ua is None else ua / 1000.0, digits, unit, none)


def ma_number(ua, digits=1):
    """A current in uA -> mA rounded as the report's figures (a number, for JSON and CSV)."""
    return None if ua is None else round(ua / 1000.0, digits)


def ma_value(m, digits=1, unit=True, none="-"):
    """A current already in mA (the report's figures) -> "12.3 mA"."""
    if m is None:
        return none
    return "%.*f%s" % (digits, m, " mA" if unit else "")


def mamin(uas):
    """uA*s -> mA.min (the clinical dose unit), a number."""
    return None if uas is None else uas / float(_L().UAS_PER_MAMIN)


def dose(uas, digits=1, unit=True, none="-"):
    """A dose in uA*s -> "10.0 mA.min" (or "10.0" for a column headed mA.min)."""
    return dose_mamin(mamin(uas), digits, unit, none)


def dose_mamin(m, digits=1, unit=True, none="-"):
    """A dose already in mA.min -> "10.0 mA.min"."""
    if m is None:
        return none
    return "%.*f%s" % (digits, m, " mA.min" if unit else "")


def mmss(s, none="-"):
    """Seconds -> minutes:seconds, as the unit's display counts time ("19:30")."""
    if s is None:
        return none
    s = int(s)
    return "%d:%02d" % (s // 60, s % 60)


def volts(mv, none="-"):
    return none if mv is None else "%.1f V" % (mv / 1000.0)


def kohm(ohm, digits=1, none="-"):
    return none if ohm is None else "%.*f kOhm" % (digits, ohm / 1000.0)


# --- times of the unit's clock -----------------------------------------------------------------
def utc(t):
    """Unix seconds -> "2026-01-02 03:04:05 UTC" ("?" when it is no time)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(t)))
    except (OverflowError, ValueError, TypeError, OSError):
        return "?"


def offset(s):
    """Unit minus host, in words."""
    a = abs(int(s))
    if a == 0:
        return "in step with the host"
    if a < 120:
        span = "%d s" % a
    elif a < 2 * 86400:
        span = "%.1f h" % (a / 3600.0)
    else:
        span = "%.0f days" % (a / 86400.0)
    return "%s %s the host" % (span, "ahead of" if s > 0 else "behind")


def unit_when(rtc_valid, t, boot, clock=None, seconds=False):
    """A time of the unit's clock as archived (archive.py): in the clinic's time zone once it is
    set (`ionto course tz`), so a session falls on the same day here as in the course and the
    report; else in UTC; "boot N +Ss" when the unit's clock was not set."""
    if t is None:
        return "?"
    if not rtc_valid:
        return "boot %s +%ds" % (boot, t or 0)
    if clock is not None and clock.configured:
        return clock.words(t, seconds=seconds)
    return utc(t) if seconds else utc(t)[:-7] + " UTC"


def session_start(row, clock=None):
    """An archived session's start (a sessions row)."""
    return unit_when(row["rtc_valid"], row["start_t"], row["boot"], clock)


# --- states, polarity, end reasons -------------------------------------------------------------
def polarity(p):
    """Which electrode is positive, as the unit's display says it."""
    return "?" if p is None else ("B+" if p else "A+")


def state_words(state):
    """A state as the display writes it: "RAMP_UP" (the status line's one word) -> "RAMP UP";
    a state code -> state_name(code)."""
    if isinstance(state, int):
        return state_name(state)
    return (state or "?").replace("_", " ")


def state_name(code, halves=True):
    """A state code -> the display's name; with halves, the two halves of a polarity reversal
    (one word on the display) told apart, since logs are also read by an engineer."""
    S = _S()
    if halves and code == S.REV_DOWN:
        return "REVERSING (down)"
    if halves and code == S.REV_UP:
        return "REVERSING (up)"
    return S.STATE_NAMES[code] if 0 <= code < len(S.STATE_NAMES) else "state %d" % code


def display_states():
    """Every state's name as the display shows it, by code (for the panel's page)."""
    return list(_S().STATE_NAMES)


def event_name(code):
    """A session event code -> its name (session.EVENT_NAMES), as archived and on @EV lines."""
    S = _S()
    return S.EVENT_NAMES[code] if 0 <= code < len(S.EVENT_NAMES) else "code%d" % code


def end_words(reason):
    """Why a session ended (session.END_*, logstore.END_POWER_LOST)."""
    LS = firmware("logstore")
    S = _S()
    if reason is None:
        return "not ended"
    if reason == LS.END_POWER_LOST:
        return "power lost (closed at the next boot)"
    if 0 < reason < len(S.END_TEXT):
        return S.END_TEXT[reason]
    if reason == 0:
        return "closed without a recorded reason"
    return "reason %d" % reason


def session_end_words(row):
    """Why an archived session (a sessions row) ended: the words stored at its pull, else its
    reason's."""
    if row.get("end_reason") is None:
        return "not ended"
    if row.get("end_name"):
        return str(row["end_name"]).replace("_", " ")
    try:
        return end_words(int(row["end_reason"]))
    except (ValueError, TypeError):
        return "end %s" % row["end_reason"]


# --- faults ------------------------------------------------------------------------------------
def fault_table():
    """Every fault and blocking code: (code, name, display line 1, line 2, what to do)."""
    return list(_L().FAULTS)


def _fault_row(code):
    try:
        return _L().fault_info(int(code))
    except (TypeError, ValueError):
        return None


def fault_name(code):
    """A fault or blocking code -> its short name ("short")."""
    row = _fault_row(code)
    return row[1] if row else "fault %s" % code


def fault_words(code):
    """-> "short (SHORT CIRCUIT / check trays)": the name and the display's two lines."""
    row = _fault_row(code)
    if row is None:
        return "fault %s" % code
    return "%s (%s / %s)" % (row[1], row[2], row[3].strip())


def fault_advice(code):
    """What the nurse should do about a fault (limits.FAULTS)."""
    row = _fault_row(code)
    return row[4] if row else "see the unit's display"


def fault_at(code, ua):
    """A fault with the current measured at the trip."""
    return "%s at %s" % (fault_words(code), ma(ua))


# --- events --------------------------------------------------------------------------------------
def _event_name(code):
    S = _S()
    if isinstance(code, int):
        return S.EVENT_NAMES[code] if 0 < code < len(S.EVENT_NAMES) else ""
    return (code or "").lower()


def event_words(code, a, b):
    """One session event (session.EV_* code, or its EVENT_NAMES name as on the status line's
    @EV) in words."""
    n = _event_name(code)
    if n == "state":
        return "%s -> %s" % (state_name(b), state_name(a))
    if n == "start":
        return "treatment started: preset %d, target %s" % (a, ma(b))
    if n == "adjust":
        return "target changed %s -> %s" % (ma(a), ma(b))
    if n == "pause":
        return "paused: skin contact lost after %s of treatment (setpoint was %s)" % (mmss(a), ma(b))
    if n == "resume":
        return "resumed after %s of treatment, target %s" % (mmss(a), ma(b))
    if n == "reverse":
        return "polarity reversed to %s after %s of treatment" % (polarity(a), mmss(b))
    if n == "fault":
        return "FAULT %s: %s" % (fault_at(a, b), fault_advice(a))
    if n == "end":
        return "ended: %s, dose %s" % (end_words(a), dose(b))
    if n == "refused":
        return "start refused in %s: %s: %s" % (state_name(b), fault_words(a), fault_advice(a))
    if n == "limited":
        return "current limited: %s reachable of %s target" % (ma(a), ma(b))
    if n == "limit_end":
        return "no longer limited: %s of %s" % (ma(a), ma(b))
    if n == "mode":
        return "preset %d chosen" % a
    if n == "contact":
        return "skin contact: %s, load %s" % (ma(a, 2), kohm(b))
    if n == "cleared":
        return "fault cleared: %s" % fault_words(a)
    if isinstance(code, int):
        return "event %d %s %s" % (code, a, b)
    return "%s %s %s" % (code, a, b)


_PRUNED = ("trace not yet archived", "archived trace", "summary", "old event log")


def log_event_words(name, a, b, text):
    """An event-log entry (logstore.L_*, by its LOG_NAMES name) in words."""
    if text is not None and name in ("boot", "config", "selftest", "firmware", "host", "journal", "clock"):
        return text
    if name == "clock":
        # An old time before the year the unit counts as "set" was rp2's reset-time RTC.
        unset = (a or 0) < (firmware("logstore").RTC_SET_YEAR - 1970) * 31556952
        return "clock set by the host: %s -> %s" % ("unset" if unset else utc(a), utc(b))
    if name in ("fault", "refused", "cleared"):
        return event_words(name, a, b)
    if name == "session":
        return "session %d ended: %s" % (a, end_words(b))
    if name == "pruned":
        what = _PRUNED[b] if 0 <= (b or 0) < len(_PRUNED) else "file"
        return "flash full: session %d's %s removed" % (a, what) if b != 3 else "flash full: old event log removed"
    if name == "lost":
        return "%d records or samples lost, %d write errors" % (a, b)
    if name == "recovered":
        return "session %d cut by power loss: closed with %d samples on flash" % (a, b)
    return text or "%s (%s, %s)" % (name, a, b)
