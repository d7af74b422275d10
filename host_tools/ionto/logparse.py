"""The unit's log files as rows for the host archive, and the words for their codes.

The files are those of firmware/logstore.py (its docstring has the layout): `sNNNNNN.sum`
(a T_SUMMARY record, then T_END when the session ended), `sNNNNNN.trc` (T_SAMPLES blocks and
T_SEV session events), `events.log` / `events.old` (T_EVENT, T_TEXT). Framing and decoding are
firmware/records.py itself, imported from firmware/ (never copied), so a record the unit can
read is one the host can read, and a torn or bit-flipped record is skipped the same way: it is
counted (Damage) and never misread; the good records around it are kept.

The words for the codes are words.py's (from the firmware's own tables), the one vocabulary
of every command.

    s = parse_session(3, sum_bytes, trc_bytes)   # -> Parsed: .row, .samples, .events, .damage
    evs, dmg = parse_events(events_log_bytes)
"""
from .fw import firmware
# The words for the codes: the tools' one vocabulary, named here too for the parser's callers.
from .words import end_words, event_name, event_words, log_event_words, mamin, state_name  # noqa: F401

R = firmware("records")

# rp2 sets its RTC to 2021-01-01 00:00 UTC at every boot. A record without the RTC-valid flag
# carries that clock, so its time minus this is seconds since boot.
RTC_POWERON_UNIX = R.RTC_POWER_ON

# The sample's state byte is the session state code (session.py); the mV and load fields
# use 0xFFFF for "no reading".
_NO_MV = 0xFFFF


def since_boot(t):
    """A time without the RTC-valid flag -> seconds since boot."""
    return t - RTC_POWERON_UNIX if t >= RTC_POWERON_UNIX else t


def record_time(rtc_valid, t):
    """Archive convention (archive.py): Unix seconds when the RTC was valid, else s since boot."""
    return t if rtc_valid else since_boot(t)


class Damage:
    """What records.scan skipped in one file: bad stretches resynced over and a torn tail."""

    def __init__(self, name, stats):
        self.name = name
        self.bad = stats.bad
        self.skipped = stats.skipped
        self.torn = stats.torn
        self.foreign = 0  # good records that belong to another session (misplaced): skipped

    @property
    def count(self):
        """Damaged records: one per bad stretch, one for a torn tail, one per misplaced record."""
        return self.bad + (1 if self.torn else 0) + self.foreign

    def words(self):
        parts = []
        if self.bad:
            parts.append("%d damaged record%s (%d bytes skipped)" % (self.bad, "s" if self.bad != 1 else "",
                                                                   self.skipped))
        if self.torn:
            parts.append("a torn last record (%d bytes)" % self.torn)
        if self.foreign:
            parts.append("%d record%s of another session" % (self.foreign, "s" if self.foreign != 1 else ""))
        return "%s: %s" % (self.name, ", ".join(parts))


def _read(name, data):
    st = R.Stats()
    recs = R.read(data or b"", st)
    return recs, Damage(name, st)


class Parsed:
    """One session as archive rows.

    row: the `sessions` columns this file knows (not serial, sizes or pulled_at);
    samples: [(t_s, set_ua, actual_ua, mv, load_ohm, state, polarity)] sorted by t_s;
    events: [(t_s, code, name, a, b)] in the unit's order; damage: [Damage] with count > 0."""

    def __init__(self, row, samples, events, damage):
        self.row = row
        self.samples = samples
        self.events = events
        self.damage = damage

    @property
    def damaged(self):
        return sum(d.count for d in self.damage)


def parse_session(n, sum_data, trc_data, sum_name=None, trc_name=None):
    """Session n from its summary file's bytes and its trace file's bytes (either may be None:
    a trace pruned on the unit, a summary lost) -> Parsed."""
    S = firmware("session")
    sum_name = sum_name or "s%06d.sum" % n
    trc_name = trc_name or "s%06d.trc" % n
    srecs, sdmg = _read(sum_name, sum_data)
    trecs, tdmg = _read(trc_name, trc_data)
    summary = end = None
    for r in srecs:
        if r.get("session") != n:
            sdmg.foreign += 1
        elif r["type"] == "summary" and summary is None:
            summary = r
        elif r["type"] == "end":
            end = r  # the last one counts
    by_t = {}
    events = []
    dose = treat = None
    for r in trecs:
        if r.get("session") != n:
            tdmg.foreign += 1
            continue
        if r["type"] == "samples":
            for i, (set_ua, act, mv, load, state, pol) in enumerate(r["samples"]):
                by_t[r["t0"] + i] = (r["t0"] + i, set_ua, act, None if mv == _NO_MV else mv,
                                     None if load < 0 else load, state, pol)
            dose, treat = r["dose_uas"], r["treat_s"]
        elif r["type"] == "sev":
            code = r["code"]
            events.append((r["sec"], code, event_name(code), r["a"], r["b"]))
    samples = [by_t[t] for t in sorted(by_t)]
    row = {"session": n}
    if summary is not None:
        rtc = 1 if summary["rtc_valid"] else 0
        row.update(boot=summary["boot"], seq=summary["seq"], rtc_valid=rtc,
                   start_t=record_time(rtc, summary["time"]), firmware=summary["version"],
                   preset_idx=summary["preset_idx"], preset_name=summary["preset"],
                   target_ua=summary["target_ua"], ceiling_ua=summary["ceiling_ua"],
                   duration_s=summary["duration_s"], slew_up_ua_s=summary["slew_up_ua_s"],
                   slew_down_ua_s=summary["slew_down_ua_s"], reverse=summary["reverse"],
                   polarity=summary["polarity"], area_cm2=summary["area_cm2"], gate_hz=summary["gate_hz"],
                   gate_duty_pct=summary["gate_duty_pct"], dose_cap_uas=summary["dose_cap_uas"],
                   time_source=summary["time_source"])
    if end is not None:
        row.update(end_reason=end["reason"], end_name=end_words(end["reason"]), dose_uas=end["dose_uas"],
                   treat_s=end["treat_s"], lost=end["lost"])
    else:
        row.update(end_reason=None, end_name=None, dose_uas=dose, treat_s=treat, lost=None)
    row.update(n_samples=len(samples), max_actual_ua=max((s[2] for s in samples), default=None),
               pauses=sum(1 for e in events if e[1] == S.EV_PAUSE),
               faults=sum(1 for e in events if e[1] == S.EV_FAULT),
               complete=1 if (summary is not None and end is not None) else 0)
    damage = [d for d in (sdmg, tdmg) if d.count]
    row["damaged"] = sum(d.count for d in damage)
    return Parsed(row, samples, events, damage)


def parse_events(data, name="events.log"):
    """The event log's bytes -> ([(seq, boot, rtc_valid, t, code, name, a, b, text)], Damage).
    t follows the archive convention (record_time)."""
    LS = firmware("logstore")
    recs, dmg = _read(name, data)
    out = []
    for r in recs:
        if r["type"] not in ("event", "text"):
            dmg.foreign += 1
            continue
        code = r["code"]
        nm = LS.LOG_NAMES[code] if 0 <= code < len(LS.LOG_NAMES) else "code%d" % code
        rtc = 1 if r["rtc_valid"] else 0
        out.append((r["seq"], r["boot"], rtc, record_time(rtc, r["time"]), code, nm, r.get("a"), r.get("b"),
                    r.get("text")))
    return out, dmg

