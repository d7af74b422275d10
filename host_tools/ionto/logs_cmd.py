"""`ionto logs pull | list | show | export | plot`: the unit's session logs into the host's
SQLite archive (archive.py), and out of it as tables, words, CSV/JSON and plots.

pull: incremental and verified. The unit lists /log (hostcmd.ls); a session is fetched only
when its summary or trace size differs from what the archive holds, the event log's records
are added by sequence number. Every file comes over link.read_file (bulk, CRC32 of the whole
transfer) and every record is checked by firmware/records.py (logparse): damaged records are
counted and reported, the good ones archived, and the pull ends with EXIT_DAMAGED (9). The unit
is then told (hostcmd.ack) the highest session that is archived and complete (has its end
record) with every session below it on the unit archived and complete too, so its traces may
be pruned first. A unit mid-treatment is refused before anything is sent (link.enter).

Times: a session's start is Unix time when the unit's RTC had been set by a host, else
"boot N +S s" (seconds since that boot).
"""
import csv
import datetime
import io
import json
import os
import sys

from . import clinictime, words
# The archive side of a pull (which sessions to fetch, how they are stored, what to acknowledge).
from .archive import SESSION_COLUMNS, ack_point, plan, session_files, store_events, store_session  # noqa: F401
from .errors import EXIT_AMBIGUOUS, EXIT_DAMAGED, EXIT_NOT_FOUND, EXIT_UNIT, EXIT_USAGE, IontoError

LOG_DIR = "/log"

SAMPLE_COLUMNS = ("serial", "session", "t_s", "set_ua", "actual_ua", "mv", "load_ohm", "state", "state_name",
                  "polarity")


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    def archive_arg(sp):
        sp.add_argument("--archive", metavar="DB", help="the SQLite archive (default: $IONTO_ARCHIVE, else "
                        "~/.local/share/ionto/archive.sqlite)")

    sp = sub.add_parser("pull", help="copy new and grown logs from the unit into the archive (verified) and "
                        "acknowledge archived sessions to the unit")
    sp.add_argument("--port", help="the unit's serial port (default: $IONTO_PORT, else the only unit found)")
    archive_arg(sp)

    sp = sub.add_parser("list", help="the archived sessions as a table")
    sp.add_argument("--serial", help="only this unit's sessions")
    archive_arg(sp)

    sp = sub.add_parser("show", help="one session: summary, settings and events in words")
    sp.add_argument("session", type=int)
    sp.add_argument("--serial", help="the unit (needed when several units have this session number)")
    archive_arg(sp)

    sp = sub.add_parser("events", help="the unit's event log as archived: boots, configuration changes, faults, "
                        "clock, firmware, host sessions")
    sp.add_argument("--serial", help="only this unit's events")
    sp.add_argument("--last", type=int, metavar="N", help="only the last N events (of each unit)")
    archive_arg(sp)

    sp = sub.add_parser("export", help="sessions with their samples and events as CSV (samples) or JSON")
    sp.add_argument("session", type=int, nargs="?")
    sp.add_argument("--all", action="store_true", help="every archived session (of --serial, if given)")
    sp.add_argument("--format", choices=("csv", "json"), default="csv")
    sp.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    sp.add_argument("--serial", help="the unit")
    archive_arg(sp)

    sp = sub.add_parser("plot", help="a PNG (or PDF, SVG: as FILE's ending says) of set and actual current, "
                        "electrode voltage and load over time")
    sp.add_argument("session", type=int)
    sp.add_argument("-o", "--output", metavar="FILE.png", required=True, help="FILE.png, FILE.pdf, FILE.svg, ...")
    sp.add_argument("--serial", help="the unit")
    archive_arg(sp)


def run(args):
    return {"pull": pull, "list": list_, "show": show, "events": events, "export": export,
            "plot": plot}[args.action](args)


# --- pull ----------------------------------------------------------------------------------
def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ranges(ns):
    """[1, 2, 3, 7] -> "sessions 1-3, 7"."""
    out = []
    for n in sorted(ns):
        if out and out[-1][1] == n - 1:
            out[-1][1] = n
        else:
            out.append([n, n])
    text = ", ".join("%d" % a if a == b else "%d-%d" % (a, b) for a, b in out)
    return ("session " if len(ns) == 1 else "sessions ") + text


