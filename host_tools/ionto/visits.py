"""Visit records and a course's plan: what the nurse records at each visit, pure logic and
the archive rows (archive.visits, archive.course_plans). The commands print (course_cmd).

A visit is attached to a course DAY: a scheduled day (1, 2, 4, 7, 10, 15, 22), a maintenance
date of the course's plan, or a date on which a linked session took place. It records:
- HDSS per treated site, as the patient reports it (Hyperhidrosis Disease Severity Scale:
  1 never noticeable and never interferes, 2 tolerable and sometimes interferes,
  3 barely tolerable and frequently interferes, 4 intolerable and always interferes);
- skin reactions: none, redness, dryness, blister, burn;
- notes (free text: the clinic's words, never a name);
- the contraindication checklist re-confirmed in one line (`--checklist unchanged`, or every
  item answered again); a new "yes" needs the dermatologist's reason, as at enrolment;
- the operator's code (command line or IONTO_OPERATOR; a code, never a name) and the time,
  stored as Unix seconds with the clinic's zone.
Every check runs before anything is written: bad input changes nothing.
"""
import json
import os
import re

from . import clinictime, course
from .errors import EXIT_USAGE, IontoError

HDSS_WORDS = {
    1: "never noticeable, never interferes with daily activities",
    2: "tolerable, sometimes interferes",
    3: "barely tolerable, frequently interferes",
    4: "intolerable, always interferes",
}
REACTIONS = ("none", "redness", "dryness", "blister", "burn")
SERIOUS = ("blister", "burn")
# Course site -> the body sites scored separately.
HDSS_SITES = {"hands": ("hands",), "feet": ("feet",), "hands_feet": ("hands", "feet"), "armpits": ("armpits",)}

# An operator code: like a course label, letters/digits/'-_.', at least one digit, no spaces.
_OPERATOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,15}$")
OPERATOR_ENV = "IONTO_OPERATOR"

# The course's plan: defaults where the clinician set nothing.
PLAN_DEFAULTS = {
    "maintenance_every_days": None,  # the clinician sets it; the clinic's page gives no interval
    "maintenance_from": None,  # first maintenance date; default: day 22 + the interval
    "maintenance_count": 6,  # maintenance dates listed
    "no_response_after": 3,  # sessions before "no HDSS improvement" is flagged (first week: days 1, 2, 4)
    "step_ma": 1.0,  # raise of the next target after an uneventful session
    "trend_after_s": 60,  # dryness figure: seconds after the ramp reached the target ...
    "trend_len_s": 60,  # ... and for how long (median of the 1 s V/I samples)
    "hold_s": 10,  # a current counts as "held" after this many seconds at or above it
}


def operator_code(given, required=True):
    """The operator's code from the command line, else IONTO_OPERATOR; one line if missing or
    not a code."""
    code = (given or os.environ.get(OPERATOR_ENV) or "").strip()
    if not code:
        if not required:
            return None
        raise IontoError(EXIT_USAGE, "no operator code: give --operator CODE (e.g. RN07) or set %s; a code, "
                         "never a name" % OPERATOR_ENV)
    if not _OPERATOR.match(code) or not any(c.isdigit() for c in code):
        raise IontoError(EXIT_USAGE, "bad operator code %r: the clinic's staff code (letters, digits, '-', at "
                         "least one digit, no spaces, e.g. RN07), never a name" % code)
    return code


def hdss_sites(course_site):
    out = []
    for s in (course_site or "").split("+"):
        for h in HDSS_SITES.get(s, ()):
            if h not in out:
                out.append(h)
    return out


def parse_hdss(text, course_site):
    """'hands=3,feet=2' (or '3' for a one-site course) -> {site: score}; every treated site."""
    sites = hdss_sites(course_site)
    text = (text or "").strip()
    if not text:
        raise IontoError(EXIT_USAGE, "no HDSS given: score each treated site 1 to 4, e.g. --hdss %s"
                         % ",".join("%s=3" % s for s in sites))
    out = {}
    for item in text.split(","):
        k, sep, v = item.strip().partition("=")
        if not sep:
            if len(sites) != 1:
                raise IontoError(EXIT_USAGE, "HDSS %r: this course treats %s: score each, e.g. --hdss %s"
                                 % (item, " and ".join(sites), ",".join("%s=3" % s for s in sites)))
            k, v = sites[0], k
        k = k.strip().lower()
        if k not in sites:
            raise IontoError(EXIT_USAGE, "unknown site %r for HDSS: this course treats %s" % (k, ", ".join(sites)))
        try:
            n = int(v.strip())
        except ValueError:
            n = None
        if n not in HDSS_WORDS:
            raise IontoError(EXIT_USAGE, "HDSS %s=%s: the scale runs from 1 (never noticeable) to 4 (intolerable)"
                             % (k, v.strip()))
        out[k] = n
    missing = [s for s in sites if s not in out]
    if missing:
        raise IontoError(EXIT_USAGE, "HDSS missing for %s: score every treated site (1 to 4)" % ", ".join(missing))
    return out


