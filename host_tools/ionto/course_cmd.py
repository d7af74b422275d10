"""`ionto course new | list | show | link | unlink | visit | plan | tz`: clinic courses in the
host's archive.

    ionto course new C-0042 --start 2025-03-04 --site hands_feet \\
        --checklist pregnancy=no,epilepsy=no,metal_implants=no,pacemaker=no
    ionto course link C-0042 E6614103E7452D2F:12 E6614103E7452D2F:13
    ionto course show C-0042
    ionto course tz Europe/Berlin                      # once per archive: the clinic's time zone
    ionto course visit C-0042 --day 4 --hdss hands=3,feet=2 --reaction none --checklist unchanged \
        --operator RN07 [--note TEXT]
    ionto course plan C-0042 --maintenance-every 14 --operator DR02

LABEL is the clinic's pseudonymous code for the patient (e.g. C-0042), kept with the clinic's
own records: never a name, a date of birth or a hospital number. Courses live only in the
host's archive; nothing of a course goes to a unit. The contraindication checklist
(pregnancy, epilepsy, metal implants, pacemaker or other electrical implant) is answered in
full at enrolment; a "yes" refuses the enrolment unless --override-reason says why the
dermatologist decided to treat, and that reason is recorded. Each visit re-confirms it in one
line (`--checklist unchanged`). Visits and plans carry the operator's code (--operator, else
IONTO_OPERATOR), never a name; dates are the clinic's (`course tz`).
"""
import json

from . import archive, clinictime, course, visits, words
from .archive import table
from .errors import EXIT_USAGE, IontoError

_CHECKLIST_HELP = ",".join("%s=no" % k for k, _w in course.CONTRAINDICATIONS)


def add_arguments(p):
    sub = p.add_subparsers(dest="course_cmd", metavar="ACTION")
    sub.required = True

    def cmd(name, help_):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--archive", metavar="PATH", help="the archive (default: $IONTO_ARCHIVE, else "
                        "~/.local/share/ionto/archive.sqlite)")
        return sp

    sp = cmd("new", "enrol a course: label, start, site and the contraindication checklist")
    sp.add_argument("label", metavar="LABEL", help="pseudonymous clinic code (e.g. C-0042), never a name")
    sp.add_argument("--start", required=True, metavar="DATE", help="first session, YYYY-MM-DD (a Tuesday)")
    sp.add_argument("--site", required=True, metavar="SITE",
                    help="%s (several with '+': armpits+hands_feet)" % "|".join(course.SITES))
    sp.add_argument("--checklist", required=True, metavar="ANSWERS",
                    help="every contraindication answered yes or no: %s" % _CHECKLIST_HELP)
    sp.add_argument("--override-reason", metavar="TEXT",
                    help="enrol despite a contraindication; why (recorded with the course)")
    sp.add_argument("--force", action="store_true", help="accept a start that is not a Tuesday")

    cmd("list", "the courses in the archive, with their adherence so far")

    sp = cmd("show", "one course: enrolment, checklist, schedule and linked sessions")
    sp.add_argument("label", metavar="LABEL")

    sp = cmd("link", "link archived sessions (SERIAL:SESSION) to a course (host only)")
    sp.add_argument("label", metavar="LABEL")
    sp.add_argument("sessions", nargs="+", metavar="SERIAL:SESSION")

    sp = cmd("unlink", "remove sessions from a course (the sessions stay archived)")
    sp.add_argument("label", metavar="LABEL")
    sp.add_argument("sessions", nargs="+", metavar="SERIAL:SESSION")

    sp = cmd("visit", "record a visit on a course day: HDSS per site, skin reactions, checklist, notes")
    sp.add_argument("label", metavar="LABEL")
    sp.add_argument("--day", metavar="N", help="the course day (1, 2, 4, 7, 10, 15, 22, a maintenance day, "
                    "or a day with a linked session)")
    sp.add_argument("--date", metavar="DATE", help="or the date, YYYY-MM-DD (clinic time)")
    sp.add_argument("--hdss", required=True, metavar="SCORES",
                    help="HDSS 1-4 per treated site as the patient reports it: hands=3,feet=2 (one site: 3)")
    sp.add_argument("--reaction", required=True, metavar="LIST",
                    help="skin reactions: %s (several with ',')" % "|".join(visits.REACTIONS))
    sp.add_argument("--checklist", required=True, metavar="ANSWERS",
                    help="contraindications re-confirmed: 'unchanged', or every item again (%s)" % _CHECKLIST_HELP)
    sp.add_argument("--override-reason", metavar="TEXT", help="a new contraindication and the dermatologist "
                    "decided to treat: why")
    sp.add_argument("--note", metavar="TEXT", help="notes (never a name)")
    sp.add_argument("--operator", metavar="CODE", help="your staff code (default: $IONTO_OPERATOR), never a name")
    sp.add_argument("--replace", action="store_true", help="correct the visit already recorded for that day")

    sp = cmd("plan", "set a course's plan: maintenance interval, response rules, advice step, trend window")
    sp.add_argument("label", metavar="LABEL")
    sp.add_argument("--maintenance-every", type=int, metavar="DAYS", help="maintenance interval set by the clinician")
    sp.add_argument("--maintenance-from", metavar="DATE", help="first maintenance date (default: day 22 + interval)")
    sp.add_argument("--maintenance-count", type=int, metavar="N", help="maintenance dates to plan (default 6)")
    sp.add_argument("--no-response-after", type=int, metavar="N",
                    help="flag no HDSS improvement after N sessions (default 3: the first week)")
    sp.add_argument("--step-ma", type=float, metavar="MA", help="next-target raise after an uneventful session "
                    "(default 1.0)")
    sp.add_argument("--trend-window", metavar="AFTER,LEN", help="skin-resistance window: seconds after the ramp "
                    "and its length (default 60,60)")
    sp.add_argument("--hold-s", type=int, metavar="S", help="seconds a current must last to count as held (default 10)")
    sp.add_argument("--operator", metavar="CODE", help="your staff code (default: $IONTO_OPERATOR)")

    sp = cmd("tz", "show or set the clinic's time zone (once per archive): course days are clinic dates")
    sp.add_argument("zone", nargs="?", metavar="ZONE", help="an IANA name, e.g. Europe/Berlin")


