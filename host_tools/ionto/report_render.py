"""The course report as a page for the patient file: self-contained HTML (plots embedded as
PNG data, styles inline, no script and no link to anything outside the file) and a PDF with
the same sections. Input: outcome.build's dict (the same content as `--json`).
"""
import base64
import datetime as _dt
import html
import io
import re
import textwrap

from .words import ma_value

SEVERITY_WORDS = {"stop": "STOP", "review": "review", "note": "note"}


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    return plt, mdates


def _d(s):
    return _dt.date.fromisoformat(s)


def progress_figure(rep):
    return _png(progress_fig(rep))


def current_figure(rep):
    return _png(current_fig(rep))


def progress_fig(rep):
    """HDSS per site (patient-reported) above the skin-resistance figure per session."""
    plt, mdates = _mpl()
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.6), sharex=True, height_ratios=(1, 1.3))
    markers = "osD^v"
    for i, site in enumerate(rep["hdss_sites"]):
        pts = [(_d(v["date"]), v["hdss"][site]) for v in rep["visits"] if site in v["hdss"]]
        if pts:
            a1.plot([p[0] for p in pts], [p[1] for p in pts], marker=markers[i % 5], lw=1.5, label="HDSS %s" % site)
    a1.set_ylim(0.5, 4.5)
    a1.set_yticks([1, 2, 3, 4])
    a1.set_ylabel("HDSS\n(1 best, 4 worst)")
    a1.grid(alpha=0.3)
    a1.set_title("Course %s: patient-reported HDSS and measured skin resistance" % rep["course"]["label"])
    if a1.lines:
        a1.legend(loc="upper right", fontsize=8)
    else:
        a1.text(0.5, 0.5, "no visit recorded yet", transform=a1.transAxes, ha="center", color="0.4")
    for i, s in enumerate(rep["dryness"]["series"]):
        pts = s["points"]
        xs = [_d(p["date"]) for p in pts]
        line, = a2.plot(xs, [p["kohm"] for p in pts], lw=1.2, marker=markers[i % 5],
                        label="%s, %s: %s" % (s["site"], s["polarity"], s["trend"]["verdict"]))
        odd = [(x, p["kohm"]) for x, p in zip(xs, pts) if not p.get("comparable", True)]
        if odd:
            a2.plot([o[0] for o in odd], [o[1] for o in odd], ls="none", marker="o", mfc="white",
                    mec=line.get_color(), ms=9, label="at another current (left out of the trend)")
    a2.set_ylabel("skin resistance, kOhm\n(load at fixed point)")
    a2.grid(alpha=0.3)
    if a2.lines:
        a2.legend(loc="upper left", fontsize=8)
        lo, hi = a2.get_ylim()
        a2.set_ylim(0, hi * 1.15)
    else:
        a2.text(0.5, 0.5, "no session figure yet", transform=a2.transAxes, ha="center", color="0.4")
    return _dated(fig, a2)


def current_fig(rep):
    """Per session: target, highest current held, highest reached, the preset ceiling; LIMITED
    and pauses marked; the dose beside it."""
    plt, mdates = _mpl()
    ss = [s for s in rep["sessions"] if s["date"]]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.2), sharex=True, height_ratios=(1.6, 1))
    if not ss:
        a1.text(0.5, 0.5, "no dated session yet", transform=a1.transAxes, ha="center", color="0.4")
        fig.tight_layout()
        return fig
    xs = [_d(s["date"]) for s in ss]
    a1.plot(xs, [s["ceiling_ma"] for s in ss], color="0.5", ls="--", lw=1, label="preset ceiling")
    a1.plot(xs, [s["target_ma"] for s in ss], color="0.3", marker="_", ms=14, ls="none", label="target at start")
    a1.plot(xs, [s["reached_ma"] for s in ss], color="tab:red", marker="^", ls="none", label="highest reached")
    a1.plot(xs, [s["held_ma"] for s in ss], color="tab:blue", marker="o", lw=1.2,
            label="highest held (%d s)" % rep["plan"]["hold_s"])
    lim = [(x, s) for x, s in zip(xs, ss) if s.get("limited")]
    if lim:
        a1.plot([x for x, _s in lim], [s["held_ma"] or 0 for _x, s in lim], ls="none", marker="s", mfc="none",
                mec="tab:orange", ms=12, mew=2, label="LIMITED (target out of reach)")
    pz = [(x, s) for x, s in zip(xs, ss) if s.get("pauses")]
    for x, s in pz:
        a1.annotate("%d pause%s" % (s["pauses"], "" if s["pauses"] == 1 else "s"), (x, s["held_ma"] or 0),
                    textcoords="offset points", xytext=(0, -18), ha="center", fontsize=7, color="tab:purple")
    a1.set_ylabel("current, mA")
    a1.set_ylim(0, max([s["ceiling_ma"] or 0 for s in ss] + [1]) * 1.2)
    a1.grid(alpha=0.3)
    a1.legend(loc="lower right", fontsize=7, ncol=2)
    a1.set_title("Current per session (minutes of treatment and dose below)")
    a2.bar(xs, [s["dose_mamin"] or 0 for s in ss], width=0.8, color="tab:green", alpha=0.7)
    for x, s in zip(xs, ss):
        if s["treat_min"] is not None:
            a2.annotate("%.1f min" % s["treat_min"], (x, s["dose_mamin"] or 0), textcoords="offset points",
                        xytext=(0, 2), ha="center", fontsize=7)
    a2.set_ylabel("dose, mA.min")
    a2.set_ylim(0, max([s["dose_mamin"] or 0 for s in ss] + [1]) * 1.35)
    a2.grid(alpha=0.3)
    return _dated(fig, a2)


