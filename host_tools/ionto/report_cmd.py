"""`ionto report LABEL [--format text|json|csv] [--html FILE] [--pdf FILE] [--json FILE]`: a
course's adherence and progress, and the report for the patient file.

Adherence: each scheduled day (1, 2, 4, 7, 10, 15, 22) done, late (and by how many days),
missed or still due; visits outside the schedule (extra, or maintenance after day 22); sessions
whose date is unknown (the unit's clock was not set). Progress per session: current reached
against the target, dose (mA.min), treatment time, pauses, faults (by name) and why it ended,
all from the archive (`ionto logs pull` fills it, `ionto course link` ties sessions to a course).
Beyond the text: visits (HDSS, reactions), the skin-resistance trend, tolerance and the next
target (advice only, never sent to a unit), response flags and the maintenance plan
(outcome.py). --html writes one self-contained page (plots embedded, nothing fetched), --pdf the
same sections as a PDF, --json the same content machine-readable. Dates and times are the
clinic's (`ionto course tz`). Label and operator codes only: no names.
"""
import csv
import io
import json
import os

from . import archive, course, outfile
from .archive import table
from .errors import EXIT_USAGE, IontoError
from .words import ma_value

CSV_COLUMNS = ("course", "day", "week", "scheduled", "status", "late_days", "session", "date", "time", "preset",
               "target_ma", "reached_ma", "dose_mamin", "treat_min", "pauses", "faults", "fault_names", "end",
               "complete", "damaged")


def add_arguments(p):
    p.add_argument("label", metavar="LABEL", help="the course's clinic code")
    p.add_argument("--format", default="text", choices=("text", "json", "csv"))
    p.add_argument("--today", metavar="DATE", help="judge missed/due as of this date (default: today)")
    p.add_argument("--html", metavar="FILE", help="write the report as one self-contained HTML page")
    p.add_argument("--pdf", metavar="FILE", help="write the report as a PDF")
    p.add_argument("--json", metavar="FILE", help="write the same content as JSON ('-': to stdout)")
    p.add_argument("--archive", metavar="PATH", help="the archive (default: $IONTO_ARCHIVE, else "
                   "~/.local/share/ionto/archive.sqlite)")


def run(args):
    today = course.parse_date(args.today, "--today date") if args.today else None
    outs = [(k, getattr(args, k, None)) for k in ("html", "pdf", "json") if getattr(args, k, None)]
    for _k, path in outs:
        if path != "-" and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise IontoError(EXIT_USAGE, "cannot write %s: its folder does not exist" % path)
    db = archive.connect(args.archive)
    try:
        rep = course.report(db, args.label, today)
    finally:
        db.close()
    if outs:
        for kind, path in outs:
            if kind == "json" and path == "-":
                print(json.dumps(rep, indent=1, sort_keys=True))
                continue
            _write(kind, path, rep)
            print("wrote %s (%s report of course %s)" % (path, kind.upper(), args.label))
        return 0
    if args.format == "json":
        print(json.dumps(rep, indent=1, sort_keys=True))
    elif args.format == "csv":
        print(csv_text(rep), end="")
    else:
        print(text(rep))
    return 0


def _write(kind, path, rep):
    from . import report_render

    if kind == "pdf":
        outfile.write(path, lambda tmp: report_render.write_pdf(rep, tmp))
    else:
        text_ = report_render.html_page(rep) if kind == "html" else json.dumps(rep, indent=1, sort_keys=True)
        outfile.write_text(path, text_, encoding="utf-8")


