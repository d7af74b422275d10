"""`ionto logs pull | list | show | export | plot` end to end: sessions run on the virtual unit
(the nurse's buttons through the control channel), pulled over its pseudo-terminal with the
real mpremote underneath (link.py), checked against what the unit logged; incremental pulls,
the acknowledgement on the unit, a torn and a bit-flipped trace record, and the archive's
listings, words, exports and plot."""
import binascii
import csv
import io
import json
import sqlite3
import contextlib
import struct

import config
import pytest
import records as R
import session as S

from ionto import archive, cli, link, logs_cmd
from ionto.errors import EXIT_AMBIGUOUS, EXIT_DAMAGED, EXIT_NOT_FOUND, EXIT_TREATING, EXIT_USAGE
from ionto.scripted import paced, press, wait_for, wait_virtual_s
from ionto.simctl import VirtualUnit

from helpers import boots, ready, unit_file, wait_restart

pytestmark = pytest.mark.slow




@pytest.fixture(scope="module")
def vu(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, accel=0) as v:
        ready(v.ctl)
        # A short ramp (10 s to 8 mA) keeps each session a few seconds of wall time.
        cfg = config.defaults()
        cfg["presets"][0].update(target_ua=8000, ramp_up_s=10, ramp_down_s=5, reverse=False)
        with link.Link.open(v.port) as u:
            u.enter()
            r = u.hostcmd("config_put", json.dumps(cfg))
            assert r["ok"], r
        ready(v.ctl)
        yield v


@pytest.fixture(scope="module")
def db_path(tmp_path_factory):
    return str(tmp_path_factory.mktemp("archive") / "archive.sqlite")


def run_session(c):
    """START, confirm, wait for TREAT, 2 s of it, STOP, wait until its log is on flash.
    -> (session number, end reason) as the firmware has them."""
    press(c, "START", "START")
    wait_for(c, "app.s.state == %d" % S.TREAT, timeout=60)
    wait_virtual_s(c, 2)
    press(c, "STOP")
    wait_for(c, "app.s.state == %d and not log.pending()" % S.STOPPED, timeout=60)
    n, reason = c.eval("log.session"), c.eval("app.s.end_reason")
    press(c, "STOP")  # STOPPED -> IDLE
    return n, reason


def end_record(c, n):
    return [r for r in R.read(unit_file(c, "s%06d.sum" % n)) if r["type"] == "end"][-1]


