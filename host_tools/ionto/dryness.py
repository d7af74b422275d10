"""An objective dryness trend from the load the unit logs: one skin-resistance figure per
session, comparable from session to session, and its trend over the course.

Why it works: sweat is a salty conductor; skin that sweats less conducts less, so the
resistance between the electrodes at a given current rises as the treatment takes effect.

Method (per session, per site and per polarity):
- the unit logs, once a second, the electrode voltage and the measured current; the load is
  V / I (its `load_ohm`);
- the reference point is the moment the ramp reached the target (the first second in TREAT),
  or, when the target was out of reach, the moment the unit held the ramp at the highest
  reachable current (LIMITED); for each polarity separately (after a reversal the other electrode is the anode, and the
  skin has been wet for half a session: the two halves are never mixed);
- the figure is the MEDIAN load over a fixed window after that point (default 60 to 120 s,
  the course's plan can change it), using seconds in TREAT with at least 1 mA flowing (below
  that the voltage and current readings are too coarse); the median current in the window is
  kept beside it;
- a window cut short by a pause, a reversal or the end of the session uses what there is
  (marked "partial"; fewer than 3 seconds: no figure).

Limits (shown with the trend):
- the load includes the water and the electrodes, not only the skin: the same trays, water
  source and fill level keep it comparable; a change of water (hardness, temperature) moves it;
- skin resistance depends on current (it falls at higher current density): figures measured at
  currents more than 25 % apart from the course's median are marked "other current" and are
  weaker evidence;
- hydration: skin resistance falls for minutes after immersion; the fixed window makes
  sessions comparable, not the figure absolute;
- 1 s samples, the unit's own calibration; a trend over several sessions means more than any
  one figure, and it is evidence beside the patient's HDSS, never instead of it.
"""
import statistics

from .fw import firmware

MIN_UA = 1000
MIN_SAMPLES = 3
CURRENT_SPREAD = 0.25  # +-25 % of the course median: comparable current
CHANGE = 0.15  # +-15 % between the first and the last figures: a clear change


def limited_spans(events):
    """Session events (t_s, code, a, b) -> [(from_s, to_s)] while LIMITED (to: None = to the end)."""
    S = firmware("session")
    out = []
    for t, code, _a, _b in events:
        if code == S.EV_LIMITED:
            out.append([t, None])
        elif code == S.EV_LIMIT_END and out and out[-1][1] is None:
            out[-1][1] = t
    return [tuple(x) for x in out]


def at_plateau(s, spans):
    """A sample at the session's plateau: TREAT, or ramping but held by LIMITED."""
    S = firmware("session")
    if s[5] == S.TREAT:
        return True
    if s[5] in (S.RAMP_UP, S.REV_UP):
        return any(a <= s[0] and (b is None or s[0] < b) for a, b in spans)
    return False


def runs(samples, spans=()):
    """Contiguous seconds at the plateau -> [(polarity, [sample, ...])]; samples are tuples
    (t_s, set_ua, actual_ua, mv, load_ohm, state, polarity) sorted by t_s."""
    out = []
    cur = None
    prev_t = None
    for s in samples:
        ok = at_plateau(s, spans)
        if ok and cur is not None and prev_t is not None and s[0] == prev_t + 1 and s[6] == cur[0]:
            cur[1].append(s)
        elif ok:
            cur = (s[6], [s])
            out.append(cur)
        else:
            cur = None
        prev_t = s[0]
    return out


def figures(samples, after_s=60, len_s=60, spans=()):
    """One session -> {polarity: {"kohm", "ma", "n", "partial", "t_from", "t_to"}}."""
    out = {}
    for pol, run in runs(samples, spans):
        if pol in out:
            continue  # the first time at target in this polarity only
        t0 = run[0][0] + after_s
        t1 = t0 + len_s
        win = [s for s in run if t0 <= s[0] < t1 and (s[2] or 0) >= MIN_UA and s[4] is not None and s[4] > 0]
        if len(win) < MIN_SAMPLES:
            continue
        out[pol] = {"kohm": round(statistics.median(s[4] for s in win) / 1000.0, 2),
                    "ma": round(statistics.median(s[2] for s in win) / 1000.0, 2), "n": len(win),
                    "partial": run[-1][0] < t1 - 1, "t_from": win[0][0], "t_to": win[-1][0]}
    return out


def trend(points):
    """points: [{"day", "kohm", "ma", ...}] of one series (one site, one polarity), in course
    order -> {"verdict", "change_pct", "per_week_pct", "words"}; marks each point's
    "comparable"."""
    if not points:
        return {"verdict": "no data", "change_pct": None, "per_week_pct": None, "words": "no figure yet"}
    med_ma = statistics.median(p["ma"] for p in points)
    for p in points:
        p["comparable"] = abs(p["ma"] - med_ma) <= CURRENT_SPREAD * med_ma
    use = [p for p in points if p["comparable"]]
    if len(use) < 3:
        return {"verdict": "too few sessions", "change_pct": None, "per_week_pct": None,
                "words": "%d comparable session%s: a trend needs 3" % (len(use), "" if len(use) == 1 else "s")}
    first = statistics.mean(p["kohm"] for p in use[:2])
    last = statistics.mean(p["kohm"] for p in use[-2:])
    change = (last - first) / first
    xs = [p["day"] for p in use]
    ys = [p["kohm"] for p in use]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    per_week = 7 * slope / first * 100 if first else None
    if change >= CHANGE and slope > 0:
        verdict, words = "rising", "rising: the skin conducts less than at the start, evidence that sweating is reduced"
    elif change <= -CHANGE and slope < 0:
        verdict, words = "falling", "falling: the skin conducts more than at the start (more sweat, or a change of water)"
    else:
        verdict, words = "no clear change", "no clear change (within %d %% of the start)" % int(CHANGE * 100)
    return {"verdict": verdict, "change_pct": round(change * 100, 1),
            "per_week_pct": None if per_week is None else round(per_week, 1), "words": words}


METHOD = ("Skin-resistance figure: the median of the unit's 1 s load readings (electrode voltage / current) "
          "from %d s to %d s after the ramp first reached the target, per polarity, in seconds with at least "
          "1 mA flowing. It includes the water and electrodes; compare sessions with the same trays and water. "
          "Skin resistance depends on the current: figures at a current more than 25 %% from the course's median "
          "are marked and left out of the trend. Sweat conducts, so a rising figure is evidence that sweating is "
          "reduced; it stands beside the patient's HDSS, not instead of it.")