def parse_reactions(text):
    parts = course.parse_choices(text, REACTIONS, "skin reaction", "','")
    if "none" in parts and len(parts) > 1:
        raise IontoError(EXIT_USAGE, "skin reaction %r: 'none' cannot go with a reaction" % text)
    return [r for r in REACTIONS if r in parts]


def parse_reconfirm(text, enrolment):
    """'unchanged' (every enrolment answer still holds) or the full KEY=yes|no list -> answers."""
    t = (text or "").strip().lower()
    keys = [k for k, _w in course.CONTRAINDICATIONS]
    if t in ("unchanged", "same", "no change"):
        answers = (enrolment or {}).get("answers") or {}
        missing = [k for k in keys if k not in answers]
        if missing:
            raise IontoError(EXIT_USAGE, "the enrolment did not ask %s: answer every item at this visit "
                             "(--checklist %s)" % (", ".join(missing), ",".join("%s=no" % k for k in keys)))
        return {k: answers[k] == "yes" for k in keys}, True
    return course.parse_checklist(text), False


def course_dates(db, c, clock, plan):
    """{date: (day number, kind)} of the days a visit may be recorded on."""
    start = course.parse_date(c["start_date"], "start date")
    out = {d: (n, "scheduled") for n, d in course.schedule(start)}
    from . import maintenance

    for m in maintenance.dates(start, plan):
        out.setdefault(m, ((m - start).days + 1, "maintenance"))
    for r in course.course_sessions(db, c):
        d = course.session_date(r, clock)
        if d is not None:
            out.setdefault(d, ((d - start).days + 1, "session"))
    return out


def get_plan(db, c):
    row = db.execute("SELECT plan_json FROM course_plans WHERE course_id = ?", (c["id"],)).fetchone()
    plan = dict(PLAN_DEFAULTS)
    if row is not None:
        try:
            plan.update(json.loads(row[0] or "{}"))
        except ValueError:
            pass
    return plan


def set_plan(db, c, changes, operator, now=None):
    plan = get_plan(db, c)
    plan.update(changes)
    clock = clinictime.get(db)
    db.execute("INSERT OR REPLACE INTO course_plans(course_id, plan_json, operator, recorded_t) VALUES (?, ?, ?, ?)",
               (c["id"], json.dumps(plan, sort_keys=True), operator, now if now is not None else clock.now_unix()))
    db.commit()
    return plan