def _dated(fig, ax):
    """The figure laid out with clinic dates along ax's x axis."""
    _plt, mdates = _mpl()
    ax.set_xlabel("date (clinic time)")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def _png(fig):
    plt, _m = _mpl()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


# --- shared words ----------------------------------------------------------------------------
def _f(v, fmt="%.1f"):
    return "" if v is None else fmt % v


def session_rows(rep):
    head = ("date", "time", "unit:session", "firmware", "preset", "target mA", "held mA", "reached mA", "dose mA.min",
            "minutes", "UP/DOWN", "pauses", "LIMITED", "faults", "skin kOhm", "ended")
    rows = []
    for s in rep["sessions"]:
        sk = "; ".join("%s %.2f%s" % (k, v["kohm"], " (partial)" if v.get("partial") else "")
                       for k, v in s["skin_kohm"].items())
        faults = str(s["faults"] or 0) + (" (%s)" % ", ".join(s["fault_names"]) if s["fault_names"] else "")
        rows.append((s["date"] or "unknown", s["time"] or "", s["session"], s["firmware"] or "", s["preset"] or "",
                     _f(s["target_ma"]), _f(s["held_ma"]), _f(s["reached_ma"]), _f(s["dose_mamin"]),
                     _f(s["treat_min"]), "%d/%d" % (s["ups"], s["downs"]), str(s["pauses"] or 0),
                     ("%d (at %s)" % (s["limited"], ma_value(s["limited_at_ma"]))) if s["limited"] else "0", faults, sk,
                     s["end"] + ("" if s["complete"] else " (incomplete)")))
    return head, rows


def visit_rows(rep):
    head = ("day", "date", "HDSS", "skin reactions", "checklist", "operator", "recorded", "notes")
    rows = [(str(v["day"]), v["date"], ", ".join("%s %d" % kv for kv in sorted(v["hdss"].items())),
             ", ".join(v["reactions"]), v["checklist"], v["operator"], v["recorded"], v["notes"] or "")
            for v in rep["visits"]]
    return head, rows


def adherence_rows(rep):
    head = ("day", "weekday", "scheduled", "status", "sessions")
    a = rep["adherence"]
    rows = []
    for e in a["days"]:
        st = e["status"] + (" (+%d d, on %s)" % (e["late_days"], e.get("done_on")) if e["status"] == "late" else "")
        rows.append((str(e["day"]), e["weekday"], e["date"], st, " ".join(e["sessions"])))
    for o in a["outside"]:
        rows.append((str(o["day"]), o["weekday"], o["date"], o["kind"], " ".join(o["sessions"])))
    for r in a["undated"]:
        rows.append(("", "", "?", "date unknown (unit clock not set)", r))
    return head, rows


def maintenance_rows(rep):
    m = rep["maintenance"]
    if not m:
        return None, []
    return ("date", "weekday", "status", "session on"), [
        (d["date"], d["weekday"], d["status"], d["session_date"] or "") for d in m["dates"]]


def summary_lines(rep):
    c = rep["course"]
    s = rep["adherence"]["summary"]
    lines = ["Course %s: %s, started %s; clinic time zone %s; report of %s." % (
        c["label"], c["site"], c["start_date"], c["time_zone"], rep["generated"])]
    lines.append("Adherence: %d of %d scheduled days done on the day, %d late, %d missed, %d still due; %d extra, "
                 "%d maintenance session day(s)." % (s["done"], s["scheduled"], s["late"], s["missed"], s["due"],
                                                     s["extra"], s["maintenance"]))
    ans = c.get("checklist") or {}
    lines.append("Contraindication checklist at enrolment: %s%s." % (
        ", ".join("%s=%s" % kv for kv in ans.items()) or "not recorded",
        "; treated despite %s (reason: %s)" % (", ".join(c["contraindications"]), c["override_reason"])
        if c["contraindications"] else ""))
    return lines