def ionto(capsys, *argv):
    rc = cli.main(["logs"] + list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def ionto_captured(*argv):
    """`ionto logs ARGV` with its output captured here (for module fixtures, where capsys is not)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["logs"] + list(argv))
    return rc, out.getvalue(), err.getvalue()


def pull(vu, db_path, capsys=None):
    """`ionto logs pull`, then wait for the unit to be back at IDLE. After a treatment its
    watchdog stays armed: the soft reboot that ends the host session becomes a watchdog reset
    (firmware/main.py), so wait for that boot too."""
    c = vu.ctl
    armed = c.eval("_b.wdt is not None")
    n = boots(c)
    argv = ("pull", "--port", vu.port, "--archive", db_path)
    r = ionto(capsys, *argv) if capsys is not None else ionto_captured(*argv)
    if armed:
        wait_restart(c, n, timeout=30)
    ready(c)
    return r


def rows(db_path, q, *p):
    db = sqlite3.connect(db_path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(q, p).fetchall()
    finally:
        db.close()


LOGGED = {}  # session -> end reason, as the firmware had it


def _snapshot(c, db_path, sessions):
    return {"sessions": [dict(r) for r in rows(db_path, "SELECT * FROM sessions WHERE session IN (%s) ORDER BY session"
                                            % ",".join(map(str, sessions)))],
            "events": [e["name"] for e in rows(db_path, "SELECT name FROM events ORDER BY seq")],
            "acked": c.eval("open('/log/acked').read().strip()")}


@pytest.fixture(scope="module")
def first_pull(vu, db_path):
    """Two sessions run on the new unit and pulled into an empty archive: what that first pull
    said and what the archive and the unit held right after it (the tests that follow in any
    order add their own sessions and pulls)."""
    c = vu.ctl
    for _ in range(2):
        n, reason = run_session(c)
        LOGGED[n] = reason
    rc, out, err = pull(vu, db_path)
    return dict(rc=rc, out=out, err=err, logged=dict(LOGGED), **_snapshot(c, db_path, sorted(LOGGED)))


def test_pull_archives_what_the_unit_logged_and_acknowledges_it(vu, db_path, first_pull):
    c = vu.ctl
    logged, rc, out, err = first_pull["logged"], first_pull["rc"], first_pull["out"], first_pull["err"]
    assert sorted(logged) == [1, 2] and set(logged.values()) == {S.END_STOP}
    assert rc == 0, err
    assert "2 sessions new, 0 updated" in out and "0 damaged records" in out
    assert "acknowledged sessions up to 2" in out
    # The unit's clock was never set: the pull says these sessions have no date, and what to do.
    assert "warning: 2 sessions without a date (sessions 1-2)" in out and "ionto clock sync" in out
    serial = c.eval("__import__('binascii').hexlify(__import__('machine').unique_id()).decode().upper()")
    got = first_pull["sessions"]
    assert [(r["serial"], r["session"]) for r in got] == [(serial, 1), (serial, 2)]
    for r in got:
        end = end_record(c, r["session"])  # what the firmware wrote at the session's end
        assert (r["end_reason"], r["end_name"]) == (logged[r["session"]], S.END_TEXT[S.END_STOP])
        assert r["n_samples"] == end["samples"] > 10 and r["dose_uas"] == end["dose_uas"]
        assert r["complete"] == 1 and r["damaged"] == 0 and r["preset_name"] == "hands_feet"
        assert r["target_ua"] == 8000 and r["max_actual_ua"] > 7000
        assert r["sum_bytes"] == len(unit_file(c, "s%06d.sum" % r["session"]))
        assert r["trc_bytes"] == len(unit_file(c, "s%06d.trc" % r["session"]))
        n = rows(db_path, "SELECT COUNT(*) FROM samples WHERE session = ?", r["session"])[0][0]
        assert n == r["n_samples"]
    assert first_pull["acked"] == "2"
    ev = first_pull["events"]
    assert ev.count("session") == 2 and "boot" in ev
    assert rows(db_path, "SELECT firmware FROM units WHERE serial = ?", serial)[0][0] == "0.1.0"


def test_undated_sessions_are_named_as_ranges():
    from ionto import logs_cmd

    assert logs_cmd._ranges([7]) == "session 7"
    assert logs_cmd._ranges([3, 1, 2, 7, 9, 10]) == "sessions 1-3, 7, 9-10"


def test_a_second_pull_finds_nothing_new(vu, db_path, capsys, first_pull):
    before = [tuple(r) for r in rows(db_path, "SELECT * FROM sessions ORDER BY session")]
    rc, out, err = pull(vu, db_path, capsys)
    assert rc == 0, err
    assert "0 sessions new, 0 updated, 0 samples" in out and "acknowledged" not in out
    assert [tuple(r) for r in rows(db_path, "SELECT * FROM sessions ORDER BY session")] == before


def test_a_new_session_alone_is_pulled(vu, db_path, capsys, first_pull):
    c = vu.ctl
    last = max(LOGGED)  # every session run so far is archived
    n, reason = run_session(c)
    LOGGED[n] = reason
    assert n == last + 1
    pulled = {r["session"]: r["pulled_at"] for r in rows(db_path, "SELECT session, pulled_at FROM sessions")}
    rc, out, err = pull(vu, db_path, capsys)
    assert rc == 0, err
    assert "1 session new, 0 updated" in out and "acknowledged sessions up to %d" % n in out
    r = rows(db_path, "SELECT * FROM sessions WHERE session = ?", n)[0]
    assert r["n_samples"] == end_record(c, n)["samples"] and r["end_reason"] == reason
    # The older sessions were not fetched again.
    now = {r["session"]: r["pulled_at"] for r in rows(db_path, "SELECT session, pulled_at FROM sessions")}
    assert {k: now[k] for k in pulled} == pulled
    assert c.eval("open('/log/acked').read().strip()") == str(n)


@pytest.fixture(scope="module")
def torn(vu, db_path, first_pull):
    """A session whose trace has a bit flipped in its first session event (START) and its last
    record (END) torn 5 bytes short, then pulled twice: what each pull said and what was kept."""
    c = vu.ctl
    n, reason = run_session(c)
    LOGGED[n] = reason
    name = "s%06d.trc" % n
    data = unit_file(c, name)
    frames = [(off, R.unpack(t, p)) for t, p, off in R.scan(data)]
    bad = bytearray(data)
    sevs = [(off, r) for off, r in frames if r["type"] == "sev"]
    if sevs:
        bad[sevs[0][0] + 20] ^= 0x08
    bad = bad[:-5]
    c.exec("f = open('/log/%s', 'wb')\nf.write(__import__('binascii').unhexlify(%r))\nf.close()"
           % (name, binascii.hexlify(bytes(bad)).decode()))
    first = pull(vu, db_path)
    snap = _snapshot(c, db_path, [n])
    samples = [tuple(g) for g in rows(db_path, "SELECT t_s, set_ua, actual_ua FROM samples WHERE session = ? "
                                               "ORDER BY t_s", n)]
    sev = [tuple(e) for e in rows(db_path, "SELECT t_s, code, a, b FROM session_events WHERE session = ? "
                                          "ORDER BY rowid", n)]
    again = pull(vu, db_path)
    return dict(n=n, reason=reason, name=name, data=data, frames=frames, sevs=sevs, first=first, again=again,
                samples=samples, session_events=sev, **snap)


def test_torn_and_flipped_records_are_reported_and_the_good_ones_kept(vu, torn):
    c = vu.ctl
    n, reason, name, data, frames, sevs = (torn[k] for k in ("n", "reason", "name", "data", "frames", "sevs"))
    assert frames[-1][1]["type"] == "sev" and len(sevs) >= 4  # samples first, events after
    rc, out, err = torn["first"]
    assert rc == EXIT_DAMAGED
    assert "1 session new" in out and "2 damaged records" in out
    assert "damaged: %s: 1 damaged record" % name in out and "a torn last record (%d bytes)" % (
        len(data) - 5 - frames[-1][0]) in out
    assert err.startswith("ionto logs: error: 2 damaged records in 1 file") and "good records" in err
    r = torn["sessions"][0]
    assert r["damaged"] == 2 and r["complete"] == 1 and r["end_reason"] == reason
    # Every sample the unit wrote is kept, at its second; the events between the damage too.
    written = [(r0["t0"] + i, s[0], s[1]) for _o, r0 in frames if r0["type"] == "samples"
               for i, s in enumerate(r0["samples"])]
    assert r["n_samples"] == len(written) == end_record(c, n)["samples"]
    assert torn["samples"] == written
    assert torn["session_events"] == [(x["sec"], x["code"], x["a"], x["b"]) for _o, x in sevs[1:-1]]
    # Archived and complete: acknowledged like the others (the damage is on the unit's flash).
    assert torn["acked"] == str(n)
    # Pulled again: nothing new, no damage reported twice.
    rc, out, err = torn["again"]
    assert rc == 0 and "0 sessions new" in out, err


def test_list_show_export_plot(vu, db_path, capsys, tmp_path, first_pull, torn):
    rc, out, err = ionto(capsys, "list", "--archive", db_path)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["serial", "session", "start", "preset"]
    body = lines[2:]
    assert [int(line.split()[1]) for line in body] == sorted(LOGGED)
    assert all("stopped by nurse" in line and "boot " in line and "hands_feet" in line for line in body)
    assert "[2 damaged]" in [line for line in body if int(line.split()[1]) == torn["n"]][0]

    rc, out, err = ionto(capsys, "show", "1", "--archive", db_path)
    assert rc == 0, err
    assert out.startswith("session 1 of unit ")
    assert "ended          stopped by nurse" in out
    assert "started: preset 0, target 8.0 mA" in out and "RAMP UP -> TREAT" in out
    assert "ended: stopped by nurse, dose" in out and "target         8.0 mA" in out

    csv_path = tmp_path / "all.csv"
    rc, out, err = ionto(capsys, "export", "--all", "--format", "csv", "-o", str(csv_path), "--archive", db_path)
    assert rc == 0, err
    table = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    assert tuple(table[0].keys()) == logs_cmd.SAMPLE_COLUMNS
    total = rows(db_path, "SELECT SUM(n_samples) FROM sessions")[0][0]
    assert len(table) == total
    assert {int(t["session"]) for t in table} == set(LOGGED)
    assert {t["state_name"] for t in table} >= {"RAMP UP", "TREAT"}

    rc, out, err = ionto(capsys, "export", "2", "--format", "json", "--archive", db_path)
    assert rc == 0, err
    doc = json.loads(out)
    (s2,) = doc["sessions"]
    assert s2["session"] == 2 and s2["end_reason"] == S.END_STOP and len(s2["samples"]) == s2["n_samples"]
    assert [e["name"] for e in s2["events"]][0] == "start" and s2["events"][-1]["text"].startswith("STOPPING")
    assert s2["dose_ma_min"] == pytest.approx(s2["dose_uas"] / 60000)

    png = tmp_path / "s1.png"
    rc, out, err = ionto(capsys, "plot", "1", "-o", str(png), "--archive", db_path)
    assert rc == 0, err
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", head[16:24]) == (1200, 900)


def test_events_shows_the_units_event_log_in_words(vu, db_path, capsys, first_pull):
    rc, out, err = ionto(capsys, "events", "--archive", db_path)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["serial", "seq", "boot", "time", "event", "what"]
    body = lines[2:]
    seqs = [int(line.split()[1]) for line in body]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # in order, none twice
    kinds = {line.split()[6] for line in body}  # the time takes three words: "boot N +Ns" or a UTC date
    assert {"boot", "selftest", "session"} <= kinds
    assert any("by the host after a host session" in line for line in body)  # our own pulls' restarts
    assert any("ended: stopped by nurse" in line for line in body)
    rc, out, err = ionto(capsys, "events", "--last", "3", "--archive", db_path)
    assert rc == 0 and len(out.splitlines()) == 2 + 3
    rc, out, err = ionto(capsys, "events", "--serial", "NOSUCHUNIT", "--archive", db_path)
    assert rc == EXIT_NOT_FOUND and len(err.strip().splitlines()) == 1


def test_unknown_and_ambiguous_sessions(vu, db_path, capsys, tmp_path, first_pull):
    rc, _o, err = ionto(capsys, "show", "99", "--archive", db_path)
    assert rc == EXIT_NOT_FOUND and "no session 99" in err
    rc, _o, err = ionto(capsys, "export", "--format", "csv", "--archive", db_path)
    assert rc == EXIT_USAGE
    rc, _o, err = ionto(capsys, "list", "--archive", str(tmp_path / "none.sqlite"))
    assert rc == EXIT_NOT_FOUND and "ionto logs pull" in err
    # A second unit with a session 1 of its own.
    other = str(tmp_path / "two.sqlite")
    src = sqlite3.connect(db_path)
    dst = sqlite3.connect(other)
    src.backup(dst)
    src.close()
    dst.execute("INSERT INTO sessions(serial, session, preset_name, complete) VALUES ('E66130100F000001', 1, 'feet', 1)")
    dst.commit()
    dst.close()
    for argv in (("show", "1"), ("plot", "1", "-o", str(tmp_path / "x.png")), ("export", "1")):
        rc, _o, err = ionto(capsys, *argv, "--archive", other)
        assert rc == EXIT_AMBIGUOUS and "--serial" in err and "E66130100F000001" in err
    rc, out, err = ionto(capsys, "show", "1", "--serial", "E66130100F000001", "--archive", other)
    assert rc == 0 and "feet" in out and "E66130100F000001" in out, err
    rc, out, err = ionto(capsys, "list", "--serial", "NOPE", "--archive", other)
    assert rc == EXIT_NOT_FOUND


def test_ack_stops_below_a_session_not_archived_whole():
    db = archive.connect(":memory:")
    for n, complete, trc in ((1, 1, 100), (2, 1, 200), (3, 0, 0), (5, 1, 50)):
        db.execute("INSERT INTO sessions(serial, session, complete, sum_bytes, trc_bytes) VALUES ('X', ?, ?, 1, ?)",
                   (n, complete, trc))
    # Session 2's trace pruned on the unit after an earlier pull; 4 never existed.
    unit = {1: {"sum": 1, "trc": 100}, 2: {"sum": 1}, 3: {"sum": 1}, 5: {"sum": 1, "trc": 50}}
    assert logs_cmd.plan(db, "X", unit) == []
    assert logs_cmd.ack_point(db, "X", unit) == 2  # 3 has no end yet: nothing above it
    db.execute("UPDATE sessions SET complete = 1 WHERE session = 3")
    assert logs_cmd.ack_point(db, "X", unit) == 5  # 4 never existed (a CONFIRM not confirmed)
    unit[5]["trc"] = 80  # the unit's trace grew past what is archived
    assert logs_cmd.ack_point(db, "X", unit) == 3
    unit[6] = {"sum": 1}  # a new session, its trace not written yet
    assert logs_cmd.plan(db, "X", unit) == [(5, True, True), (6, True, False)]


def test_pull_refuses_while_a_treatment_runs(vu, db_path, capsys, first_pull):
    c = vu.ctl
    ready(c)
    before = [tuple(r) for r in rows(db_path, "SELECT * FROM sessions")]
    press(c, "START", "START")
    wait_for(c, "app.s.state == %d" % S.TREAT, timeout=60)
    with paced(c):  # 10x while the host works: the treatment is still running after
        rc, _o, err = ionto(capsys, "pull", "--port", vu.port, "--archive", db_path)
        assert rc == EXIT_TREATING and "treatment is running" in err
        assert c.eval("app.s.state") == S.TREAT  # not interrupted
    press(c, "STOP")
    wait_for(c, "app.s.state == %d and not log.pending()" % S.STOPPED, timeout=60)
    assert [tuple(r) for r in rows(db_path, "SELECT * FROM sessions")] == before
    # Once it has ended, the same pull archives it (so no test after this one finds it new).
    LOGGED[c.eval("log.session")] = c.eval("app.s.end_reason")
    press(c, "STOP")  # STOPPED -> IDLE
    rc, out, err = pull(vu, db_path)
    assert rc == 0 and "1 session new" in out, err


def test_plot_marks_pauses_faults_and_polarity_changes(tmp_path):
    from ionto import logplot

    samples = [(t, 8000, 7900 if not 20 <= t < 30 else 0, 24000, 3000, S.PAUSED if 20 <= t < 30 else S.TREAT,
                1 if t >= 40 else 0) for t in range(60)]
    events = [(20, S.EV_PAUSE, "pause", 20, 8000), (30, S.EV_RESUME, "resume", 20, 8000),
              (40, S.EV_REVERSE, "reverse", 1, 40), (55, S.EV_FAULT, "fault", 5, 9000),
              (56, S.EV_END, "end", S.END_FAULT, 400_000)]
    png = tmp_path / "p.png"
    logplot.plot_session(str(png), samples, events, "synthetic")
    assert struct.unpack(">II", png.read_bytes()[16:24]) == (logplot.WIDTH_PX, logplot.HEIGHT_PX)
    assert logplot._spans([t for t, *_r in samples], [s[5] == S.PAUSED for s in samples]) == [(20, 30)]
    assert logplot._spans([1, 2, 3, 5, 6], [True, True, False, True, True]) == [(1, 3), (5, 7)]
    assert logplot._spans([1, 2, 4], [True, True, True]) == [(1, 3), (4, 5)]
