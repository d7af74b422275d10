"""host_tools/ionto/logparse.py: the unit's log files (written here by firmware/logstore.py's own
Log on CPython in a temp dir) turned into archive rows, with torn tails and bit flips counted
and the good records kept, never misread."""
import os

import config
import limits
import logstore as LS
import records as R
import session as S
from hypothesis import given, settings
from hypothesis import strategies as st

from ionto import logparse as P


class Clock:
    def __init__(self, t=1000):
        self.t = t

    def __call__(self):
        return self.t


class FakeSession:
    def __init__(self):
        self.preset_idx = 0
        self.preset = config.compile_presets(config.defaults())[0]
        self.target_ua = 15000
        self.treat_ms = 0


def _session(lg, s, secs=150, reason=S.END_STOP, dose=99_000, end=True):
    """A session with an adjustment, a pause and its resume, a polarity reversal and a fault
    event, 150 samples (two T_SAMPLES records) and, if `end`, its end."""
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.on_session_event(S.EV_START, 0, s.target_ua, s)
    for i in range(secs):
        if i == 10:
            lg.on_session_event(S.EV_ADJUST, 15000, 15500, s)
        if i == 20:
            lg.on_session_event(S.EV_PAUSE, 20, 9000, s)
        if i == 30:
            lg.on_session_event(S.EV_RESUME, 20, 15500, s)
        if i == 40:
            lg.on_session_event(S.EV_REVERSE, 1, 40, s)
        state = S.PAUSED if 20 <= i < 30 else S.TREAT
        lg.sample(100 * i, 90 * i + 1, 2000 + i, 3000 + 10 * i, 1 if i >= 40 else 0, state)
    if end:
        s.treat_ms = secs * 1000
        lg.on_session_event(S.EV_END, reason, dose, s)
    lg.service(False)