def pull(args):
    from . import archive, link, logparse
    from .interrupt import work

    db = archive.connect(args.archive)  # a bad archive is reported before the unit is touched
    archive.need_write(db)
    pulled_at = _now_iso()
    damage = []
    counts = {"new": 0, "updated": 0, "kept": 0, "samples": 0, "events": 0}
    undated = []  # sessions whose start carries no clock time (the unit's RTC was never set)
    acked = None
    with link.Link.open(args.port) as u:
        work.doing("reading the unit's log list")
        work.undone("nothing acknowledged to the unit (its logs are all kept there): pull again")
        u.enter()
        info = u.hostcmd("info")
        serial = info.get("serial")
        if not serial:
            raise IontoError(EXIT_UNIT, "the unit did not give its serial number: update its firmware (`ionto flash`)")
        unit_acked = (info.get("log") or {}).get("acked") or 0
        listing = u.hostcmd("ls", LOG_DIR)
        sess, other = session_files(listing)
        todo = plan(db, serial, sess)
        ev_files = [nm for nm in ("events.old", "events.log") if nm in other]
        total = sum(sess[n]["sum"] + sess[n].get("trc", 0) for n, _s, _t in todo) + sum(other[nm] for nm in ev_files)
        prog = link.Progress(total, "pulling logs")
        base = [0]

        def fetch(name):
            data = u.read_file("%s/%s" % (LOG_DIR, name), progress=lambda k: prog(base[0] + k))
            base[0] += len(data)
            prog(base[0])
            return data

        try:
            db.execute("INSERT OR IGNORE INTO units(serial, firmware, first_seen) VALUES (?, ?, ?)",
                       (serial, info.get("version"), pulled_at))
            for n, _fs, ft in todo:
                work.doing("pulling session %d" % n)
                sname, tname = "s%06d.sum" % n, "s%06d.trc" % n
                sdata = fetch(sname)
                tdata = fetch(tname) if ft else None
                p = logparse.parse_session(n, sdata, tdata)
                damage += p.damage
                what = store_session(db, serial, n, p, len(sdata), None if tdata is None else len(tdata), pulled_at)
                counts[what] += 1
                if what != "kept" and p.row.get("rtc_valid") == 0:
                    undated.append(n)
                if what != "kept":
                    counts["samples"] += len(p.samples) if tdata is not None else 0
                else:
                    print("warning: session %d on the unit is not the archived session %d (was the unit's log "
                          "reset?): the archived one is kept" % (n, n))
                db.commit()
                done = counts["new"] + counts["updated"] + counts["kept"]
                work.finished[:] = ["%d of %d session%s archived" % (done, len(todo), "" if len(todo) == 1 else "s")]
            work.doing("pulling the event log")
            # The event log: events.log always (each pull adds at least the unit's boot record);
            # events.old only if records may be missing between it and what is archived.
            last = db.execute("SELECT MAX(seq) FROM events WHERE serial = ?", (serial,)).fetchone()[0]
            rows = []
            if "events.log" in ev_files:
                rows, d = logparse.parse_events(fetch("events.log"), "events.log")
                if d.count:
                    damage.append(d)
            if "events.old" in ev_files and (last is None or not rows or rows[0][0] > last):
                old_rows, d = logparse.parse_events(fetch("events.old"), "events.old")
                if d.count:
                    damage.append(d)
                rows = old_rows + rows
            counts["events"] = store_events(db, serial, rows)
            db.execute("UPDATE units SET firmware = ?, last_pull = ? WHERE serial = ?",
                       (info.get("version"), pulled_at, serial))
            db.commit()
        finally:
            prog.close()
        ack = ack_point(db, serial, sess)
        if ack > unit_acked:
            work.doing("acknowledging sessions up to %d to the unit" % ack)
            work.undone("the acknowledgement may not have reached the unit (harmless: the next pull repeats it)")
            got = u.hostcmd("ack", ack)
            acked = got.get("acked") if isinstance(got, dict) else None
            work.undone(None)
            if acked != ack:
                raise IontoError(EXIT_UNIT, "the unit did not record the acknowledgement of sessions up to %d "
                                 "(it says %r): pull again" % (ack, acked))
    nd = sum(d.count for d in damage)
    print("unit %s (firmware %s): %d session%s new, %d updated, %d samples, %d event%s, %d damaged record%s"
          % (serial, info.get("version", "?"), counts["new"], "" if counts["new"] == 1 else "s", counts["updated"],
             counts["samples"], counts["events"], "" if counts["events"] == 1 else "s", nd, "" if nd == 1 else "s"))
    if acked is not None:
        print("acknowledged sessions up to %d to the unit (their traces may be pruned there)" % acked)
    if undated:
        print("warning: %d session%s without a date (%s): the unit's clock was not set when %s started, so a"
              " course report cannot date %s; run `ionto clock sync` before the next treatment"
              % (len(undated), "" if len(undated) == 1 else "s", _ranges(undated),
                 "it" if len(undated) == 1 else "they", "it" if len(undated) == 1 else "them"))
    for d in damage:
        print("damaged: " + d.words())
    if nd:
        raise IontoError(EXIT_DAMAGED, "%d damaged record%s in %d file%s (listed above): the good records are "
                         "archived; the damaged ones are lost on the unit's flash"
                         % (nd, "" if nd == 1 else "s", len(damage), "" if len(damage) == 1 else "s"))
    return 0