def run(args):
    return _ACTIONS[args.course_cmd](args)


def _db(args):
    return archive.connect(getattr(args, "archive", None))


def _new(args):
    course.check_label(args.label)
    start = course.parse_date(args.start, "start date")
    course.check_start(start, args.force)
    site = course.parse_sites(args.site)
    record = course.enrolment_record(course.parse_checklist(args.checklist), args.override_reason)
    db = _db(args)
    try:
        course.create_course(db, args.label, site, start, record)
    finally:
        db.close()
    print("course %s enrolled: %s, starting %s %s" % (args.label, site, start.strftime("%a"), start.isoformat()))
    if record["contraindications"]:
        print("contraindication override recorded: %s (reason: %s)"
              % (", ".join(record["contraindications"]), record["override_reason"]))
    print("sessions on %s; %s." % (", ".join(d.isoformat() for _n, d in course.schedule(start)), course.MAINTENANCE))
    return 0


def _list(args):
    db = _db(args)
    try:
        rows = []
        clock = clinictime.get(db)
        for c in db.execute("SELECT * FROM courses ORDER BY start_date, label").fetchall():
            a = course.adherence(course.parse_date(c["start_date"], "start date"), course.course_sessions(db, c),
                                 clock=clock)
            s = a["summary"]
            rows.append((c["label"], c["site"], c["start_date"], s["sessions"], s["done"], s["late"], s["missed"],
                         s["due"]))
    finally:
        db.close()
    if not rows:
        print("no courses in the archive (`ionto course new LABEL ...` enrols one)")
        return 0
    print(table(rows, ("course", "site", "start", "sessions", "done", "late", "missed", "due")))
    return 0


def _show(args):
    db = _db(args)
    try:
        c = course.get_course(db, args.label)
        rows = course.course_sessions(db, c)
        clock = clinictime.get(db)
        vis = visits.course_visits(db, c, clock)
        plan = visits.get_plan(db, c)
    finally:
        db.close()
    try:
        rec = json.loads(c["checklist_json"] or "{}")
    except ValueError:
        rec = {}
    start = course.parse_date(c["start_date"], "start date")
    print("course     %s" % c["label"])
    print("site       %s" % c["site"])
    print("start      %s %s" % (start.strftime("%a"), start.isoformat()))
    print("enrolled   %s" % c["created"])
    answers = rec.get("answers", {})
    print("checklist  %s" % ", ".join("%s=%s" % (k, answers.get(k, "?")) for k, _w in course.CONTRAINDICATIONS))
    if rec.get("contraindications"):
        print("override   %s: %s" % (", ".join(rec["contraindications"]), rec.get("override_reason")))
    print("time zone  %s" % clock.label())
    if plan.get("maintenance_every_days"):
        print("maintenance every %d days" % plan["maintenance_every_days"])
    a = course.adherence(start, rows, clock=clock)
    print()
    print(_days_table(a))
    print()
    if rows:
        print(table([(course.ref(r), *_when(r, clock), r.get("preset_name"), words.session_end_words(r)) for r in rows],
                    ("session", "date", "time", "preset", "end")))
    else:
        print("no sessions linked (`ionto course link %s SERIAL:SESSION ...`)" % c["label"])
    print()
    if vis:
        print(table([(v["day"], v["date"], " ".join("%s=%d" % kv for kv in sorted(v["hdss"].items())),
                      ",".join(v["reactions"]), v["checklist"], v["operator"], v["notes"] or "") for v in vis],
                    ("day", "date", "HDSS", "reactions", "checklist", "operator", "notes")))
    else:
        print("no visits recorded (`ionto course visit %s --day N ...`)" % c["label"])
    return 0


