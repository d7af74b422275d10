"""`ionto schedule --start DATE [--force]`: the course's session dates.

Days 1, 2, 4, 7, 10, 15 and 22 (day 1 = the start, always a Tuesday), then maintenance. A start
that is not a Tuesday is refused (exit 2) unless --force.
"""
from . import course
from .archive import table


def add_arguments(p):
    p.add_argument("--start", required=True, metavar="DATE", help="first session, YYYY-MM-DD (a Tuesday)")
    p.add_argument("--force", action="store_true", help="accept a start that is not a Tuesday")


def lines(start):
    rows = [(d, "week %d" % course.week_of(d), date.strftime("%a"), date.isoformat())
            for d, date in course.schedule(start)]
    return table(rows, ("day", "week", "weekday", "date")).splitlines() + [course.MAINTENANCE + "."]


def run(args):
    start = course.parse_date(args.start, "start date")
    course.check_start(start, args.force)
    if start.weekday() != course.START_WEEKDAY:
        print("note: %s is a %s, not a Tuesday (--force)" % (start.isoformat(), start.strftime("%A")))
    print("\n".join(lines(start)))
    return 0