# --- reading the archive -------------------------------------------------------------------------
def _open_archive(path):
    from . import archive

    p = archive.default_path() if not path else path
    if not os.path.exists(str(p)):
        raise IontoError(EXIT_NOT_FOUND, "no archive at %s: run `ionto logs pull` first (or name it with --archive)" % p)
    return archive.connect(p)


def find_session(db, n, serial=None):
    """The sessions row for session n (of serial) -> Row; EXIT_NOT_FOUND / EXIT_AMBIGUOUS in words."""
    if serial:
        rows = db.execute("SELECT * FROM sessions WHERE session = ? AND serial = ?", (n, serial)).fetchall()
    else:
        rows = db.execute("SELECT * FROM sessions WHERE session = ? ORDER BY serial", (n,)).fetchall()
    if not rows:
        where = " of unit %s" % serial if serial else ""
        raise IontoError(EXIT_NOT_FOUND, "no session %d%s in the archive: `ionto logs list` shows what is there" % (n, where))
    if len(rows) > 1:
        raise IontoError(EXIT_AMBIGUOUS, "session %d exists for %d units (%s): choose one with --serial"
                         % (n, len(rows), ", ".join(r["serial"] for r in rows)))
    return rows[0]


def list_(args):
    db = _open_archive(args.archive)
    clock = clinictime.get(db)
    q = "SELECT * FROM sessions"
    params = ()
    if args.serial:
        q += " WHERE serial = ?"
        params = (args.serial,)
        if db.execute("SELECT 1 FROM sessions WHERE serial = ? LIMIT 1", params).fetchone() is None:
            raise IontoError(EXIT_NOT_FOUND, "no sessions of unit %s in the archive" % args.serial)
    rows = db.execute(q + " ORDER BY serial, session", params).fetchall()
    if not rows:
        print("no sessions archived: run `ionto logs pull` with the unit connected")
        return 0
    from .archive import table

    out = []
    for r in rows:
        end = r["end_name"] if r["end_name"] is not None else "(not ended)"
        if r["damaged"]:
            end += " [%d damaged]" % r["damaged"]
        out.append((r["serial"], r["session"], words.session_start(r, clock), r["preset_name"],
                    words.ma(r["target_ua"], unit=False, none=""), words.ma(r["max_actual_ua"], unit=False, none=""),
                    words.mmss(r["treat_s"], none=""), words.dose(r["dose_uas"], unit=False, none=""), end, r["pauses"],
                    r["faults"]))
    print(table(out, ("serial", "session", "start", "preset", "target mA", "max mA", "treat", "dose mA.min", "end",
                      "pauses", "faults")))
    return 0