def record(db, label, *, day=None, date=None, hdss, reactions, checklist, operator, notes=None,
           override_reason=None, replace=False, now=None):
    """Check everything, then write one visit -> its row as a dict. Bad input: IontoError, nothing
    written. day: a course day number; date: a datetime.date (one of the two)."""
    c = course.get_course(db, label)
    clock = clinictime.get(db)
    operator = operator_code(operator)
    plan = get_plan(db, c)
    allowed = course_dates(db, c, clock, plan)
    start = course.parse_date(c["start_date"], "start date")
    if (day is None) == (date is None):
        raise IontoError(EXIT_USAGE, "say which course day the visit belongs to: --day N or --date YYYY-MM-DD")
    if day is not None:
        import datetime as _dt

        try:
            day = int(day)
        except (TypeError, ValueError):
            raise IontoError(EXIT_USAGE, "bad course day %r: a number such as 4" % (day,))
        date = start + _dt.timedelta(days=day - 1)
    if date not in allowed:
        sched = ", ".join(str(n) for n, _d in course.schedule(start))
        raise IontoError(EXIT_USAGE, "%s (day %d) is not a day of course %s: its scheduled days are %s; a "
                         "maintenance date of its plan or a day with a linked session also count"
                         % (date.isoformat(), (date - start).days + 1, label, sched))
    scores = parse_hdss(hdss, c["site"])
    reacts = parse_reactions(reactions)
    try:
        enrol = json.loads(c["checklist_json"] or "{}")
    except ValueError:
        enrol = {}
    answers, unchanged = parse_reconfirm(checklist, enrol)
    present = [k for k, _w in course.CONTRAINDICATIONS if answers.get(k)]
    reason = (override_reason or "").strip() or None
    new = [k for k in present if k not in (enrol.get("contraindications") or [])]
    if new and reason is None:
        words = dict(course.CONTRAINDICATIONS)
        raise IontoError(EXIT_USAGE, "visit not recorded: contraindication %s since enrolment; do not treat, ask "
                         "the dermatologist; if they decide to treat anyway give --override-reason TEXT"
                         % "; ".join(words[k] for k in new))
    prev = db.execute("SELECT * FROM visits WHERE course_id = ? AND date = ? AND superseded = 0",
                      (c["id"], date.isoformat())).fetchone()
    if prev is not None and not replace:
        raise IontoError(EXIT_USAGE, "a visit for %s (day %d) is recorded already (by %s): add --replace to "
                         "correct it (the old record is kept, marked replaced)"
                         % (date.isoformat(), prev["day"], prev["operator"]))
    notes = (notes or "").strip() or None
    n_day, kind = allowed[date]
    chk = {"answers": {k: ("yes" if answers[k] else "no") for k, _w in course.CONTRAINDICATIONS},
           "unchanged": unchanged, "contraindications": present, "new": new,
           "override_reason": reason if new else None}
    t = now if now is not None else clock.now_unix()
    if prev is not None:
        db.execute("UPDATE visits SET superseded = 1 WHERE id = ?", (prev["id"],))
    db.execute("INSERT INTO visits(course_id, date, day, recorded_t, tz, operator, hdss_json, reactions, notes, "
               "checklist_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (c["id"], date.isoformat(), n_day, t, clock.name, operator, json.dumps(scores, sort_keys=True),
                ",".join(reacts), notes, json.dumps(chk, sort_keys=True)))
    db.commit()
    return {"date": date.isoformat(), "day": n_day, "kind": kind, "hdss": scores, "reactions": reacts,
            "operator": operator, "recorded": clock.words(t), "checklist": chk, "notes": notes}


def course_visits(db, c, clock=None):
    """The course's current visit records (replaced ones left out), oldest first, as dicts."""
    clock = clock or clinictime.get(db)
    out = []
    for r in db.execute("SELECT * FROM visits WHERE course_id = ? AND superseded = 0 ORDER BY date, id",
                        (c["id"],)).fetchall():
        try:
            chk = json.loads(r["checklist_json"] or "{}")
        except ValueError:
            chk = {}
        try:
            hdss = {k: int(v) for k, v in json.loads(r["hdss_json"] or "{}").items()}
        except (ValueError, AttributeError):
            hdss = {}
        out.append({"date": r["date"], "day": r["day"], "hdss": hdss,
                    "reactions": [x for x in (r["reactions"] or "").split(",") if x],
                    "notes": r["notes"], "operator": r["operator"], "recorded": clock.words(r["recorded_t"]),
                    "recorded_t": r["recorded_t"],
                    "checklist": "unchanged" if chk.get("unchanged") else (
                        "re-asked: " + (", ".join("%s=yes" % k for k in chk.get("contraindications", [])) or "all no")),
                    "contraindications": chk.get("contraindications", []), "new_contraindications": chk.get("new", []),
                    "override_reason": chk.get("override_reason")})
    return out


def audit_rows(db):
    """Visit records and plan changes as (time, operator, what) for `ionto logs events`."""
    clock = clinictime.get(db)
    rows = []
    for r in db.execute("SELECT v.*, c.label FROM visits v JOIN courses c ON c.id = v.course_id ORDER BY v.recorded_t, v.id"):
        rows.append((r["recorded_t"], clock.words(r["recorded_t"]), r["operator"],
                     "visit recorded: course %s day %s (%s)%s" % (r["label"], r["day"], r["date"],
                                                                 ", later replaced" if r["superseded"] else "")))
    for r in db.execute("SELECT p.*, c.label FROM course_plans p JOIN courses c ON c.id = p.course_id"):
        rows.append((r["recorded_t"] or 0, clock.words(r["recorded_t"] or 0), r["operator"] or "?",
                     "course plan set: course %s" % r["label"]))
    rows.sort()
    return [r[1:] for r in rows]
