"""The maintenance plan after the course: dates every N days (N set by the clinician; the
clinic's page gives no interval, so there is no default), and whether each was kept.

The first date is the course's last scheduled day (22) plus the interval, unless the plan names
another. A date counts as kept when a linked session took place within a tolerance of a quarter
of the interval (at least one day) either side; later sessions in that window are not counted
twice. Past dates without one are "missed", later ones "due".
"""
import datetime as _dt

from . import course


def tolerance_days(every):
    return max(1, int(every) // 4)


def dates(start, plan):
    every = plan.get("maintenance_every_days")
    if not every:
        return []
    first = plan.get("maintenance_from")
    first = course.parse_date(first, "maintenance start") if first else \
        course.schedule(start)[-1][1] + _dt.timedelta(days=int(every))
    return [first + _dt.timedelta(days=int(every) * i) for i in range(int(plan.get("maintenance_count") or 6))]


def status(start, plan, session_dates, today):
    """-> {"every_days", "tolerance_days", "dates": [{"date", "status", "session_date"}]} or None
    when no interval is set."""
    every = plan.get("maintenance_every_days")
    if not every:
        return None
    tol = tolerance_days(every)
    last_course_day = course.schedule(start)[-1][1]
    pool = sorted(d for d in set(session_dates) if d > last_course_day)
    used = set()
    out = []
    for d in dates(start, plan):
        hit = [s for s in pool if abs((s - d).days) <= tol and s not in used]
        if hit:
            s = min(hit, key=lambda x: abs((x - d).days))
            used.add(s)
            off = (s - d).days
            st = "kept" if off == 0 else "kept (%+d d)" % off
            out.append({"date": d.isoformat(), "weekday": d.strftime("%a"), "status": st, "session_date": s.isoformat()})
        else:
            st = "missed" if d + _dt.timedelta(days=tol) < today else "due"
            out.append({"date": d.isoformat(), "weekday": d.strftime("%a"), "status": st, "session_date": None})
    return {"every_days": int(every), "tolerance_days": tol, "dates": out}