def events(args):
    """The archived event log in words, oldest first, per unit."""
    from .archive import table

    db = _open_archive(args.archive)
    q = "SELECT * FROM events"
    params = ()
    if args.serial:
        q += " WHERE serial = ?"
        params = (args.serial,)
    rows = db.execute(q + " ORDER BY serial, seq", params).fetchall()
    from .visits import audit_rows  # visit records and course plans: this computer's, with operator codes

    host = [] if args.serial else audit_rows(db)
    if not rows:
        if args.serial:
            raise IontoError(EXIT_NOT_FOUND, "no events of unit %s in the archive" % args.serial)
        print("no events archived: run `ionto logs pull` with the unit connected")
        if host:
            print("\nrecorded on this computer:\n" + table(host, ("time", "operator", "what")))
        return 0
    if args.last:
        keep = []
        for serial in sorted(set(r["serial"] for r in rows)):
            keep += [r for r in rows if r["serial"] == serial][-args.last:]
        rows = keep
    out = []
    clock = clinictime.get(db)
    for r in rows:
        out.append((r["serial"], r["seq"], r["boot"], words.unit_when(r["rtc_valid"], r["t"], r["boot"], clock, True),
                    r["name"], words.log_event_words(r["name"], r["a"], r["b"], r["text"])))
    print(table(out, ("serial", "seq", "boot", "time", "event", "what")))
    if host:
        print("\nrecorded on this computer:\n" + table(host, ("time", "operator", "what")))
    return 0


def show(args):
    db = _open_archive(args.archive)
    r = find_session(db, args.session, args.serial)
    lines = ["session %d of unit %s" % (r["session"], r["serial"])]

    def kv(k, v):
        lines.append("  %-14s %s" % (k, v))

    kv("started", words.session_start(r, clinictime.get(db)))
    kv("firmware", r["firmware"] or "?")
    kv("preset", "%s (%s)" % (r["preset_name"], r["preset_idx"]))
    if r["target_ua"] is not None:
        kv("target", "%s (ceiling %s)" % (words.ma(r["target_ua"]), words.ma(r["ceiling_ua"])))
        kv("duration", words.mmss(r["duration_s"]))
        kv("ramp", "up %s uA/s, down %s uA/s" % (r["slew_up_ua_s"], r["slew_down_ua_s"]))
        kv("polarity", "%s%s" % (words.polarity(r["polarity"]), ", reversed at half time" if r["reverse"] else ""))
        kv("electrodes", "%s cm2" % r["area_cm2"])
        kv("pulsed", "%s Hz, %s %% duty" % (r["gate_hz"], r["gate_duty_pct"]) if r["gate_hz"] else "no (DC)")
        kv("dose cap", words.dose(r["dose_cap_uas"]) if r["dose_cap_uas"] else "none")
    kv("ended", r["end_name"] if r["end_name"] is not None else "not ended (no end record)")
    kv("treatment", "%s, dose %s, max %s" % (words.mmss(r["treat_s"], none="?"), words.dose(r["dose_uas"], none="?"),
                                             words.ma(r["max_actual_ua"], none="?")))
    kv("samples", "%s (lost on the unit: %s)" % (r["n_samples"], r["lost"] if r["lost"] is not None else "?"))
    kv("pauses", r["pauses"])
    kv("faults", r["faults"])
    if r["damaged"]:
        kv("damaged", "%d record%s skipped (the good ones are archived)" % (r["damaged"], "s" if r["damaged"] != 1 else ""))
    evs = db.execute("SELECT t_s, code, name, a, b FROM session_events WHERE serial = ? AND session = ? ORDER BY rowid",
                     (r["serial"], r["session"])).fetchall()
    lines.append("events:")
    if not evs:
        lines.append("  (none archived)")
    for e in evs:
        lines.append("  %7s  %s" % (words.mmss(e["t_s"], none=""), words.event_words(e["code"], e["a"], e["b"])))
    print("\n".join(lines))
    return 0