# --- HTML ------------------------------------------------------------------------------------
_CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;font-size:13px;color:#111;margin:18px 24px;max-width:1100px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:15px;margin:18px 0 6px;border-bottom:1px solid #999}
table{border-collapse:collapse;margin:4px 0 8px} td,th{border:1px solid #bbb;padding:2px 6px;text-align:left;
vertical-align:top} th{background:#eee} .num{text-align:right} .nw{white-space:nowrap} img{max-width:100%;border:1px solid #ddd}
.flag{padding:4px 8px;margin:4px 0;border-left:5px solid #c80} .flag.stop{border-color:#c00;background:#fee}
.flag.review{background:#fff6e0} .flag.note{border-color:#06c;background:#eef5ff}
.advice{background:#eef8ee;border-left:5px solid #393;padding:6px 10px;font-size:14px} .small{color:#444;font-size:12px}
"""


def _table(head, rows):
    e = html.escape
    out = ["<table><tr>%s</tr>" % "".join("<th>%s</th>" % e(h) for h in head)]
    for r in rows:
        out.append("<tr>%s</tr>" % "".join(
            "<td%s>%s</td>" % (' class="num"' if _isnum(v) else ' class="nw"' if _DATE.match(str(v)) else "",
                               e(str(v))) for v in r))
    out.append("</table>")
    return "\n".join(out)


_DATE = re.compile(r"^\d{4}-\d\d-\d\d( |$)")


def _isnum(v):
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _img(png, alt):
    return '<img alt="%s" src="data:image/png;base64,%s">' % (html.escape(alt), base64.b64encode(png).decode())


def html_page(rep):
    e = html.escape
    c = rep["course"]
    p = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
         "<title>ionto course report %s</title><style>%s</style></head><body>" % (e(c["label"]), _CSS),
         "<h1>Iontophoresis course report: %s</h1>" % e(c["label"])]
    p += ["<p>%s</p>" % e(x) for x in summary_lines(rep)]
    p.append("<h2>Flags</h2>")
    if rep["flags"]:
        for f in rep["flags"]:
            p.append('<div class="flag %s"><b>%s</b>: %s<br><span class="small">%s</span></div>'
                     % (e(f["severity"]), e(SEVERITY_WORDS.get(f["severity"], f["severity"])), e(f["what"]),
                        e(f["advice"])))
    else:
        p.append("<p>none</p>")
    n = rep["next_target"]
    p.append("<h2>Next session's target (advice for the nurse, never sent to a unit)</h2>")
    p.append('<div class="advice"><b>%s</b>: %s</div>' % (
        e(ma_value(n["target_ma"], none="no suggestion")), e(n["why"])))
    p.append("<h2>HDSS and skin resistance over the course</h2>")
    p.append(_img(progress_figure(rep), "HDSS per site and skin resistance per session over the course"))
    for s in rep["dryness"]["series"]:
        t = s["trend"]
        p.append("<p>Skin resistance, %s, %s: <b>%s</b>%s.</p>" % (
            e(s["site"]), e(s["polarity"]), e(t["words"]),
            e(" (%+.0f %% from the first sessions to the last, %+.1f %% a week)" % (t["change_pct"], t["per_week_pct"]))
            if t["change_pct"] is not None else ""))
    p.append('<p class="small">Method and limits: %s</p>' % e(rep["dryness"]["method"]))
    p.append("<h2>Current, dose and tolerance per session</h2>")
    p.append(_img(current_figure(rep), "target, held and reached current and dose per session"))
    p.append(_table(*session_rows(rep)))
    p.append("<h2>Visits</h2>")
    p.append(_table(*visit_rows(rep)) if rep["visits"] else "<p>no visit recorded</p>")
    p.append("<h2>Schedule and adherence</h2>")
    p.append(_table(*adherence_rows(rep)))
    p.append("<h2>Maintenance plan</h2>")
    head, rows = maintenance_rows(rep)
    if head:
        p.append("<p>Every %d days (set by the clinician); a date counts as kept with a session within %d day(s).</p>"
                 % (rep["maintenance"]["every_days"], rep["maintenance"]["tolerance_days"]))
        p.append(_table(head, rows))
    else:
        p.append("<p>No interval set yet (`ionto course plan %s --maintenance-every DAYS`).</p>" % e(c["label"]))
    p.append("<h2>Units and firmware</h2>")
    p.append(_table(("unit serial", "firmware"), [(u["serial"], ", ".join(u["firmware"])) for u in rep["units"]]))
    p.append('<p class="small">Pseudonymous course label and operator codes only; no names. Generated by ionto '
             'from the unit logs in the clinic\'s archive.</p></body></html>')
    return "\n".join(p)


# --- PDF -------------------------------------------------------------------------------------
def _text_page(pdf, title, blocks, plt):
    fig = plt.figure(figsize=(8.27, 11.69))
    y = 0.96
    fig.text(0.06, y, title, fontsize=14, weight="bold")
    y -= 0.035
    for size, txt, color in blocks:
        for para in txt.split("\n"):
            for line in textwrap.wrap(para, int(980 / size)) or [""]:
                if y < 0.04:
                    pdf.savefig(fig)
                    plt.close(fig)
                    fig = plt.figure(figsize=(8.27, 11.69))
                    y = 0.96
                fig.text(0.06, y, line, fontsize=size, color=color, family="DejaVu Sans")
                y -= 0.0165 * size / 9.0
        y -= 0.008
    pdf.savefig(fig)
    plt.close(fig)


def _table_page(pdf, title, head, rows, plt, font=6.5, per_page=34):
    for i in range(0, max(len(rows), 1), per_page):
        chunk = rows[i:i + per_page] or [("",) * len(head)]
        fig = plt.figure(figsize=(11.69, 8.27))
        fig.text(0.04, 0.95, title, fontsize=13, weight="bold")
        ax = fig.add_axes((0.02, 0.03, 0.96, 0.88))
        ax.axis("off")
        h = min(1.0, 0.045 * (len(chunk) + 1))
        t = ax.table(cellText=[list(r) for r in chunk], colLabels=list(head), cellLoc="left",
                     bbox=(0, 1 - h, 1, h))
        t.auto_set_font_size(False)
        t.set_fontsize(font)
        t.auto_set_column_width(list(range(len(head))))
        for (row, _col), cell in t.get_celld().items():
            if row == 0:
                cell.set_facecolor("#eeeeee")
                cell.set_text_props(weight="bold")
        pdf.savefig(fig)
        plt.close(fig)


def write_pdf(rep, path):
    plt, _m = _mpl()
    from matplotlib.backends.backend_pdf import PdfPages

    blocks = [(10, x, "black") for x in summary_lines(rep)]
    blocks.append((12, "Flags", "black"))
    for f in rep["flags"] or []:
        blocks.append((10, "%s: %s" % (SEVERITY_WORDS.get(f["severity"], f["severity"]), f["what"]),
                       "#a00" if f["severity"] == "stop" else "#a60"))
        blocks.append((9, f["advice"], "#333"))
    if not rep["flags"]:
        blocks.append((10, "none", "black"))
    n = rep["next_target"]
    blocks.append((12, "Next session's target (advice for the nurse, never sent to a unit)", "black"))
    blocks.append((10, "%s: %s" % (ma_value(n["target_ma"], none="no suggestion"), n["why"]), "#060"))
    blocks.append((12, "Skin-resistance trend", "black"))
    for s in rep["dryness"]["series"]:
        t = s["trend"]
        blocks.append((10, "%s, %s: %s%s" % (s["site"], s["polarity"], t["words"],
                                              " (%+.0f %%, %+.1f %% a week)" % (t["change_pct"], t["per_week_pct"])
                                              if t["change_pct"] is not None else ""), "black"))
    blocks.append((8, "Method and limits: " + rep["dryness"]["method"], "#333"))
    m = rep["maintenance"]
    blocks.append((12, "Maintenance plan", "black"))
    if m:
        blocks.append((10, "Every %d days (set by the clinician): %s" % (m["every_days"], "; ".join(
            "%s %s %s" % (d["weekday"], d["date"], d["status"]) for d in m["dates"])), "black"))
    else:
        blocks.append((10, "No interval set yet.", "black"))
    blocks.append((12, "Units and firmware", "black"))
    blocks.append((10, "; ".join("%s: %s" % (u["serial"], ", ".join(u["firmware"])) for u in rep["units"]) or "none",
                   "black"))
    blocks.append((8, "Pseudonymous course label and operator codes only; no names.", "#333"))
    with PdfPages(str(path)) as pdf:
        _text_page(pdf, "Iontophoresis course report: %s" % rep["course"]["label"], blocks, plt)
        for make in (progress_fig, current_fig):
            fig = make(rep)
            fig.set_size_inches(11.69, 8.27)
            fig.tight_layout()
            pdf.savefig(fig)
            plt.close(fig)
        _table_page(pdf, "Sessions (clinic time)", *session_rows(rep), plt, font=7.5, per_page=20)
        if rep["visits"]:
            _table_page(pdf, "Visits", *visit_rows(rep), plt, font=8.5, per_page=20)
        _table_page(pdf, "Schedule and adherence", *adherence_rows(rep), plt, font=9, per_page=20)
        d = pdf.infodict()
        d["Title"] = "ionto course report %s" % rep["course"]["label"]
