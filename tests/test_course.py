"""The clinic course on the host: `ionto schedule`, `ionto course ...` and `ionto report`, on a
synthetic archive written in the contract's schema (archive.connect)."""
import csv
import datetime as dt
import io
import json
import time

import pytest

from ionto import archive, cli, course
from ionto.errors import EXIT_NOT_FOUND, EXIT_USAGE, IontoError

NO = ("pregnancy=no,epilepsy=no,metal_implants=no,pacemaker=no,heart_disease=no,impaired_sensation=no,"
      "broken_skin=no,age=no")
SERIAL = "E6614103E7452D2F"
START = dt.date(2025, 3, 4)  # a Tuesday


@pytest.fixture
def ionto(capsys):
    """Run `ionto ARGS` in-process through cli.main -> (rc, stdout, stderr)."""
    def run(*argv):
        try:
            rc = cli.main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            rc = e.code
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "archive.sqlite"


def unix(date, hh=10, mm=0):
    return int(time.mktime(dt.datetime(date.year, date.month, date.day, hh, mm).timetuple()))


def add_session(db, n, date=None, serial=SERIAL, rtc=True, **kw):
    row = dict(serial=serial, session=n, boot=1, seq=n, rtc_valid=1 if rtc else 0,
               start_t=unix(date) if (rtc and date) else 1234, firmware="0.1.0", preset_idx=0,
               preset_name="palms", target_ua=15000, ceiling_ua=20000, duration_s=1200, end_reason=1,
               end_name="time complete", dose_uas=15000 * 1200, treat_s=1200, n_samples=1200, lost=0,
               max_actual_ua=15000, pauses=0, faults=0, damaged=0, complete=1)
    row.update(kw)
    cols = ",".join(row)
    db.execute("INSERT INTO sessions(%s) VALUES (%s)" % (cols, ",".join("?" * len(row))), list(row.values()))
    db.commit()


def day(n):
    return START + dt.timedelta(days=n - 1)


# --- schedule --------------------------------------------------------------------------------
def test_schedule_from_a_tuesday(ionto):
    rc, out, err = ionto("schedule", "--start", "2025-03-04")
    assert rc == 0, err
    dates = [line.split()[-1] for line in out.splitlines() if line[:1].isspace() or line[:1].isdigit()]
    assert dates == ["2025-03-04", "2025-03-05", "2025-03-07", "2025-03-10", "2025-03-13", "2025-03-18",
                     "2025-03-25"]
    assert "Tue" in out and "Wed" in out and "Fri" in out and "Mon" in out and "Thu" in out
    assert "maintenance" in out


def test_schedule_refuses_a_start_that_is_not_a_tuesday(ionto):
    rc, out, err = ionto("schedule", "--start", "2025-03-05")
    assert rc == EXIT_USAGE and out == ""
    assert len(err.strip().splitlines()) == 1
    assert "Wednesday" in err and "Tuesday" in err and "--force" in err and "2025-03-11" in err


def test_schedule_forced_start(ionto):
    rc, out, err = ionto("schedule", "--start", "2025-03-05", "--force")
    assert rc == 0, err
    assert "not a Tuesday" in out and "2025-03-05" in out and "2025-03-26" in out  # day 22


@pytest.mark.parametrize("bad", ["2025-02-30", "tuesday", "04/03/2025", ""])
def test_schedule_bad_date_is_one_line_exit_2(ionto, bad):
    rc, out, err = ionto("schedule", "--start", bad)
    assert rc == EXIT_USAGE and out == ""
    assert err.count("\n") == 1 and "YYYY-MM-DD" in err and "Traceback" not in err


def test_schedule_pure():
    assert [d for d, _ in course.schedule(START)] == [1, 2, 4, 7, 10, 15, 22]
    assert [course.week_of(d) for d in course.SCHEDULE_DAYS] == [1, 1, 1, 2, 2, 3, 4]  # as the page groups them
    assert course.next_tuesday(dt.date(2025, 3, 5)) == dt.date(2025, 3, 11)
    assert course.next_tuesday(START) == START