def _sessions_for_export(db, args):
    if args.all == (args.session is not None):
        raise IontoError(EXIT_USAGE, "name one SESSION or give --all")
    if args.all:
        q, p = "SELECT * FROM sessions", ()
        if args.serial:
            q, p = q + " WHERE serial = ?", (args.serial,)
        rows = db.execute(q + " ORDER BY serial, session", p).fetchall()
        if not rows:
            raise IontoError(EXIT_NOT_FOUND, "no sessions%s in the archive" % (" of unit %s" % args.serial if args.serial else ""))
        return rows
    return [find_session(db, args.session, args.serial)]


def _samples(db, serial, n):
    return db.execute("SELECT t_s, set_ua, actual_ua, mv, load_ohm, state, polarity FROM samples "
                      "WHERE serial = ? AND session = ? ORDER BY t_s", (serial, n)).fetchall()


def export(args):
    db = _open_archive(args.archive)
    rows = _sessions_for_export(db, args)
    buf = io.StringIO()
    if args.format == "csv":
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(SAMPLE_COLUMNS)
        for r in rows:
            for s in _samples(db, r["serial"], r["session"]):
                w.writerow((r["serial"], r["session"], s["t_s"], s["set_ua"], s["actual_ua"], s["mv"], s["load_ohm"],
                            s["state"], words.state_name(s["state"]), s["polarity"]))
    else:
        out = []
        for r in rows:
            d = {k: r[k] for k in r.keys()}
            d["dose_ma_min"] = words.mamin(r["dose_uas"])
            d["events"] = [
                {"t_s": e["t_s"], "code": e["code"], "name": e["name"], "a": e["a"], "b": e["b"],
                 "text": words.event_words(e["code"], e["a"], e["b"])}
                for e in db.execute("SELECT t_s, code, name, a, b FROM session_events WHERE serial = ? AND session = ? "
                                    "ORDER BY rowid", (r["serial"], r["session"]))]
            d["samples"] = [
                {"t_s": s["t_s"], "set_ua": s["set_ua"], "actual_ua": s["actual_ua"], "mv": s["mv"],
                 "load_ohm": s["load_ohm"], "state": s["state"], "state_name": words.state_name(s["state"]),
                 "polarity": s["polarity"]}
                for s in _samples(db, r["serial"], r["session"])]
            out.append(d)
        json.dump({"sessions": out}, buf, indent=1)
        buf.write("\n")
    text = buf.getvalue()
    if args.output:
        try:
            with open(args.output, "w", newline="") as f:
                f.write(text)
        except OSError as e:
            raise IontoError(EXIT_USAGE, "cannot write %s: %s" % (args.output, e.strerror or e))
        sys.stderr.write("wrote %d session%s to %s\n" % (len(rows), "" if len(rows) == 1 else "s", args.output))
    else:
        sys.stdout.write(text)
    return 0


def plot(args):
    from . import logplot

    if logplot.format_for(args.output) is None:
        raise IontoError(EXIT_USAGE, "cannot tell which format to write from the name %s: end it in .%s"
                         % (args.output, ", .".join(logplot.FORMATS[:-1]) + " or ." + logplot.FORMATS[-1]))
    db = _open_archive(args.archive)
    r = find_session(db, args.session, args.serial)
    samples = [tuple(s) for s in _samples(db, r["serial"], r["session"])]
    if not samples:
        raise IontoError(EXIT_NOT_FOUND, "session %d of unit %s has no samples archived (its trace was pruned on the "
                         "unit before a pull, or never written)" % (r["session"], r["serial"]))
    events = [tuple(e) for e in db.execute("SELECT t_s, code, name, a, b FROM session_events WHERE serial = ? AND "
                                           "session = ? ORDER BY rowid", (r["serial"], r["session"]))]
    title = "unit %s session %d: %s, %s" % (r["serial"], r["session"], r["preset_name"],
                                            words.session_start(r, clinictime.get(db)))
    try:
        logplot.plot_session(args.output, samples, events, title)
    except OSError as e:
        raise IontoError(EXIT_USAGE, "cannot write %s: %s" % (args.output, e.strerror or e))
    print("wrote %s" % args.output)
    return 0