def rows(rep):
    """CSV rows: one per (scheduled day or outside visit, session); a missed day has no session."""
    by_ref = {p["session"]: p for p in rep["sessions"]}
    label = rep["course"]["label"]
    out = []

    def emit(base, refs):
        for r in refs or [None]:
            d = dict(base, course=label)
            if r is not None:
                p = by_ref[r]
                d.update({k: p[k] for k in CSV_COLUMNS if k in p})
                d["fault_names"] = " ".join(p["fault_names"])
            out.append(d)

    a = rep["adherence"]
    for e in a["days"]:
        emit({"day": e["day"], "week": e["week"], "scheduled": e["date"], "status": e["status"],
              "late_days": e["late_days"]}, e["sessions"])
    for o in a["outside"]:
        emit({"status": o["kind"]}, o["sessions"])
    for r in a["undated"]:
        emit({"status": "date unknown"}, [r])
    return out


def csv_text(rep):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows(rep):
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def text(rep):
    c = rep["course"]
    a = rep["adherence"]
    s = a["summary"]
    out = ["course %s: %s, started %s" % (c["label"], c["site"], c["start_date"])]
    if c["contraindications"]:
        out.append("enrolled despite %s (reason: %s)" % (", ".join(c["contraindications"]), c["override_reason"]))
    out.append("adherence: %d of %d scheduled days done on the day, %d late, %d missed, %d still due; "
               "%d extra visit%s, %d maintenance%s"
               % (s["done"], s["scheduled"], s["late"], s["missed"], s["due"], s["extra"],
                  "" if s["extra"] == 1 else "s", s["maintenance"],
                  "; %d session%s with no date (unit clock not set: `ionto clock sync`)"
                  % (s["undated"], "" if s["undated"] == 1 else "s") if s["undated"] else ""))
    out.append("")
    out.append(table(course.days_rows(a), course.DAYS_HEADERS))
    out.append("")
    if not rep["sessions"]:
        out.append("no sessions linked: `ionto course link %s SERIAL:SESSION ...`" % c["label"])
        return "\n".join(out)
    prow = []
    for p in rep["sessions"]:
        faults = "%s%s" % (_n(p["faults"]), " (%s)" % ", ".join(p["fault_names"]) if p["fault_names"] else "")
        prow.append((p["session"], p["date"] or "?", p["preset"] or "", _f(p["target_ma"]), _f(p["reached_ma"]),
                     _f(p["dose_mamin"]), _f(p["treat_min"]), _n(p["pauses"]), faults,
                     p["end"] + ("" if p["complete"] else " (incomplete)") + (" (damaged)" if p["damaged"] else "")))
    out.append(table(prow, ("session", "date", "preset", "target mA", "reached mA", "dose mA.min", "min", "pauses",
                            "faults", "end")))
    return "\n".join(out + progress_text(rep))


def progress_text(rep):
    """Visits, trend, advice, flags and maintenance as text lines (the HTML/PDF show the same)."""
    from .report_render import maintenance_rows, visit_rows

    out = [""]
    if rep.get("visits"):
        head, rows = visit_rows(rep)
        out.append(table([r[:7] for r in rows], head[:7]))
    else:
        out.append("no visits recorded: `ionto course visit %s --day N ...`" % rep["course"]["label"])
    for s in rep.get("dryness", {}).get("series", []):
        t = s["trend"]
        out.append("skin resistance, %s, %s: %s%s" % (s["site"], s["polarity"], t["words"],
                                                      " (%+.0f %%)" % t["change_pct"] if t["change_pct"] is not None
                                                      else ""))
    n = rep.get("next_target")
    if n:
        out.append("next target (advice, never sent to a unit): %s: %s"
                   % (ma_value(n["target_ma"], none="none"), n["why"]))
    for f in rep.get("flags", []):
        out.append("FLAG %s: %s. %s" % (f["severity"], f["what"], f["advice"]))
    head, rows = maintenance_rows(rep)
    if head:
        out.append("maintenance every %d days: %s" % (rep["maintenance"]["every_days"],
                                                      "; ".join("%s %s" % (r[0], r[2]) for r in rows)))
    return out


def _f(v):
    return "" if v is None else "%.1f" % v


def _n(v):
    return "" if v is None else str(v)