# --- enrolment -----------------------------------------------------------------------------
def test_enrol_with_full_checklist(ionto, db_path):
    rc, out, err = ionto("course", "new", "C-0042", "--start", "2025-03-04", "--site", "hands_feet",
                         "--checklist", NO, "--archive", db_path)
    assert rc == 0, err
    assert "C-0042" in out and "2025-03-25" in out
    db = archive.connect(db_path)
    c = db.execute("SELECT * FROM courses WHERE label = 'C-0042'").fetchone()
    rec = json.loads(c["checklist_json"])
    assert rec["answers"] == {k: "no" for k in ("pregnancy", "epilepsy", "metal_implants", "pacemaker", "heart_disease",
                                                "impaired_sensation", "broken_skin", "age")}
    assert rec["contraindications"] == [] and rec["override_reason"] is None
    assert c["site"] == "hands_feet" and c["start_date"] == "2025-03-04"
    # The same label twice is refused.
    rc, out, err = ionto("course", "new", "C-0042", "--start", "2025-03-04", "--site", "feet",
                         "--checklist", NO, "--archive", db_path)
    assert rc == EXIT_USAGE and "exists" in err


def test_enrol_missing_answer_is_refused(ionto, db_path):
    rc, out, err = ionto("course", "new", "C-0043", "--start", "2025-03-04", "--site", "feet",
                         "--checklist", NO.replace("metal_implants=no,", ""), "--archive", db_path)
    assert rc == EXIT_USAGE and err.count("\n") == 1
    assert "metal_implants" in err and "incomplete" in err
    assert archive.connect(db_path).execute("SELECT COUNT(*) FROM courses").fetchone()[0] == 0
    rc, out, err = ionto("course", "new", "C-0043", "--start", "2025-03-04", "--site", "feet",
                         "--checklist", NO.replace("epilepsy=no", "epilepsy=maybe"), "--archive", db_path)
    assert rc == EXIT_USAGE and "yes or no" in err


def test_enrol_with_a_contraindication_is_refused_then_overridden(ionto, db_path):
    yes = NO.replace("pacemaker=no", "pacemaker=yes")
    rc, out, err = ionto("course", "new", "C-0044", "--start", "2025-03-04", "--site", "armpits",
                         "--checklist", yes, "--archive", db_path)
    assert rc == EXIT_USAGE and err.count("\n") == 1
    assert "refused" in err and "pacemaker" in err and "--override-reason" in err
    assert archive.connect(db_path).execute("SELECT COUNT(*) FROM courses").fetchone()[0] == 0
    rc, out, err = ionto("course", "new", "C-0044", "--start", "2025-03-04", "--site", "armpits",
                         "--checklist", yes, "--override-reason", "cardiologist cleared; armpits only",
                         "--archive", db_path)
    assert rc == 0, err
    assert "override" in out
    rec = json.loads(archive.connect(db_path).execute(
        "SELECT checklist_json FROM courses WHERE label = 'C-0044'").fetchone()[0])
    assert rec["contraindications"] == ["pacemaker"]
    assert rec["override_reason"] == "cardiologist cleared; armpits only"
    assert rec["answers"]["pacemaker"] == "yes"
    rc, out, err = ionto("course", "show", "C-0044", "--archive", db_path)
    assert rc == 0 and "cardiologist cleared" in out and "pacemaker=yes" in out


def test_enrol_checks_label_site_and_start(ionto, db_path):
    base = ["course", "new", "C-0045", "--start", "2025-03-04", "--site", "feet", "--checklist", NO,
            "--archive", db_path]
    rc, _o, err = ionto(*[("Jane Smith" if a == "C-0045" else a) for a in base])
    assert rc == EXIT_USAGE and "pseudonymous" in err
    rc, _o, err = ionto(*[("knees" if a == "feet" else a) for a in base])
    assert rc == EXIT_USAGE and "hands_feet" in err
    rc, _o, err = ionto(*[("2025-03-06" if a == "2025-03-04" else a) for a in base])
    assert rc == EXIT_USAGE and "Tuesday" in err
    rc, _o, err = ionto(*[("2025-03-06" if a == "2025-03-04" else a) for a in base], "--force")
    assert rc == 0, err
    assert course.parse_sites("hands+feet") == "hands_feet"
    assert course.parse_sites("hands_feet,armpits") == "armpits+hands_feet"


