"""The clinic course, as pure logic: schedule dates, enrolment checks, adherence and progress.

No I/O here except through an archive connection handed in (archive.connect): the commands
(schedule_cmd, course_cmd, report_cmd) do the printing.

The course (the clinic's page and docs/): it always starts on a Tuesday;
sessions on days 1, 2 and 4 (week 1), 7 and 10 (week 2), 15 (week 3) and 22 (week 4), day 1
being the start. Then maintenance: less frequent sessions to keep the symptoms under control,
often at home, at a frequency the clinician sets; the page gives no fixed interval, so neither
do we. Hands and feet may be treated together; armpits need a separate treatment.

Contraindications asked at enrolment and re-confirmed at each visit: what the major makers'
manuals list (pregnancy; epilepsy; a pacemaker, ICD or other electrical implant; metal
implants in the current path, including a metal IUD for foot treatment; heart disease; impaired
sensation in the treated area; broken skin; age). "age" asks whether the patient is a child
(under 18): the manuals restrict use in children and leave it to the doctor; no date of birth
is stored.

Dates: a session's course day is its start in the clinic's time zone (clinictime), never the
computer's naive local time.

A course LABEL is a pseudonymous clinic code (e.g. C-0042): never a name, a date of birth or a
hospital number. Nothing of a course ever goes to a unit.
"""
import datetime as _dt
import json
import re

from . import clinictime
from .words import fault_name, ma_number as _ma, mamin, session_end_words as end_words
from .errors import EXIT_NOT_FOUND, EXIT_USAGE, IontoError

SCHEDULE_DAYS = (1, 2, 4, 7, 10, 15, 22)
START_WEEKDAY = 1  # date.weekday(): Monday 0, Tuesday 1
MAINTENANCE = ("then maintenance: less frequent sessions to keep the symptoms under control, "
               "at a frequency the clinician sets (often at home)")

# key, words for the user
CONTRAINDICATIONS = (
    ("pregnancy", "pregnancy (breastfeeding is not a contraindication)"),
    ("epilepsy", "epilepsy"),
    ("pacemaker", "a pacemaker, ICD (implanted defibrillator) or other electrical implant"),
    ("metal_implants", "a metal implant in the current path (e.g. a joint replacement, plates or screws in a "
                       "hand or foot; for foot treatment also a metal (copper) IUD)"),
    ("heart_disease", "heart disease (e.g. a heart rhythm disorder)"),
    ("impaired_sensation", "impaired sensation in the treated area (the patient would not feel a burn coming)"),
    ("broken_skin", "broken skin in the treated area (cuts, eczema, wounds)"),
    ("age", "a child (under 18): only on the dermatologist's decision"),
)
_YES = ("yes", "y", "true", "1")
_NO = ("no", "n", "false", "0")

# Treatment sites. Hands and feet can go in the baths together; armpits are a separate
# treatment (a course may cover several sites: "armpits+hands_feet").
SITES = ("hands", "feet", "hands_feet", "armpits")

# A clinic code: letters, digits, '-', '_' or '.', with at least one digit, no spaces. This
# does not make a label anonymous, but it keeps "Jane Smith" out.
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


# --- dates ---------------------------------------------------------------------------------
def parse_date(text, what="date"):
    """'YYYY-MM-DD' -> datetime.date, or IontoError(EXIT_USAGE)."""
    try:
        return _dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise IontoError(EXIT_USAGE, "bad %s %r: give it as YYYY-MM-DD (e.g. 2025-03-04)" % (what, text))


def check_start(start, force=False):
    """The course starts on a Tuesday; another weekday only with force. Its last day (and the
    week after, for the report) must be a date the calendar has."""
    if start > _dt.date.max - _dt.timedelta(days=SCHEDULE_DAYS[-1] + 7):
        raise IontoError(EXIT_USAGE, "start date %s is too far in the future for a course (its sessions would fall "
                         "after the year 9999): check the date" % start.isoformat())
    if start.weekday() != START_WEEKDAY and not force:
        raise IontoError(EXIT_USAGE, "%s is a %s, and the course always starts on a Tuesday: choose a Tuesday "
                         "(e.g. %s) or add --force" % (start.isoformat(), start.strftime("%A"),
                                                       next_tuesday(start).isoformat()))


