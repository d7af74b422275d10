"""`ionto course new | list | show | link | unlink`: clinic courses in the host's archive.

    ionto course new C-0042 --start 2025-03-04 --site hands_feet \\
        --checklist pregnancy=no,epilepsy=no,metal_implants=no,pacemaker=no
    ionto course link C-0042 E6614103E7452D2F:12 E6614103E7452D2F:13
    ionto course show C-0042

LABEL is the clinic's pseudonymous code for the patient (e.g. C-0042), kept with the clinic's
own records: never a name, a date of birth or a hospital number. Courses live only in the
host's archive; nothing of a course goes to a unit. The contraindication checklist
(pregnancy, epilepsy, metal implants, pacemaker or other electrical implant) is answered in
full at enrolment; a "yes" refuses the enrolment unless --override-reason says why the
dermatologist decided to treat, and that reason is recorded.
"""
import json

from . import archive, course
from .archive import table

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
        for c in db.execute("SELECT * FROM courses ORDER BY start_date, label").fetchall():
            a = course.adherence(course.parse_date(c["start_date"], "start date"), course.course_sessions(db, c))
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
    a = course.adherence(start, rows)
    print()
    print(_days_table(a))
    print()
    if rows:
        print(table([(course.ref(r), *_when(r), r.get("preset_name"), course.end_words(r)) for r in rows],
                    ("session", "date", "time", "preset", "end")))
    else:
        print("no sessions linked (`ionto course link %s SERIAL:SESSION ...`)" % c["label"])
    return 0


def _when(row):
    p = course.progress(row)
    return (p["date"] or "date unknown", p["time"] or "")


def _days_table(a):
    rows = []
    for e in a["days"]:
        status = e["status"] + (" (+%d d)" % e["late_days"] if e["status"] == "late" else "")
        rows.append((e["day"], e["weekday"], e["date"], status, " ".join(e["sessions"])))
    for o in a["outside"]:
        rows.append(("", o["weekday"], o["date"], o["kind"], " ".join(o["sessions"])))
    for r in a["undated"]:
        rows.append(("", "", "?", "date unknown", r))
    return table(rows, ("day", "wd", "date", "status", "sessions"))


def _link(args):
    db = _db(args)
    try:
        c = course.get_course(db, args.label)
        done = course.link_sessions(db, c, args.sessions)
    finally:
        db.close()
    for serial, n, what in done:
        print("%s:%d %s to %s" % (serial, n, what, args.label))
    return 0


def _unlink(args):
    db = _db(args)
    try:
        c = course.get_course(db, args.label)
        done = course.unlink_sessions(db, c, args.sessions)
    finally:
        db.close()
    for serial, n in done:
        print("%s:%d unlinked from %s" % (serial, n, args.label))
    return 0


_ACTIONS = {"new": _new, "list": _list, "show": _show, "link": _link, "unlink": _unlink}