# --- link / unlink ---------------------------------------------------------------------------
@pytest.fixture
def enrolled(ionto, db_path):
    rc, _o, err = ionto("course", "new", "C-0050", "--start", START.isoformat(), "--site", "hands_feet",
                        "--checklist", NO, "--archive", db_path)
    assert rc == 0, err
    db = archive.connect(db_path)
    for n in (1, 2, 3):
        add_session(db, n, day(n))
    add_session(db, 1, day(1), serial="0000000000000002")
    db.close()
    return db_path


def test_link_and_unlink(ionto, enrolled):
    db_path = enrolled
    rc, out, err = ionto("course", "link", "C-0050", "%s:2" % SERIAL, "%s:3" % SERIAL.lower(), "--archive", db_path)
    assert rc == 0, err
    assert out.count("linked to C-0050") == 2
    rc, out, err = ionto("course", "link", "C-0050", "%s:2" % SERIAL, "--archive", db_path)
    assert rc == 0 and "already linked" in out
    db = archive.connect(db_path)
    linked = sorted(tuple(r) for r in db.execute("SELECT serial, session FROM course_sessions"))
    assert linked == [(SERIAL, 2), (SERIAL, 3)]
    # Unknown session: nothing linked, exit 11; a bare number on two units is ambiguous.
    rc, out, err = ionto("course", "link", "C-0050", "%s:1" % SERIAL, "%s:99" % SERIAL, "--archive", db_path)
    assert rc == EXIT_NOT_FOUND and err.count("\n") == 1 and ":99" in err
    assert db.execute("SELECT COUNT(*) FROM course_sessions").fetchone()[0] == 2
    rc, out, err = ionto("course", "link", "C-0050", "1", "--archive", db_path)
    assert rc == EXIT_USAGE and "SERIAL:1" in err
    rc, out, err = ionto("course", "link", "C-0050", "one", "--archive", db_path)
    assert rc == EXIT_USAGE
    rc, out, err = ionto("course", "link", "C-9999", "%s:1" % SERIAL, "--archive", db_path)
    assert rc == EXIT_NOT_FOUND and "C-9999" in err
    # Unlink: a session not linked to the course is not found; the archive keeps the session.
    rc, out, err = ionto("course", "unlink", "C-0050", "%s:1" % SERIAL, "--archive", db_path)
    assert rc == EXIT_NOT_FOUND
    rc, out, err = ionto("course", "unlink", "C-0050", "3", "--archive", db_path)
    assert rc == 0 and "unlinked" in out
    assert [tuple(r) for r in db.execute("SELECT serial, session FROM course_sessions")] == [(SERIAL, 2)]
    assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 4
    # A session of another course cannot be taken over silently.
    rc, _o, err = ionto("course", "new", "C-0051", "--start", START.isoformat(), "--site", "feet",
                        "--checklist", NO, "--archive", db_path)
    rc, out, err = ionto("course", "link", "C-0051", "%s:2" % SERIAL, "--archive", db_path)
    assert rc == EXIT_USAGE and "C-0050" in err
    rc, out, err = ionto("course", "list", "--archive", db_path)
    assert rc == 0 and "C-0050" in out and "C-0051" in out


# --- adherence and the report ------------------------------------------------------------------
def test_adherence_pure():
    rows = [dict(serial=SERIAL, session=n, rtc_valid=1, start_t=unix(d)) for n, d in (
        (1, day(1)), (2, day(1)),  # hands/feet and armpits on day 1: one visit
        (3, day(2)),
        (4, day(5)),  # day 4 done a day late
        (5, day(8)),  # day 7 late by one; day 10 then missed
        (6, day(9)),  # a second visit in the same gap: extra
        (7, day(15)),
        (8, day(30)),  # after day 22: maintenance
    )] + [dict(serial=SERIAL, session=9, rtc_valid=0, start_t=55)]
    a = course.adherence(START, rows, today=day(24))
    st = {e["day"]: (e["status"], e["late_days"], e["sessions"]) for e in a["days"]}
    assert st[1] == ("done", 0, [SERIAL + ":1", SERIAL + ":2"])
    assert st[2] == ("done", 0, [SERIAL + ":3"])
    assert st[4] == ("late", 1, [SERIAL + ":4"])
    assert st[7] == ("late", 1, [SERIAL + ":5"])
    assert st[10][0] == "missed" and st[15][0] == "done" and st[22][0] == "missed"
    assert [(o["kind"], o["sessions"]) for o in a["outside"]] == [("extra", [SERIAL + ":6"]),
                                                                  ("maintenance", [SERIAL + ":8"])]
    assert a["undated"] == [SERIAL + ":9"]
    # Before the course ends, days still ahead are due, not missed.
    a = course.adherence(START, rows[:3], today=day(3))
    assert [e["status"] for e in a["days"]] == ["done", "done", "due", "due", "due", "due", "due"]