def next_tuesday(d):
    return d + _dt.timedelta(days=(START_WEEKDAY - d.weekday()) % 7)


def schedule(start):
    """[(day number, date)] of the course's sessions; day 1 is the start date."""
    return [(day, start + _dt.timedelta(days=day - 1)) for day in SCHEDULE_DAYS]


# The page's weeks: "first week on days 1, 2 and 4, second week on days 7 and 10, third week on
# day 15, fourth week on day 22" (its weeks are clinic weeks, so day 7, a Monday, is week 2).
_WEEKS = {1: 1, 2: 1, 4: 1, 7: 2, 10: 2, 15: 3, 22: 4}


def week_of(day):
    return _WEEKS.get(day, (day - 1) // 7 + 1)


# --- enrolment -----------------------------------------------------------------------------
def check_label(label):
    if not _LABEL.match(label or "") or not any(c.isdigit() for c in label):
        raise IontoError(EXIT_USAGE, "bad course label %r: use the clinic's pseudonymous code (letters, digits, "
                         "'-', '_', at least one digit, no spaces, e.g. C-0042), never a patient's name" % label)
    if _looks_like_date(label):
        raise IontoError(EXIT_USAGE, "bad course label %r: it reads as a date (a date of birth identifies a "
                         "patient): use the clinic's pseudonymous code, e.g. C-0042" % label)
    return label


# Dates in the forms people write them: 1980-05-04, 04.05.1980, 4/5/80, 19800504, 04-05-1980.
_DATE_FORMS = (re.compile(r"^(\d{4})[-_./]?(\d{1,2})[-_./]?(\d{1,2})$"),
               re.compile(r"^(\d{1,2})[-_./](\d{1,2})[-_./](\d{2}|\d{4})$"))


def _looks_like_date(label):
    m = _DATE_FORMS[0].match(label)
    if m and 1 <= int(m.group(2)) <= 12 and 1 <= int(m.group(3)) <= 31 and 1850 <= int(m.group(1)) <= 2200:
        return True
    m = _DATE_FORMS[1].match(label)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        return 1 <= a <= 31 and 1 <= b <= 31 and (a <= 12 or b <= 12)
    return False


def parse_choices(text, allowed, what, several):
    """'a+b' or 'a,b' -> ['a', 'b'], each one of `allowed`; else one line naming the choices."""
    parts = [p.strip().lower() for p in re.split(r"[+,]", text or "") if p.strip()]
    if not parts or [p for p in parts if p not in allowed]:
        raise IontoError(EXIT_USAGE, "bad %s %r: choose from %s (several with %s)"
                         % (what, text, ", ".join(allowed), several))
    return parts


def parse_sites(text):
    """'hands_feet' or 'armpits+hands_feet' (also ',') -> canonical 'armpits+hands_feet'."""
    parts = parse_choices(text, SITES, "site", "'+', e.g. armpits+hands_feet")
    if "hands_feet" in parts:
        parts = [p for p in parts if p not in ("hands", "feet")]
    elif "hands" in parts and "feet" in parts:
        parts = [p for p in parts if p not in ("hands", "feet")] + ["hands_feet"]
    return "+".join(sorted(set(parts)))


def parse_checklist(text):
    """'pregnancy=no,epilepsy=no,...' -> {key: bool}. Every item must be answered yes or no."""
    answers = {}
    keys = [k for k, _w in CONTRAINDICATIONS]
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        k, sep, v = item.partition("=")
        k = k.strip().lower().replace("-", "_")
        v = v.strip().lower()
        if not sep or k not in keys:
            raise IontoError(EXIT_USAGE, "bad checklist item %r: answer each of %s as KEY=yes or KEY=no"
                             % (item, ", ".join(keys)))
        if v in _YES:
            answers[k] = True
        elif v in _NO:
            answers[k] = False
        else:
            raise IontoError(EXIT_USAGE, "checklist %s=%r: answer yes or no" % (k, v))
    missing = [k for k in keys if k not in answers]
    if missing:
        raise IontoError(EXIT_USAGE, "the contraindication checklist is incomplete: answer %s (e.g. --checklist %s)"
                         % (", ".join(missing), ",".join("%s=no" % k for k in keys)))
    return answers


def enrolment_record(answers, override_reason=None):
    """The checklist as stored in courses.checklist_json. A contraindication refuses the
    enrolment (EXIT_USAGE) unless an override reason is given, which is recorded with it."""
    present = [k for k, _w in CONTRAINDICATIONS if answers.get(k)]
    reason = (override_reason or "").strip() or None
    if present and reason is None:
        words = dict(CONTRAINDICATIONS)
        raise IontoError(EXIT_USAGE, "enrolment refused: contraindication %s; if the dermatologist decided to "
                         "treat anyway, give --override-reason TEXT (it is recorded)"
                         % "; ".join(words[k] for k in present))
    return {"answers": {k: ("yes" if answers[k] else "no") for k, _w in CONTRAINDICATIONS},
            "contraindications": present, "override_reason": reason if present else None}


# --- the archive ---------------------------------------------------------------------------
def get_course(db, label):
    row = db.execute("SELECT * FROM courses WHERE label = ?", (label,)).fetchone()
    if row is None:
        raise IontoError(EXIT_NOT_FOUND, "no course %r in the archive: `ionto course list` shows them" % label)
    return row


def create_course(db, label, site, start, record, now=None):
    check_label(label)
    if db.execute("SELECT 1 FROM courses WHERE label = ?", (label,)).fetchone():
        raise IontoError(EXIT_USAGE, "course %r exists already: `ionto course show %s`" % (label, label))
    clock = clinictime.get(db)
    created = clock.words(now if now is not None else clock.now_unix())
    db.execute("INSERT INTO courses(label, site, start_date, created, checklist_json, notes) VALUES (?, ?, ?, ?, ?, ?)",
               (label, site, start.isoformat(), created, json.dumps(record, sort_keys=True), None))
    db.commit()
    return get_course(db, label)


def parse_ref(text):
    """'SERIAL:SESSION' or 'SESSION' -> (serial or None, session int)."""
    serial, sep, num = str(text).rpartition(":")
    try:
        n = int(num)
    except ValueError:
        raise IontoError(EXIT_USAGE, "bad session %r: give SERIAL:SESSION as `ionto logs list` shows it "
                         "(e.g. E6614103E7452D2F:12)" % text)
    return (serial.strip() or None) if sep else None, n


def find_session(db, ref):
    """An archived session by reference -> its sessions row; EXIT_NOT_FOUND if none,
    EXIT_USAGE if a bare number matches sessions of several units."""
    serial, n = parse_ref(ref)
    if serial is None:
        rows = db.execute("SELECT * FROM sessions WHERE session = ?", (n,)).fetchall()
        if len(rows) > 1:
            raise IontoError(EXIT_USAGE, "session %d exists on %d units (%s): write it as SERIAL:%d"
                             % (n, len(rows), ", ".join(r["serial"] for r in rows), n))
    else:
        rows = db.execute("SELECT * FROM sessions WHERE serial = ? AND session = ?", (serial, n)).fetchall()
        if not rows:
            rows = db.execute("SELECT * FROM sessions WHERE upper(serial) = upper(?) AND session = ?",
                              (serial, n)).fetchall()
    if not rows:
        raise IontoError(EXIT_NOT_FOUND, "no session %s in the archive: `ionto logs pull` fetches a unit's sessions, "
                         "`ionto logs list` shows them" % ref)
    return rows[0]


def link_sessions(db, course, refs):
    """Link archived sessions to a course -> [(serial, session, 'linked'|'already linked')].
    All references are checked before anything is written."""
    rows = [find_session(db, r) for r in refs]
    out = []
    for r in rows:
        cur = db.execute("SELECT c.label FROM course_sessions cs JOIN courses c ON c.id = cs.course_id "
                         "WHERE cs.serial = ? AND cs.session = ?", (r["serial"], r["session"])).fetchone()
        if cur is not None and cur["label"] != course["label"]:
            raise IontoError(EXIT_USAGE, "session %s:%d belongs to course %s: unlink it there first"
                             % (r["serial"], r["session"], cur["label"]))
    for r in rows:
        cur = db.execute("SELECT 1 FROM course_sessions WHERE serial = ? AND session = ?",
                         (r["serial"], r["session"])).fetchone()
        if cur:
            out.append((r["serial"], r["session"], "already linked"))
            continue
        db.execute("INSERT INTO course_sessions(course_id, serial, session) VALUES (?, ?, ?)",
                   (course["id"], r["serial"], r["session"]))
        out.append((r["serial"], r["session"], "linked"))
    db.commit()
    return out


def unlink_sessions(db, course, refs):
    """Remove links; a session not linked to this course -> EXIT_NOT_FOUND (nothing changed)."""
    keys = []
    for ref in refs:
        serial, n = parse_ref(ref)
        q = "SELECT serial, session FROM course_sessions WHERE course_id = ? AND session = ?"
        args = [course["id"], n]
        if serial is not None:
            q += " AND upper(serial) = upper(?)"
            args.append(serial)
        rows = db.execute(q, args).fetchall()
        if not rows:
            raise IontoError(EXIT_NOT_FOUND, "session %s is not linked to course %s: `ionto course show %s` lists "
                             "its sessions" % (ref, course["label"], course["label"]))
        if len(rows) > 1:
            raise IontoError(EXIT_USAGE, "session %d of several units is linked to %s: write it as SERIAL:%d"
                             % (n, course["label"], n))
        keys.append((rows[0]["serial"], rows[0]["session"]))
    for serial, n in keys:
        db.execute("DELETE FROM course_sessions WHERE course_id = ? AND serial = ? AND session = ?",
                   (course["id"], serial, n))
    db.commit()
    return keys


def course_sessions(db, course):
    """The course's sessions rows (sessions.* plus fault names), oldest first."""
    rows = db.execute("SELECT s.* FROM course_sessions cs JOIN sessions s ON s.serial = cs.serial AND "
                      "s.session = cs.session WHERE cs.course_id = ? ORDER BY s.rtc_valid DESC, s.start_t, "
                      "s.serial, s.session", (course["id"],)).fetchall()
    out = []
    for r in rows:
        d = dict(r)
        ev = db.execute("SELECT code, name, a, b FROM session_events WHERE serial = ? AND session = ? ORDER BY t_s",
                        (r["serial"], r["session"])).fetchall()
        d["fault_names"] = [fault_name(e["a"]) for e in ev if (e["name"] or "").lower() == "fault"]
        out.append(d)
    return out


# --- adherence and progress -------------------------------------------------------------------
def session_date(row, clock=None):
    """The clinic date a session started (clinictime), or None when the unit's clock was not set."""
    if not row.get("rtc_valid") or row.get("start_t") is None:
        return None
    return (clock or clinictime.ClinicClock()).date(row["start_t"])


def ref(row):
    return "%s:%d" % (row["serial"], row["session"])


def progress(row, clock=None):
    """One session's figures for the report."""
    clock = clock or clinictime.ClinicClock()
    d = session_date(row, clock)
    t = clock.hhmm(row["start_t"]) if d else None
    dose = row.get("dose_uas")
    return {
        "session": ref(row), "date": d.isoformat() if d else None, "time": t,
        "preset": row.get("preset_name"),
        "target_ma": _ma(row.get("target_ua")), "reached_ma": _ma(row.get("max_actual_ua")),
        "dose_mamin": None if dose is None else round(mamin(dose), 1),
        "treat_min": None if row.get("treat_s") is None else round(row["treat_s"] / 60.0, 1),
        "pauses": row.get("pauses"), "faults": row.get("faults"),
        "fault_names": list(row.get("fault_names") or []),
        "end": end_words(row), "complete": bool(row.get("complete")), "damaged": row.get("damaged") or 0,
        "unit": row.get("serial"), "firmware": row.get("firmware"), "ceiling_ma": _ma(row.get("ceiling_ua")),
    }


DAYS_HEADERS = ("day", "wd", "date", "status", "sessions")


def days_rows(a):
    """An adherence (adherence()) as table rows: the scheduled days, the visits outside them and
    the sessions without a date."""
    rows = []
    for e in a["days"]:
        status = e["status"] + (" (+%d d)" % e["late_days"] if e["status"] == "late" else "")
        rows.append((e["day"], e["weekday"], e["date"], status, " ".join(e["sessions"])))
    for o in a["outside"]:
        rows.append(("", o["weekday"], o["date"], o["kind"], " ".join(o["sessions"])))
    for r in a["undated"]:
        rows.append(("", "", "?", "date unknown", r))
    return rows


def adherence(start, rows, today=None, clock=None):
    """Match sessions to the scheduled days.

    Sessions are grouped into visits by date (hands/feet and armpits on one day are one
    visit). For each scheduled day in order: a visit that day -> "done"; else the first unused
    visit after it and before the next scheduled day -> "late" (by N days); else "missed" if
    the day has passed, "due" if it has not. Visits left over are "extra" (before day 1, a
    second visit in one gap) or "maintenance" (after day 22). Sessions with no valid clock
    cannot be placed: "date unknown" (`ionto clock sync` prevents that).
    -> {"days": [...], "outside": [...], "undated": [...], "summary": {...}}
    """
    clock = clock or clinictime.ClinicClock()
    today = today or clock.today()
    visits = {}
    undated = []
    for r in rows:
        d = session_date(r, clock)
        if d is None:
            undated.append(ref(r))
        else:
            visits.setdefault(d, []).append(ref(r))
    used = set()
    days = []
    sched = schedule(start)
    for i, (day, date) in enumerate(sched):
        nxt = sched[i + 1][1] if i + 1 < len(sched) else date + _dt.timedelta(days=7)
        entry = {"day": day, "week": week_of(day), "date": date.isoformat(), "weekday": date.strftime("%a"),
                 "status": None, "late_days": 0, "sessions": []}
        if date in visits:
            entry["status"] = "done"
            entry["sessions"] = visits[date]
            used.add(date)
        else:
            late = [v for v in sorted(visits) if date < v < nxt and v not in used]
            if late:
                v = late[0]
                used.add(v)
                entry.update(status="late", late_days=(v - date).days, sessions=visits[v], done_on=v.isoformat())
            else:
                entry["status"] = "missed" if date < today else "due"
        days.append(entry)
    last = sched[-1][1]
    outside = []
    for v in sorted(visits):
        if v in used:
            continue
        kind = "maintenance" if v > last else "extra"
        outside.append({"date": v.isoformat(), "weekday": v.strftime("%a"), "day": (v - start).days + 1,
                        "kind": kind, "sessions": visits[v]})
    count = {}
    for e in days:
        count[e["status"]] = count.get(e["status"], 0) + 1
    summary = {"scheduled": len(days), "done": count.get("done", 0), "late": count.get("late", 0),
               "missed": count.get("missed", 0), "due": count.get("due", 0),
               "extra": sum(1 for o in outside if o["kind"] == "extra"),
               "maintenance": sum(1 for o in outside if o["kind"] == "maintenance"),
               "undated": len(undated), "sessions": len(rows)}
    return {"days": days, "outside": outside, "undated": undated, "summary": summary}


def report_base(c, rows, start, today, clock):
    """The course, adherence and per-session figures (outcome.build adds the rest)."""
    try:
        checklist = json.loads(c["checklist_json"] or "{}")
    except ValueError:
        checklist = {}
    return {
        "course": {"label": c["label"], "site": c["site"], "start_date": c["start_date"], "created": c["created"],
                   "contraindications": checklist.get("contraindications", []),
                   "override_reason": checklist.get("override_reason"),
                   "checklist": checklist.get("answers", {})},
        "adherence": adherence(start, rows, today, clock),
        "sessions": [progress(r, clock) for r in rows],
    }


def report(db, label, today=None):
    """Everything `ionto report` shows, as plain data (outcome.build)."""
    from . import outcome

    return outcome.build(db, label, today)
