"""Response flags: what the clinic should look at, each with what to do. Rules as data below.

- no HDSS improvement after N sessions (the plan's `no_response_after`, default 3 = the first
  week's sessions): a site whose latest score, recorded after at least N sessions, is not at
  least one point below its first (baseline) score;
- a skin reaction recorded at a visit (blister or burn: stop and refer);
- LIMITED in REPEATED sessions (2 or more): the water conducts poorly (soft water);
- pauses in REPEATED sessions (2 or more): contact is being lost;
- a contraindication answered "yes" at a visit since enrolment.
"""
REPEATED = 2

SOFT_WATER = ("The target was out of reach in %d sessions: the water conducts poorly (soft water) or the skin is "
              "very dry. As the device makers' guides suggest: add a teaspoon of baking soda (sodium "
              "bicarbonate) or a little table salt to each tray, or use mineral water; check that the electrodes "
              "are covered and the skin touches the water fully.")
PAUSES = ("Skin contact was lost in %d sessions: check the water level covers the treated skin, that the patient "
          "can keep still comfortably (chair, tray height) and jewellery is off; frequent lifting can also mean "
          "the current is uncomfortable.")
REACTION = {
    "redness": "Redness is common and usually fades within hours; a moisturiser after the session helps.",
    "dryness": "Dry skin is common: moisturise after sessions; cover small cracks with petroleum jelly before.",
    "blister": "A blister: do not treat that area until it has healed; lower the current; tell the dermatologist.",
    "burn": "A burn: stop the course and refer to the dermatologist before any further session.",
}


def no_response(visits, session_dates, sites, after):
    out = []
    scored = [v for v in visits if v["hdss"]]
    if len(scored) < 2:
        return out
    for site in sites:
        series = [(v["date"], v["hdss"].get(site)) for v in scored if v["hdss"].get(site) is not None]
        if len(series) < 2:
            continue
        base_date, base = series[0]
        last_date, last = series[-1]
        n = sum(1 for d in session_dates if d < last_date)
        if n >= after and last > base - 1:
            out.append({"kind": "no_response", "severity": "review", "site": site,
                        "what": "no HDSS improvement in %s after %d sessions (%d on %s, %d on %s)"
                                % (site, n, base, base_date, last, last_date),
                        "advice": "Review with the dermatologist: check the technique (current held, water, contact, "
                                  "session length) and consider the next step of the treatment plan."})
    return out


def build(visits, sessions, session_dates, sites, plan):
    """visits: visits.course_visits; sessions: report entries with tolerance figures."""
    flags = no_response(visits, session_dates, sites, int(plan.get("no_response_after") or 3))
    for v in visits:
        for r in v["reactions"]:
            if r == "none":
                continue
            flags.append({"kind": "skin_reaction", "severity": "stop" if r in ("blister", "burn") else "note",
                          "what": "%s recorded on %s (day %s)" % (r, v["date"], v["day"]), "advice": REACTION[r]})
        if v.get("new_contraindications"):
            flags.append({"kind": "contraindication", "severity": "stop",
                          "what": "contraindication at the visit of %s: %s (treated on: %s)"
                                  % (v["date"], ", ".join(v["new_contraindications"]), v.get("override_reason")),
                          "advice": "Only on the dermatologist's decision, recorded with the visit."})
    lim = [s for s in sessions if s.get("limited")]
    if len(lim) >= REPEATED:
        flags.append({"kind": "repeated_limited", "severity": "review",
                      "what": "LIMITED in %d sessions (%s)" % (len(lim), ", ".join(s["date"] or "?" for s in lim)),
                      "advice": SOFT_WATER % len(lim)})
    pz = [s for s in sessions if s.get("pauses")]
    if len(pz) >= REPEATED:
        flags.append({"kind": "repeated_pauses", "severity": "review",
                      "what": "pauses in %d sessions (%d in all)" % (len(pz), sum(s["pauses"] for s in pz)),
                      "advice": PAUSES % len(pz)})
    return flags