def test_report_text_json_csv(ionto, enrolled):
    db_path = enrolled
    db = archive.connect(db_path)
    add_session(db, 4, day(5), max_actual_ua=11800, pauses=2, faults=1, end_reason=6, end_name="fault",
                dose_uas=11800 * 600, treat_s=600, complete=1)
    db.execute("INSERT INTO session_events(serial, session, t_s, code, name, a, b) VALUES (?, 4, 600, 7, 'fault', 5, 31000)",
               (SERIAL,))
    add_session(db, 5, day(7), rtc=False)
    db.commit()
    rc, out, err = ionto("course", "link", "C-0050", *["%s:%d" % (SERIAL, n) for n in (1, 2, 3, 4, 5)],
                         "--archive", db_path)
    assert rc == 0, err
    today = day(11).isoformat()
    rc, out, err = ionto("report", "C-0050", "--format", "json", "--today", today, "--archive", db_path)
    assert rc == 0, err
    rep = json.loads(out)
    days = {e["day"]: e for e in rep["adherence"]["days"]}
    assert [days[d]["status"] for d in (1, 2, 4, 7, 10, 15, 22)] == ["done", "done", "late", "missed", "missed",
                                                                    "due", "due"]
    assert days[4]["late_days"] == 1
    # Session 3 (day 3) is before day 4 and day 2 had its own visit: an extra visit, not day 4.
    assert [o["sessions"] for o in rep["adherence"]["outside"]] == [[SERIAL + ":3"]]
    assert rep["adherence"]["undated"] == [SERIAL + ":5"]
    s4 = [p for p in rep["sessions"] if p["session"] == SERIAL + ":4"][0]
    assert s4["reached_ma"] == 11.8 and s4["dose_mamin"] == 118.0 and s4["treat_min"] == 10.0
    assert s4["pauses"] == 2 and s4["faults"] == 1 and s4["fault_names"] == ["short"] and s4["end"] == "fault"
    s1 = [p for p in rep["sessions"] if p["session"] == SERIAL + ":1"][0]
    assert s1["dose_mamin"] == 300.0 and s1["reached_ma"] == 15.0 and s1["end"] == "time complete"

    rc, out, err = ionto("report", "C-0050", "--today", today, "--archive", db_path)
    assert rc == 0, err
    assert "2 of 7 scheduled days done" in out and "1 late" in out and "2 missed" in out
    assert "short" in out and "118.0" in out and "date unknown" in out and "clock sync" in out

    rc, out, err = ionto("report", "C-0050", "--format", "csv", "--today", today, "--archive", db_path)
    assert rc == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    by_day = {r["day"]: r for r in rows if r["day"]}
    assert by_day["7"]["status"] == "missed" and by_day["7"]["session"] == ""
    assert by_day["4"]["session"] == SERIAL + ":4" and by_day["4"]["dose_mamin"] == "118.0"
    assert {r["status"] for r in rows if not r["day"]} == {"extra", "date unknown"}

    rc, out, err = ionto("report", "C-0404", "--archive", db_path)
    assert rc == EXIT_NOT_FOUND and err.count("\n") == 1


def test_course_show_lists_schedule_and_sessions(ionto, enrolled):
    rc, out, err = ionto("course", "link", "C-0050", "%s:1" % SERIAL, "--archive", enrolled)
    rc, out, err = ionto("course", "show", "C-0050", "--archive", enrolled)
    assert rc == 0, err
    assert "hands_feet" in out and "pregnancy=no" in out and "%s:1" % SERIAL in out and "2025-03-25" in out
    with pytest.raises(IontoError) as e:
        course.get_course(archive.connect(enrolled), "nope-1")
    assert e.value.code == EXIT_NOT_FOUND
