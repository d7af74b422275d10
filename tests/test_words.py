"""One vocabulary: words.py owns every word and number format the user reads, and no other host
module formats currents, durations, doses, polarity, faults, states or events on its own."""
import re
from pathlib import Path

from ionto import words

import limits
import session as S

HOST = Path(__file__).resolve().parents[1] / "host_tools" / "ionto"

# What only words.py may do: printf a current or a dose, count minutes:seconds, scale uA*s to
# mA.min, look a fault or a state up in the firmware's tables, name polarity by hand, or define
# a formatter of its own under one of the vocabulary's names.
STRAY = [
    (re.compile(r"%[-+ 0#]*\d*(?:\.\d+)?[fdg] ?mA\b"), "a current or dose formatted by hand"),
    (re.compile(r"%d:%02d"), "minutes:seconds counted by hand"),
    (re.compile(r"\b60_?000(?:\.0)?\b"), "uA*s -> mA.min scaled by hand"),
    (re.compile(r"\bfault_info\(|\.FAULTS\b"), "the fault table read by hand"),
    (re.compile(r"\b(?:STATE_NAMES|END_TEXT|EVENT_NAMES)\b"), "the state/end/event tables read by hand"),
    (re.compile(r"\"(?:anode [AB]|[AB]\+)\""), "polarity named by hand"),
    (re.compile(r"^\s*def (?:_?ma|_?mmss|_?dose|_?mamin|fmt_\w+|polarity_words|state_words|event_words|"
                r"end_words|fault_name)\((?!self)", re.M), "a formatter of its own"),
]


def test_no_module_but_words_formats_what_the_user_reads():
    bad = []
    for path in sorted(HOST.rglob("*.py")):
        if path.name == "words.py" or "unit_side" in path.parts:
            continue  # unit_side: MicroPython sent to the unit, it prints nothing for a user
        text = path.read_text()
        for rx, what in STRAY:
            for m in rx.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                bad.append("%s:%d: %s (%r): use ionto.words" % (path.relative_to(HOST), line, what, m.group(0)))
    assert not bad, "\n".join(bad)


def test_the_words_are_the_displays():
    # As the nurse guide says them: polarity as A+/B+, time as minutes:seconds, faults by the
    # display's two lines.
    assert words.polarity(0) == "A+" and words.polarity(1) == "B+" and words.polarity(None) == "?"
    assert words.mmss(75) == "1:15" and words.mmss(None) == "-" and words.mmss(3600) == "60:00"
    assert words.ma(12345) == "12.3 mA" and words.ma(9000, 2) == "9.00 mA" and words.ma(8000, unit=False) == "8.0"
    assert words.dose(600_000) == "10.0 mA.min" and words.dose(None, none="?") == "?"
    row = limits.fault_info(limits.F_SHORT)
    assert words.fault_words(limits.F_SHORT) == "%s (%s / %s)" % (row[1], row[2], row[3])
    assert words.fault_at(limits.F_SHORT, 4200).endswith(" at 4.2 mA")
    assert words.state_name(S.RAMP_UP) == "RAMP UP" and words.state_words("RAMP_UP") == "RAMP UP"
    assert words.state_name(S.REV_UP, halves=False) == "REVERSING" != words.state_name(S.REV_UP)


def test_an_event_reads_the_same_by_code_and_by_name():
    # The archive has codes, the status line (@EV) names: both give the same words.
    for code in range(1, len(S.EVENT_NAMES)):
        assert words.event_words(code, 1, 2000) == words.event_words(S.EVENT_NAMES[code].upper(), 1, 2000)
    assert words.event_words(99, 1, 2) == "event 99 1 2"
    assert words.event_words(S.EV_REVERSE, 1, 600) == "polarity reversed to B+ after 10:00 of treatment"


def test_every_command_shows_the_same_event_in_the_same_words():
    from ionto import logparse, monitor

    assert logparse.event_words is monitor.event_words is words.event_words
