"""Visit records, the course plan, the clinic's time zone and the advice rules, on a synthetic
archive (fast): bad input gets one line and changes nothing; sessions at 23:59 and 00:01 clinic
time stay on their day under any TZ; the next-target and maintenance rules."""
import datetime as dt
import time

import pytest

from ionto import archive, cli, clinictime, maintenance, tolerance, visits
from ionto.errors import EXIT_NOT_FOUND, EXIT_USAGE

NO = ("pregnancy=no,epilepsy=no,pacemaker=no,metal_implants=no,heart_disease=no,impaired_sensation=no,"
      "broken_skin=no,age=no")
SERIAL = "E6614103E7452D2F"
START = dt.date(2026, 11, 3)  # a Tuesday
ZONE = "Pacific/Auckland"  # UTC+13 in November: 23:59 there is 10:59 UTC, 00:01 is 11:01 UTC the day before


@pytest.fixture
def ionto(capsys, monkeypatch):
    monkeypatch.delenv("IONTO_OPERATOR", raising=False)

    def run(*argv):
        try:
            rc = cli.main([str(a) for a in argv])
        except SystemExit as e:
            rc = e.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def db_path(tmp_path, ionto):
    p = str(tmp_path / "archive.sqlite")
    assert ionto("course", "tz", ZONE, "--archive", p)[0] == 0
    assert ionto("course", "new", "C-0200", "--start", START, "--site", "hands_feet", "--checklist", NO,
                 "--archive", p)[0] == 0
    db = archive.connect(p)
    clock = clinictime.get(db)
    for n, (day, hh, mm) in enumerate(((1, 10, 0), (2, 23, 59), (4, 0, 1)), 1):
        t = clock.unix(START + dt.timedelta(days=day - 1), hh, mm)
        db.execute("INSERT INTO sessions(serial, session, rtc_valid, start_t, preset_name, target_ua, ceiling_ua, "
                   "max_actual_ua, end_reason, end_name, complete) VALUES (?, ?, 1, ?, 'hands_feet', 10000, 12000, "
                   "10000, 2, 'dose reached', 1)", (SERIAL, n, t))
    db.commit()
    db.close()
    assert ionto("course", "link", "C-0200", "%s:1" % SERIAL, "%s:2" % SERIAL, "%s:3" % SERIAL, "--archive", p)[0] == 0
    return p


def dump(p):
    db = archive.connect(p)
    try:
        return [tuple(r) for r in db.execute("SELECT * FROM visits ORDER BY id")] + \
               [tuple(r) for r in db.execute("SELECT * FROM course_plans")]
    finally:
        db.close()


GOOD = ["--hdss", "hands=3,feet=2", "--reaction", "none", "--checklist", "unchanged", "--operator", "RN07"]


def with_(args, **kw):
    a = list(args)
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        if flag in a:
            i = a.index(flag)
            if v is None:
                del a[i:i + 2]
            else:
                a[i + 1] = v
        elif v is not None:
            a += [flag, v]
    return a


@pytest.mark.parametrize("change, words", [
    (dict(hdss="hands=5,feet=2"), "1 (never noticeable) to 4"),
    (dict(hdss="hands=0,feet=2"), "1 (never noticeable) to 4"),
    (dict(hdss="knees=2,hands=3,feet=2"), "unknown site 'knees'"),
    (dict(hdss="hands=3"), "HDSS missing for feet"),
    (dict(hdss="3"), "score each"),
    (dict(reaction="itchy"), "bad skin reaction"),
    (dict(reaction="none,redness"), "'none' cannot go"),
    (dict(checklist="pregnancy=no"), "incomplete"),
    (dict(checklist=NO.replace("epilepsy=no", "epilepsy=yes")), "contraindication epilepsy"),
    (dict(operator=None), "no operator code"),
    (dict(operator="Jane Smith"), "never a name"),
    (dict(operator="nurse"), "never a name"),
])
def test_bad_visit_input_one_line_changes_nothing(ionto, db_path, change, words):
    before = dump(db_path)
    rc, out, err = ionto("course", "visit", "C-0200", "--day", "2", *with_(GOOD, **change), "--archive", db_path)
    assert rc == EXIT_USAGE and out == "" and err.count("\n") == 1 and words in err, err
    assert "Traceback" not in err
    assert dump(db_path) == before