def _visit(args):
    date = course.parse_date(args.date, "visit date") if args.date else None
    db = _db(args)
    try:
        v = visits.record(db, args.label, day=args.day, date=date, hdss=args.hdss, reactions=args.reaction,
                          checklist=args.checklist, operator=args.operator, notes=args.note,
                          override_reason=args.override_reason, replace=args.replace)
    finally:
        db.close()
    print("visit recorded for %s day %d (%s, %s) by %s at %s: HDSS %s; skin %s; checklist %s"
          % (args.label, v["day"], v["date"], v["kind"], v["operator"], v["recorded"],
             ", ".join("%s %d" % kv for kv in sorted(v["hdss"].items())), ", ".join(v["reactions"]),
             "unchanged" if v["checklist"]["unchanged"] else "re-asked"))
    if v["checklist"]["new"]:
        print("contraindication since enrolment: %s (reason: %s)" % (", ".join(v["checklist"]["new"]),
                                                                    v["checklist"]["override_reason"]))
    return 0


def _plan(args):
    changes = {}
    if args.maintenance_every is not None:
        if not 1 <= args.maintenance_every <= 365:
            raise IontoError(EXIT_USAGE, "--maintenance-every %d: give days between 1 and 365"
                                     % args.maintenance_every)
        changes["maintenance_every_days"] = args.maintenance_every
    if args.maintenance_from is not None:
        changes["maintenance_from"] = course.parse_date(args.maintenance_from, "maintenance date").isoformat()
    for key, v, lo, hi in (("maintenance_count", args.maintenance_count, 1, 52),
                           ("no_response_after", args.no_response_after, 1, 30),
                           ("hold_s", args.hold_s, 1, 600)):
        if v is not None:
            if not lo <= v <= hi:
                raise IontoError(EXIT_USAGE, "--%s %d: give %d to %d" % (key.replace("_", "-"), v, lo, hi))
            changes[key] = v
    if args.step_ma is not None:
        if not 0.1 <= args.step_ma <= 5:
            raise IontoError(EXIT_USAGE, "--step-ma %g: give 0.1 to 5 mA" % args.step_ma)
        changes["step_ma"] = args.step_ma
    if args.trend_window is not None:
        try:
            a, n = (int(x) for x in args.trend_window.split(","))
            if a < 0 or n < 3:
                raise ValueError
        except ValueError:
            raise IontoError(EXIT_USAGE, "--trend-window %r: give AFTER,LEN in seconds, e.g. 60,60 "
                                     "(LEN at least 3)" % args.trend_window)
        changes["trend_after_s"], changes["trend_len_s"] = a, n
    op = visits.operator_code(args.operator)
    db = _db(args)
    try:
        c = course.get_course(db, args.label)
        plan = visits.set_plan(db, c, changes, op)
    finally:
        db.close()
    print("plan of %s (set by %s): %s" % (args.label, op, ", ".join("%s=%s" % kv for kv in sorted(plan.items()))))
    return 0


def _tz(args):
    db = _db(args)
    try:
        clock = clinictime.set_zone(db, args.zone) if args.zone else clinictime.get(db)
    finally:
        db.close()
    print("clinic time zone: %s%s" % (clock.label(), " (saved in the archive)" if args.zone else ""))
    return 0


def _when(row, clock=None):
    p = course.progress(row, clock)
    return (p["date"] or "date unknown", p["time"] or "")


def _days_table(a):
    return table(course.days_rows(a), course.DAYS_HEADERS)


def _on_sessions(args, change):
    """change(db, course, sessions) on the course's archive -> what it did."""
    db = _db(args)
    try:
        return change(db, course.get_course(db, args.label), args.sessions)
    finally:
        db.close()


def _link(args):
    for serial, n, what in _on_sessions(args, course.link_sessions):
        print("%s:%d %s to %s" % (serial, n, what, args.label))
    return 0


def _unlink(args):
    for serial, n in _on_sessions(args, course.unlink_sessions):
        print("%s:%d unlinked from %s" % (serial, n, args.label))
    return 0


_ACTIONS = {"new": _new, "list": _list, "show": _show, "link": _link, "unlink": _unlink, "visit": _visit,
            "plan": _plan, "tz": _tz}
