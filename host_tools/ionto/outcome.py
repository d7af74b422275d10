"""A course's progress as plain data: adherence, sessions with tolerance and skin-resistance
figures, visits (HDSS, reactions), the dryness trend, the next-target advice, response flags,
the maintenance plan and the units and firmware used. `ionto report` renders it as text, JSON,
CSV, HTML or PDF (report_cmd, report_render): every format carries the same content.
No names anywhere: the course label and operator codes only.
"""
from . import clinictime, course, dryness, flags, maintenance, tolerance, visits, words


def build(db, label, today=None, now=None):
    c = course.get_course(db, label)
    clock = clinictime.get(db)
    plan = visits.get_plan(db, c)
    rows = course.course_sessions(db, c)
    start = course.parse_date(c["start_date"], "start date")
    today = today or clock.today()
    base = course.report_base(c, rows, start, today, clock)
    sessions = []
    series = {}
    for r, p in zip(rows, base["sessions"]):
        samples, spans, tol = tolerance.session_figures(db, r, int(plan["hold_s"]))
        p.update(tol)
        p["course_day"] = None if p["date"] is None else (course.parse_date(p["date"]) - start).days + 1
        figs = dryness.figures(samples, int(plan["trend_after_s"]), int(plan["trend_len_s"]), spans)
        p["skin_kohm"] = {words.polarity(k): v for k, v in sorted(figs.items())}
        sessions.append(p)
        if p["course_day"] is None:
            continue
        for pol, f in sorted(figs.items()):
            key = (p["preset"] or "?", words.polarity(pol))
            series.setdefault(key, []).append(dict(f, day=p["course_day"], date=p["date"], session=p["session"]))
    dseries = []
    for (site, pol), pts in sorted(series.items()):
        tr = dryness.trend(pts)
        dseries.append({"site": site, "polarity": pol, "points": pts, "trend": tr})
    vis = visits.course_visits(db, c, clock)
    dated = [s for s in sessions if s["date"]]
    last = dated[-1] if dated else (sessions[-1] if sessions else None)
    since = []
    if last is not None and last["date"]:
        for v in vis:
            if v["date"] >= last["date"]:
                since += [x for x in v["reactions"] if x != "none"]
    advice = tolerance.next_target(last, since, float(plan["step_ma"]))
    session_dates = [s["date"] for s in dated]
    sites = visits.hdss_sites(c["site"])
    fl = flags.build(vis, sessions, session_dates, sites, plan)
    maint = maintenance.status(start, plan, [course.parse_date(d) for d in session_dates], today)
    units = {}
    for s in sessions:
        u = units.setdefault(s["unit"], set())
        if s.get("firmware"):
            u.add(s["firmware"])
    rep = base
    rep.update({
        "generated": clock.words(now if now is not None else clock.now_unix()),
        "plan": plan,
        "sessions": sessions,
        "visits": vis,
        "hdss_sites": sites,
        "dryness": {"method": dryness.METHOD % (int(plan["trend_after_s"]),
                                                int(plan["trend_after_s"]) + int(plan["trend_len_s"])),
                    "series": dseries},
        "next_target": advice,
        "flags": fl,
        "maintenance": maint,
        "units": [{"serial": k, "firmware": sorted(v)} for k, v in sorted(units.items())],
    })
    rep["course"]["time_zone"] = clock.label()
    return rep