def test_visit_day_must_be_a_course_day(ionto, db_path):
    before = dump(db_path)
    for where in (["--day", "3"], ["--date", "2026-11-05"], ["--day", "40"]):
        rc, out, err = ionto("course", "visit", "C-0200", *where, *GOOD, "--archive", db_path)
        assert rc == EXIT_USAGE and err.count("\n") == 1 and "is not a day of course C-0200" in err, err
    rc, out, err = ionto("course", "visit", "C-0200", *GOOD, "--archive", db_path)
    assert rc == EXIT_USAGE and "--day N or --date" in err
    rc, out, err = ionto("course", "visit", "C-9999", "--day", "1", *GOOD, "--archive", db_path)
    assert rc == EXIT_NOT_FOUND and err.count("\n") == 1
    assert dump(db_path) == before
    # Once the clinician sets a maintenance interval, its dates are course days too.
    rc, out, err = ionto("course", "plan", "C-0200", "--maintenance-every", "14", "--archive", db_path)
    assert rc == EXIT_USAGE and "operator" in err and dump(db_path) == before
    assert ionto("course", "plan", "C-0200", "--maintenance-every", "14", "--operator", "DR02",
                 "--archive", db_path)[0] == 0
    rc, out, err = ionto("course", "visit", "C-0200", "--day", "36", *GOOD, "--archive", db_path)
    assert rc == 0 and "maintenance" in out, err


def test_visit_recorded_with_operator_from_env_and_replaced(ionto, db_path, monkeypatch):
    monkeypatch.setenv("IONTO_OPERATOR", "RN11")
    rc, out, err = ionto("course", "visit", "C-0200", "--day", "2", *with_(GOOD, operator=None), "--note",
                         "sweats less at work", "--archive", db_path)
    assert rc == 0, err
    assert "day 2 (2026-11-04" in out and "by RN11" in out and "NZDT" in out
    rc, out, err = ionto("course", "visit", "C-0200", "--day", "2", *GOOD, "--archive", db_path)
    assert rc == EXIT_USAGE and "recorded already (by RN11)" in err and "--replace" in err
    rc, out, err = ionto("course", "visit", "C-0200", "--day", "2", *with_(GOOD, hdss="hands=2,feet=2"),
                         "--replace", "--archive", db_path)
    assert rc == 0, err
    db = archive.connect(db_path)
    rows = db.execute("SELECT operator, hdss_json, superseded FROM visits ORDER BY id").fetchall()
    assert [(r[0], r[2]) for r in rows] == [("RN11", 1), ("RN07", 0)]
    c = db.execute("SELECT * FROM courses").fetchone()
    v = visits.course_visits(db, c)
    assert len(v) == 1 and v[0]["hdss"] == {"hands": 2, "feet": 2} and v[0]["checklist"] == "unchanged"
    rc, out, err = ionto("course", "show", "C-0200", "--archive", db_path)
    assert rc == 0 and "feet=2 hands=2" in out and "RN07" in out and ZONE in out
    # A new contraindication with the dermatologist's reason: recorded, and flagged in the report.
    rc, out, err = ionto("course", "visit", "C-0200", "--day", "4", *with_(GOOD, checklist=NO.replace(
        "broken_skin=no", "broken_skin=yes")), "--override-reason", "small cut covered with petroleum jelly",
        "--archive", db_path)
    assert rc == 0 and "broken_skin" in out, err
    rc, out, err = ionto("report", "C-0200", "--json", "-", "--today", "2026-11-10", "--archive", db_path)
    assert rc == 0 and '"contraindication"' in out and "petroleum jelly" in out


@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Auckland"])
def test_midnight_sessions_on_their_clinic_day_under_any_tz(ionto, db_path, monkeypatch, tz):
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        rc, out, err = ionto("report", "C-0200", "--json", "-", "--today", "2026-11-08", "--archive", db_path)
        assert rc == 0, err
        import json

        rep = json.loads(out)
        days = {e["day"]: (e["status"], e["sessions"]) for e in rep["adherence"]["days"]}
        assert days[1] == ("done", [SERIAL + ":1"])
        assert days[2] == ("done", [SERIAL + ":2"]) and days[4] == ("done", [SERIAL + ":3"])
        assert rep["adherence"]["outside"] == []
        assert [(s["date"], s["time"]) for s in rep["sessions"]] == [("2026-11-03", "10:00"), ("2026-11-04", "23:59"),
                                                                     ("2026-11-06", "00:01")]
        rc, out, err = ionto("logs", "list", "--archive", db_path)
        assert "2026-11-04 23:59 NZDT" in out and "2026-11-06 00:01 NZDT" in out
    finally:
        monkeypatch.undo()
        time.tzset()


def test_clinic_time_zone_bad_name(ionto, db_path):
    rc, out, err = ionto("course", "tz", "Mars/Olympus", "--archive", db_path)
    assert rc == EXIT_USAGE and err.count("\n") == 1 and "unknown time zone" in err
    rc, out, err = ionto("course", "tz", "--archive", db_path)
    assert rc == 0 and ZONE in out


