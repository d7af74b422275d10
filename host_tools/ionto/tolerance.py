"""What each session tells about the patient's tolerance, and the next session's target.

Per session: the highest current reached, the highest HELD (at or above it for `hold_s`
consecutive seconds in TREAT, from the 1 s samples), UP/DOWN presses (target changes in the
session events), pauses, LIMITED periods and faults.

The next target is ADVICE for the nurse, shown in the report; nothing here talks to a unit.
It starts from the last session's held current (rounded down to the unit's 0.5 mA step) and:
- a blister or burn recorded since: one step lower, and ask the dermatologist first;
- LIMITED in the last session: keep the target (the unit could not reach it; raising it
  changes nothing) and see the soft-water advice;
- DOWN pressed: stay at what the patient tolerated after lowering it;
- a pause, a fault, redness or dryness, or a session that did not end on time or dose: stay;
- otherwise (uneventful): one step up (the plan's step, default 1.0 mA);
never above the preset's ceiling recorded with the session.
"""
from .fw import firmware
from .words import ma, ma_value

UNIT_STEP_UA = 500
NORMAL_ENDS = ("time complete", "dose reached")


def held_ua(samples, hold_s, spans=()):
    """The highest current met or exceeded for hold_s consecutive seconds at the plateau (TREAT,
    or held by LIMITED)."""
    from .dryness import at_plateau

    best = None
    run = []
    prev = None
    for s in samples:
        ok = at_plateau(s, spans)
        if not ok or (prev is not None and s[0] != prev + 1):
            run = []
        prev = s[0]
        if not ok:
            continue
        run.append(s[2] or 0)
        if len(run) >= hold_s:
            m = min(run[-hold_s:])
            best = m if best is None or m > best else best
    return best


def session_figures(db, row, hold_s):
    S = firmware("session")
    ev = db.execute("SELECT t_s, code, a, b FROM session_events WHERE serial = ? AND session = ? ORDER BY rowid",
                    (row["serial"], row["session"])).fetchall()
    ups = sum(1 for e in ev if e["code"] == S.EV_ADJUST and (e["b"] or 0) > (e["a"] or 0))
    downs = sum(1 for e in ev if e["code"] == S.EV_ADJUST and (e["b"] or 0) < (e["a"] or 0))
    limited = [e["a"] for e in ev if e["code"] == S.EV_LIMITED]
    samples = [tuple(s) for s in db.execute(
        "SELECT t_s, set_ua, actual_ua, mv, load_ohm, state, polarity FROM samples WHERE serial = ? AND session = ? "
        "ORDER BY t_s", (row["serial"], row["session"]))]
    from .dryness import limited_spans

    spans = limited_spans([(e["t_s"], e["code"], e["a"], e["b"]) for e in ev])
    h = held_ua(samples, hold_s, spans)
    return samples, spans, {"held_ma": None if h is None else round(h / 1000.0, 2), "ups": ups, "downs": downs,
                     "limited": len(limited), "limited_at_ma": round(min(limited) / 1000.0, 2) if limited else None}


def _floor_step(ua):
    return (int(ua) // UNIT_STEP_UA) * UNIT_STEP_UA


def next_target(last, reactions_since, step_ma):
    """last: the last session's report entry (progress + tolerance figures); reactions_since:
    skin reactions recorded at visits on or after its date -> {"target_ma", "why", "basis"}."""
    if last is None:
        return {"target_ma": None, "why": "no session yet: start at the preset's target", "basis": None}
    ceiling = int(round((last.get("ceiling_ma") or 0) * 1000)) or None
    held = last.get("held_ma") if last.get("held_ma") is not None else last.get("reached_ma")
    target = int(round((last.get("target_ma") or 0) * 1000))
    if held is None:
        return {"target_ma": last.get("target_ma"), "why": "the last session has no current samples: keep its "
                "target", "basis": last["session"]}
    base = _floor_step(round(held * 1000))
    step = int(round(step_ma * 1000))
    why = []
    serious = [r for r in reactions_since if r in ("blister", "burn")]
    mild = [r for r in reactions_since if r in ("redness", "dryness")]
    if serious:
        sug = max(base - step, 0)
        why.append("%s recorded after the last session: one step lower, and ask the dermatologist before "
                   "treating" % " and ".join(serious))
    elif last.get("limited"):
        sug = target
        why.append("the last session was LIMITED to %s of %s: the unit could not reach the target, raising it "
                   "changes nothing (see the soft-water advice)" % (ma_value(last.get("limited_at_ma") or held, unit=False),
                                                                    ma(target)))
    elif last.get("downs"):
        sug = base
        why.append("DOWN was pressed %d time%s last session: stay at the %s the patient held"
                   % (last["downs"], "" if last["downs"] == 1 else "s", ma(base)))
    else:
        events = []
        if last.get("pauses"):
            events.append("%d pause%s" % (last["pauses"], "" if last["pauses"] == 1 else "s"))
        if last.get("faults"):
            events.append("a fault")
        if last.get("end") not in NORMAL_ENDS:
            events.append("it ended: %s" % last.get("end"))
        if mild:
            events.append("%s recorded" % " and ".join(mild))
        if events:
            sug = base
            why.append("the last session was not uneventful (%s): stay at the %s held" % ("; ".join(events), ma(base)))
        else:
            sug = base + step
            why.append("the last session was uneventful (held %s; no DOWN, pause, limit, fault or skin "
                       "reaction): one step of %s up" % (ma(base), ma(step)))
    if ceiling is not None and sug > ceiling:
        sug = ceiling
        why.append("capped at the preset's ceiling of %s" % ma(ceiling))
    return {"target_ma": round(sug / 1000.0, 1), "why": "; ".join(why), "basis": last["session"]}