def _unit(tmp_path, sessions=1, end_last=True, clock=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    lg = LS.Log(str(tmp_path / "log"), clock=clock or Clock())
    lg.open("power on", "0.1.0")
    s = FakeSession()
    for k in range(sessions):
        _session(lg, s, end=end_last or k < sessions - 1)
    return tmp_path / "log"


def _files(d, n):
    return (d / ("s%06d.sum" % n)).read_bytes(), (d / ("s%06d.trc" % n)).read_bytes()


def _expected_samples(secs=150):
    return [(i, 100 * i, 90 * i + 1, 2000 + i, 3000 + 10 * i, S.PAUSED if 20 <= i < 30 else S.TREAT,
             1 if i >= 40 else 0) for i in range(secs)]


def test_a_whole_session_becomes_rows(tmp_path):
    d = _unit(tmp_path)
    p = P.parse_session(1, *_files(d, 1))
    assert p.damage == [] and p.damaged == 0
    assert p.samples == _expected_samples()
    r = p.row
    assert (r["session"], r["boot"], r["preset_name"], r["firmware"], r["target_ua"], r["duration_s"]) == \
        (1, 1, "hands_feet", "0.1.0", 15000, 1200)
    assert (r["end_reason"], r["end_name"], r["dose_uas"], r["treat_s"], r["lost"]) == \
        (S.END_STOP, S.END_TEXT[S.END_STOP], 99_000, 150, 0)
    assert (r["n_samples"], r["max_actual_ua"], r["pauses"], r["faults"], r["complete"]) == (150, 90 * 149 + 1, 1, 0, 1)
    assert r["rtc_valid"] == 0 and r["start_t"] == 1000  # seconds since boot
    codes = [(e[1], e[2], e[3], e[4]) for e in p.events]
    assert codes == [(S.EV_START, "start", 0, 15000), (S.EV_ADJUST, "adjust", 15000, 15500),
                     (S.EV_PAUSE, "pause", 20, 9000), (S.EV_RESUME, "resume", 20, 15500),
                     (S.EV_REVERSE, "reverse", 1, 40), (S.EV_END, "end", S.END_STOP, 99_000)]
    # Session events carry the second of the next sample: on the samples' time axis.
    assert [e[0] for e in p.events] == [0, 10, 20, 30, 40, 150]


def test_an_open_session_is_not_complete_and_a_missing_trace_keeps_the_summary(tmp_path):
    d = _unit(tmp_path, sessions=2, end_last=False)
    sm = (d / "s000002.sum").read_bytes()
    p = P.parse_session(2, sm, None)
    assert p.row["complete"] == 0 and p.row["end_reason"] is None and p.row["n_samples"] == 0
    assert p.row["preset_name"] == "hands_feet" and p.damage == []
    # A trace pruned on the unit: the summary alone still gives the session's end.
    p1 = P.parse_session(1, (d / "s000001.sum").read_bytes(), None)
    assert p1.row["complete"] == 1 and p1.row["end_reason"] == S.END_STOP and p1.samples == []


def test_rtc_time_is_unix_and_boot_time_is_since_boot(tmp_path):
    clk = Clock(P.RTC_POWERON_UNIX + 77)  # rp2's power-on RTC + 77 s of uptime
    d = _unit(tmp_path / "a", clock=clk)
    assert P.parse_session(1, *_files(d, 1)).row["start_t"] == 77
    clk2 = Clock(1_780_000_000)  # a host-set RTC (2026)
    d2 = _unit(tmp_path / "b", clock=clk2)
    r = P.parse_session(1, *_files(d2, 1)).row
    assert r["rtc_valid"] == 1 and r["start_t"] == 1_780_000_000


def test_every_truncation_of_the_trace_keeps_the_good_records_and_reports_the_torn_one(tmp_path):
    d = _unit(tmp_path)
    sm, tr = _files(d, 1)
    frames = [off for _t, _p, off in R.scan(tr)]
    full = P.parse_session(1, sm, tr)
    for cut in range(frames[1] + 1, len(tr), 7):
        p = P.parse_session(1, sm, tr[:cut])
        whole = sum(1 for f in frames if f < cut) - (0 if cut in frames else 1)
        assert p.damaged == (0 if cut in frames else 1)
        if p.damaged:
            assert p.damage[0].name == "s000001.trc" and p.damage[0].torn > 0
            assert "torn" in p.damage[0].words()
        # Never misread: what is kept is exactly what was written.
        assert set(p.samples) <= set(full.samples)
        assert p.events == full.events[:len(p.events)]
        assert len(list(R.scan(tr[:cut]))) == whole
    # The summary's end record torn off: the session reads as not complete, with damage.
    p = P.parse_session(1, sm[:-3], tr)
    assert p.row["complete"] == 0 and p.damaged == 1 and p.samples == full.samples


def test_a_bit_flip_costs_its_record_only(tmp_path):
    d = _unit(tmp_path)
    sm, tr = _files(d, 1)
    frames = [off for _t, _p, off in R.scan(tr)]
    bad = bytearray(tr)
    bad[frames[0] + 200] ^= 0x10  # inside the first samples block (seconds 0..98)
    p = P.parse_session(1, sm, bytes(bad))
    assert p.damaged == 1 and p.damage[0].bad == 1 and p.damage[0].torn == 0
    assert [s[0] for s in p.samples] == list(range(99, 150))
    assert p.samples == _expected_samples()[99:]
    assert p.row["n_samples"] == 51 and p.row["complete"] == 1
    assert len(p.events) == 6
    assert "damaged record" in p.damage[0].words()


def test_a_record_of_another_session_is_not_taken_for_this_one(tmp_path):
    d = _unit(tmp_path, sessions=2)
    sm1, tr1 = _files(d, 1)
    _sm2, tr2 = _files(d, 2)
    p = P.parse_session(1, sm1, tr1 + tr2)
    assert p.samples == _expected_samples() and p.damaged == len(list(R.scan(tr2)))
    assert p.damage[0].foreign == p.damaged


def test_event_log_rows_with_firmware_names(tmp_path):
    clk = Clock(P.RTC_POWERON_UNIX + 5)
    lg = LS.Log(str(tmp_path / "log"), clock=clk)
    lg.open("power on", "0.1.0")
    lg.set_clock(1_780_000_000)
    lg.event(LS.L_FAULT, limits.F_SHORT, 4200)
    lg.flush()
    rows, dmg = P.parse_events((tmp_path / "log" / "events.log").read_bytes())
    assert dmg.count == 0
    assert [(r[4], r[5]) for r in rows] == [(LS.L_BOOT, "boot"), (LS.L_CLOCK, "clock"), (LS.L_FAULT, "fault")]
    assert rows[0][8] == "reset power on, firmware 0.1.0" and rows[0][2] == 0 and rows[0][3] == 5
    assert rows[2][2] == 1 and (rows[2][6], rows[2][7]) == (limits.F_SHORT, 4200)
    seqs = [r[0] for r in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    # Damage in the event log is counted, the rest kept.
    data = bytearray((tmp_path / "log" / "events.log").read_bytes())
    rows2, dmg2 = P.parse_events(bytes(data[:-2]))
    assert [r[0] for r in rows2] == seqs[:2] and dmg2.count == 1


def test_words_come_from_the_firmware():
    assert P.event_words(S.EV_FAULT, limits.F_SHORT, 4200).startswith("FAULT short (SHORT CIRCUIT / check trays) at 4.2 mA: ")
    assert limits.fault_info(limits.F_SHORT)[4] in P.event_words(S.EV_FAULT, limits.F_SHORT, 4200)
    assert P.event_words(S.EV_STATE, S.TREAT, S.RAMP_UP) == "RAMP UP -> TREAT"
    assert P.event_words(S.EV_END, S.END_DONE, 60_000 * 12) == "ended: time complete, dose 12.0 mA.min"
    assert P.end_words(LS.END_POWER_LOST).startswith("power lost")
    for code in range(len(S.EVENT_NAMES) + 2):
        assert P.event_words(code, 1, 2)  # every code has words, unknown ones included
    assert P.mamin(72_000_000) == limits.DOSE_MAX_MAMIN


_SESSION_FILES = {}


def _fixture_files(tmp_path_factory):
    if not _SESSION_FILES:
        d = _unit(tmp_path_factory.mktemp("fuzz"))
        sm, tr = _files(d, 1)
        _SESSION_FILES.update(sm=sm, tr=tr, full=P.parse_session(1, sm, tr))
    return _SESSION_FILES


@settings(max_examples=150, deadline=None)
@given(cut=st.integers(0, 2000), flips=st.lists(st.tuples(st.integers(0, 1700), st.integers(0, 7)), max_size=4),
       junk=st.binary(max_size=40))
def test_fuzzed_files_never_raise_nor_misread(tmp_path_factory, cut, flips, junk):
    f = _fixture_files(tmp_path_factory)
    tr = bytearray(f["tr"][:cut] + junk + f["tr"][cut:])
    for pos, bit in flips:
        if pos < len(tr):
            tr[pos] ^= 1 << bit
    p = P.parse_session(1, f["sm"], bytes(tr))
    full = f["full"]
    # Every kept sample is one the unit wrote at that second (CRC32 lets no flip through).
    assert set(p.samples) <= set(full.samples)
    assert all(e in full.events for e in p.events)
    if p.samples != full.samples or len(p.events) != len(full.events):
        assert p.damaged >= 1
    assert p.row["n_samples"] == len(p.samples)
    # The same bytes as an event log: nothing read as an event, all of it damage or foreign.
    rows, _d = P.parse_events(bytes(tr))
    assert rows == []


def test_firmware_modules_are_imported_not_copied():
    src = open(P.__file__).read()
    assert "EVENT_NAMES = (" not in src and "END_TEXT = (" not in src and "def scan(" not in src
    assert os.path.samefile(P.R.__file__, R.__file__)


def test_imports_on_a_plain_install_without_a_micropython_module():
    # A technician's laptop has no `micropython` package (the tests' shims or Blinka give one
    # here): session.py's const() must still resolve.
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; sys.modules['micropython'] = None; sys.path.insert(0, %r)\n"
            "from ionto import logparse\nprint(logparse.event_words(8, 1, 60000))" % str(root / "host_tools"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ended: time complete, dose 1.0 mA.min"


def test_a_session_cut_by_power_loss_reads_as_closed_at_the_next_boot(tmp_path):
    d = tmp_path / "log"
    lg = LS.Log(str(d), clock=Clock())
    lg.open("power on", "0.1.0")
    s = FakeSession()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.on_session_event(S.EV_START, 0, 15000, s)
    for i in range(30):
        lg.sample(i, i, 1000, 2000, 0, S.TREAT)
    # Power cut while treating: OFF_ONLY wrote nothing of the trace; the next boot closes it.
    p = P.parse_session(1, (d / "s000001.sum").read_bytes(), None)
    assert p.row["complete"] == 0
    LS.Log(str(d), clock=Clock()).open("power on", "0.1.0")
    p = P.parse_session(1, (d / "s000001.sum").read_bytes(), None)
    assert p.row["complete"] == 1 and p.row["end_reason"] == LS.END_POWER_LOST
    assert p.row["end_name"].startswith("power lost") and p.damage == []


def test_event_log_entries_in_words():
    from ionto import logparse as P

    assert P.log_event_words("boot", None, None, "reset power-on, firmware 0.1.0") == "reset power-on, firmware 0.1.0"
    assert P.log_event_words("clock", 1609459300, 1800000000, None) == (
        "clock set by the host: unset -> 2027-01-15 08:00:00 UTC")
    assert P.log_event_words("fault", limits.F_STALE, 12000, None).startswith("FAULT sensor_stale (")
    assert "at 12.0 mA: " in P.log_event_words("fault", limits.F_STALE, 12000, None)
    assert P.log_event_words("session", 4, S.END_STOP, None) == "session 4 ended: stopped by nurse"
    assert P.log_event_words("pruned", 2, 0, None) == "flash full: session 2's trace not yet archived removed"
    assert P.log_event_words("recovered", 3, 120, None).startswith("session 3 cut by power loss")
    assert P.state_name(S.REV_DOWN) != P.state_name(S.REV_UP)  # one word on the display, two in the log