def test_next_target_rules():
    last = {"session": "X:1", "target_ma": 10.0, "held_ma": 10.2, "reached_ma": 10.4, "ceiling_ma": 12.0, "ups": 0,
            "downs": 0, "pauses": 0, "faults": 0, "limited": 0, "limited_at_ma": None, "end": "time complete"}
    r = tolerance.next_target(last, [], 1.0)
    assert r["target_ma"] == 11.0 and "uneventful" in r["why"]
    assert tolerance.next_target(dict(last, held_ma=11.6), [], 1.0)["target_ma"] == 12.0  # 11.5 + 1 > 12: ceiling
    assert "ceiling" in tolerance.next_target(dict(last, held_ma=11.6), [], 1.0)["why"]
    r = tolerance.next_target(dict(last, downs=1, held_ma=8.7), [], 1.0)
    assert r["target_ma"] == 8.5 and "DOWN" in r["why"]
    r = tolerance.next_target(last, ["blister"], 1.0)
    assert r["target_ma"] == 9.0 and "dermatologist" in r["why"]
    r = tolerance.next_target(dict(last, pauses=2), ["redness"], 1.0)
    assert r["target_ma"] == 10.0 and "pause" in r["why"] and "redness" in r["why"]
    r = tolerance.next_target(dict(last, end="stopped by nurse"), [], 1.0)
    assert r["target_ma"] == 10.0 and "stopped by nurse" in r["why"]
    r = tolerance.next_target(dict(last, limited=1, limited_at_ma=6.0, held_ma=6.0), [], 1.0)
    assert r["target_ma"] == 10.0 and "LIMITED" in r["why"]
    assert tolerance.next_target(None, [], 1.0)["target_ma"] is None


def test_maintenance_dates_and_kept():
    plan = dict(visits.PLAN_DEFAULTS, maintenance_every_days=28, maintenance_count=4)
    day22 = START + dt.timedelta(days=21)
    want = [day22 + dt.timedelta(days=28 * i) for i in (1, 2, 3, 4)]
    assert maintenance.dates(START, plan) == want
    sessions = [want[0] + dt.timedelta(days=2), want[1] - dt.timedelta(days=10)]
    m = maintenance.status(START, plan, sessions, today=want[2] + dt.timedelta(days=1))
    assert m["tolerance_days"] == 7
    assert [d["status"] for d in m["dates"]] == ["kept (+2 d)", "missed", "due", "due"]
    assert maintenance.status(START, visits.PLAN_DEFAULTS, sessions, today=want[3]) is None


def test_dryness_figure_per_polarity_window_and_limited():
    from ionto import dryness
    from ionto.fw import firmware

    S = firmware("session")
    samples = []
    # 0-9 s ramp; 10-39 s TREAT anode A at 2.5 kOhm (a 500 Ohm blip at 12 s, outside the window);
    # 40-49 s reversal; 50-79 s TREAT anode B at 3.0 kOhm.
    for t in range(80):
        if t < 10:
            samples.append((t, t * 1000, t * 1000, t * 2500, 2500, S.RAMP_UP, 0))
        elif t < 40:
            load = 500 if t == 12 else 2500 + (t - 10)
            samples.append((t, 10000, 10000, 25000, load, S.TREAT, 0))
        elif t < 50:
            samples.append((t, 5000, 5000, 15000, 3000, S.REV_DOWN if t < 45 else S.REV_UP, 1))
        else:
            samples.append((t, 10000, 10000, 30000, 3000, S.TREAT, 1))
    f = dryness.figures(samples, after_s=5, len_s=10)
    assert set(f) == {0, 1}
    assert f[0]["t_from"] == 15 and f[0]["t_to"] == 24 and f[0]["n"] == 10
    assert f[0]["kohm"] == round((2500 + 9.5) / 1000, 2) and f[0]["ma"] == 10.0 and not f[0]["partial"]
    assert f[1]["kohm"] == 3.0
    # A window longer than the run: partial; under 3 seconds: no figure.
    assert dryness.figures(samples, after_s=20, len_s=30)[0]["partial"] is True
    assert 0 not in dryness.figures(samples, after_s=28, len_s=10)
    # Held by LIMITED below the target (never TREAT): the plateau starts at the LIMITED event.
    lim = [(t, 6000, 6000, 60000, 10000, S.RAMP_UP, 0) for t in range(40)]
    assert dryness.figures(lim, 5, 10) == {}
    g = dryness.figures(lim, 5, 10, spans=dryness.limited_spans([(8, S.EV_LIMITED, 6000, 10000)]))
    assert g[0]["t_from"] == 13 and g[0]["kohm"] == 10.0
    # The trend: rising, falling, flat, and points at another current left out.
    pts = [{"day": d, "kohm": k, "ma": 10.0} for d, k in ((1, 2.5), (2, 2.6), (4, 3.0), (7, 3.5))]
    assert dryness.trend(pts)["verdict"] == "rising"
    assert dryness.trend([dict(p, kohm=5 - p["kohm"]) for p in pts])["verdict"] == "falling"
    assert dryness.trend([dict(p, kohm=2.5) for p in pts])["verdict"] == "no clear change"
    pts[3]["ma"] = 20.0
    tr = dryness.trend(pts)
    assert pts[3]["comparable"] is False and tr["change_pct"] == round(((3.0 + 2.6) / 2 - 2.55) / 2.55 * 100, 1)
    pts[2]["ma"] = 20.0
    assert dryness.trend(pts)["verdict"] == "too few sessions"
