"""The host's SQLite archive of unit logs, keyed by unit serial, and the clinic courses.

    db = archive.connect(path)          # creates the schema if needed; rows are sqlite3.Row

`ionto logs pull` fills units/sessions/samples/session_events/events from the unit's flash;
`ionto course` links archived sessions to a course. A course label is a pseudonymous clinic
code: no names or other patient data are stored here, and nothing of a course goes to a unit.
`ionto course visit` adds visit records (HDSS, skin reactions, notes, the operator's code, the
checklist re-confirmed) and `ionto course plan` a course's settings (maintenance interval,
response rules). These tables are additions: an older ionto opens the archive and ignores them.
The clinic's time zone is meta 'clinic_tz' (clinictime.py).
Times: `start_t` and `events.t` are Unix seconds when `rtc_valid`; else the unit's unset RTC,
which starts at 2021-01-01 (records.RTC_POWER_ON) at each reset: subtract it for seconds since
that reset.
"""
import os
import sqlite3
from pathlib import Path

from .errors import EXIT_USAGE, IontoError
from .texttable import table  # noqa: F401 (the commands import it from here too)

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS units(
    serial TEXT PRIMARY KEY, firmware TEXT, first_seen TEXT, last_pull TEXT);
CREATE TABLE IF NOT EXISTS sessions(
    serial TEXT NOT NULL, session INTEGER NOT NULL,
    boot INTEGER, seq INTEGER, rtc_valid INTEGER, start_t INTEGER, firmware TEXT,
    preset_idx INTEGER, preset_name TEXT, target_ua INTEGER, ceiling_ua INTEGER, duration_s INTEGER,
    slew_up_ua_s INTEGER, slew_down_ua_s INTEGER, reverse INTEGER, polarity INTEGER, area_cm2 INTEGER,
    gate_hz INTEGER, gate_duty_pct INTEGER, dose_cap_uas INTEGER, time_source INTEGER,
    end_reason INTEGER, end_name TEXT, dose_uas INTEGER, treat_s INTEGER, n_samples INTEGER,
    lost INTEGER, max_actual_ua INTEGER, pauses INTEGER, faults INTEGER, damaged INTEGER DEFAULT 0,
    complete INTEGER DEFAULT 0, sum_bytes INTEGER DEFAULT 0, trc_bytes INTEGER DEFAULT 0, pulled_at TEXT,
    PRIMARY KEY(serial, session));
CREATE TABLE IF NOT EXISTS samples(
    serial TEXT NOT NULL, session INTEGER NOT NULL, t_s INTEGER NOT NULL,
    set_ua INTEGER, actual_ua INTEGER, mv INTEGER, load_ohm INTEGER, state INTEGER, polarity INTEGER,
    PRIMARY KEY(serial, session, t_s));
CREATE TABLE IF NOT EXISTS session_events(
    serial TEXT NOT NULL, session INTEGER NOT NULL, t_s INTEGER, code INTEGER, name TEXT, a INTEGER, b INTEGER);
CREATE INDEX IF NOT EXISTS session_events_by_session ON session_events(serial, session);
CREATE TABLE IF NOT EXISTS events(
    serial TEXT NOT NULL, seq INTEGER NOT NULL, boot INTEGER, rtc_valid INTEGER, t INTEGER,
    code INTEGER, name TEXT, a INTEGER, b INTEGER, text TEXT,
    PRIMARY KEY(serial, seq));
CREATE TABLE IF NOT EXISTS courses(
    id INTEGER PRIMARY KEY, label TEXT UNIQUE NOT NULL, site TEXT, start_date TEXT, created TEXT,
    checklist_json TEXT, notes TEXT);
CREATE TABLE IF NOT EXISTS course_sessions(
    course_id INTEGER NOT NULL REFERENCES courses(id), serial TEXT NOT NULL, session INTEGER NOT NULL,
    PRIMARY KEY(serial, session));
CREATE TABLE IF NOT EXISTS visits(
    id INTEGER PRIMARY KEY, course_id INTEGER NOT NULL REFERENCES courses(id), date TEXT NOT NULL,
    day INTEGER, recorded_t INTEGER NOT NULL, tz TEXT, operator TEXT NOT NULL, hdss_json TEXT,
    reactions TEXT, notes TEXT, checklist_json TEXT, superseded INTEGER DEFAULT 0);
CREATE INDEX IF NOT EXISTS visits_by_course ON visits(course_id, date);
CREATE TABLE IF NOT EXISTS course_plans(
    course_id INTEGER PRIMARY KEY REFERENCES courses(id), plan_json TEXT, operator TEXT, recorded_t INTEGER);
"""


def default_path():
    env = os.environ.get("IONTO_ARCHIVE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "ionto" / "archive.sqlite"


class Archive(sqlite3.Connection):
    """A connection that knows its file and whether it may be written."""

    path = None
    readonly = False


def need_write(db):
    """Refuse, in one line and before anything else is done, an archive that cannot be written
    (a read-only file or folder, a read-only disk)."""
    if getattr(db, "readonly", False):
        raise IontoError(EXIT_USAGE, readonly_words(db.path))


def readonly_words(path):
    return ("the archive %s cannot be written (read-only file, folder or disk): make it writable, or name "
            "another with --archive (or IONTO_ARCHIVE)" % path)


def _probe_write(db):
    """True if the archive takes a write (tried, then rolled back)."""
    try:
        db.execute("UPDATE meta SET value = value WHERE key = 'schema'")
        db.rollback()
        return True
    except sqlite3.OperationalError as e:
        db.rollback()
        if "readonly" in str(e) or "read-only" in str(e) or "unable to open" in str(e):
            return False
        raise


def connect(path=None):
    """Open (creating if needed) the archive at path -> sqlite3.Connection (rows: sqlite3.Row).
    A read-only archive opens for reading (db.readonly; need_write refuses it)."""
    path = Path(path) if path else default_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), factory=Archive)
        db.path = path
        try:
            db.executescript(SCHEMA)
        except sqlite3.OperationalError as e:
            if "readonly" not in str(e) and "unable to open" not in str(e):
                raise
            db.readonly = True
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sessions'").fetchone() is None:
                raise IontoError(EXIT_USAGE, readonly_words(path))
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is not None and not db.readonly:
            db.readonly = not _probe_write(db)
        if row is None and db.readonly:
            raise IontoError(EXIT_USAGE, readonly_words(path))
        if row is None:
            db.execute("INSERT INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            db.commit()
        elif int(row[0]) > SCHEMA_VERSION:
            raise IontoError(EXIT_USAGE, "the archive %s was written by a newer ionto (schema %s): upgrade ionto"
                             % (path, row[0]))
    except sqlite3.DatabaseError as e:
        raise IontoError(EXIT_USAGE, "%s is not a usable ionto archive (%s): name another with --archive" % (path, e))
    except OSError as e:
        raise IontoError(EXIT_USAGE, "cannot open the archive %s: %s" % (path, e.strerror or e))
    return db


# --- what `ionto logs pull` writes ---------------------------------------------------------------
SESSION_COLUMNS = (
    "serial", "session", "boot", "seq", "rtc_valid", "start_t", "firmware", "preset_idx", "preset_name",
    "target_ua", "ceiling_ua", "duration_s", "slew_up_ua_s", "slew_down_ua_s", "reverse", "polarity", "area_cm2",
    "gate_hz", "gate_duty_pct", "dose_cap_uas", "time_source", "end_reason", "end_name", "dose_uas", "treat_s",
    "n_samples", "lost", "max_actual_ua", "pauses", "faults", "damaged", "complete", "sum_bytes", "trc_bytes",
    "pulled_at")
# Columns a trace gives: kept from the archive when the unit has since pruned the trace.
_TRACE_FIELDS = ("n_samples", "max_actual_ua", "pauses", "faults")


def session_files(listing):
    """hostcmd.ls entries -> {n: {"sum": size, "trc": size}} and {name: size} of the rest."""
    sess = {}
    other = {}
    for name, size, is_dir in listing:
        if is_dir:
            continue
        if len(name) == 11 and name[0] == "s" and name[1:7].isdigit() and name[7:] in (".sum", ".trc"):
            sess.setdefault(int(name[1:7]), {})[name[8:]] = size
        else:
            other[name] = size
    return sess, other


def plan(db, serial, sess):
    """Which sessions to fetch: [(n, fetch_sum, fetch_trc)] for those whose summary or trace
    size on the unit differs from the archive's (a trace the unit no longer has is kept)."""
    have = {r["session"]: r for r in db.execute(
        "SELECT session, sum_bytes, trc_bytes FROM sessions WHERE serial = ?", (serial,))}
    out = []
    for n in sorted(sess):
        f = sess[n]
        if "sum" not in f:
            continue  # a trace without its summary: the unit is mid-prune or the summary was lost
        old = have.get(n)
        s_new = old is None or old["sum_bytes"] != f["sum"]
        t_new = "trc" in f and (old is None or old["trc_bytes"] != f["trc"])
        if s_new or t_new:
            # Both files together: the session's row is derived from both.
            out.append((n, True, "trc" in f))
    return out


def store_session(db, serial, n, parsed, sum_bytes, trc_bytes, pulled_at):
    """Write one parsed session into the archive. trc_bytes None: the unit has no trace now;
    an archived one (and its samples) is kept. Returns 'new' | 'updated' | 'kept'."""
    old = db.execute("SELECT * FROM sessions WHERE serial = ? AND session = ?", (serial, n)).fetchone()
    row = dict(parsed.row)
    if old is not None and old["seq"] is not None and row.get("seq") is not None and \
            (old["boot"], old["seq"]) != (row["boot"], row["seq"]):
        # Same number, different session: the unit's log was reset. Never overwrite the archive.
        return "kept"
    if old is not None and row.get("seq") is None:
        # The summary is unreadable now but was archived before: keep what was archived.
        for k in SESSION_COLUMNS[2:21]:
            row[k] = old[k]
    if trc_bytes is None and old is not None and old["trc_bytes"]:
        for k in _TRACE_FIELDS:
            row[k] = old[k]
        trc_bytes = old["trc_bytes"]
        keep_trace = True
    else:
        keep_trace = False
    row.update(serial=serial, sum_bytes=sum_bytes, trc_bytes=trc_bytes or 0, pulled_at=pulled_at)
    cols = [c for c in SESSION_COLUMNS if c in row]
    db.execute("INSERT OR REPLACE INTO sessions(%s) VALUES (%s)" % (", ".join(cols), ", ".join("?" * len(cols))),
               [row[c] for c in cols])
    if not keep_trace:
        db.execute("DELETE FROM samples WHERE serial = ? AND session = ?", (serial, n))
        db.execute("DELETE FROM session_events WHERE serial = ? AND session = ?", (serial, n))
        db.executemany("INSERT OR REPLACE INTO samples(serial, session, t_s, set_ua, actual_ua, mv, load_ohm, state, "
                       "polarity) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [(serial, n) + s for s in parsed.samples])
        db.executemany("INSERT INTO session_events(serial, session, t_s, code, name, a, b) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [(serial, n) + e for e in parsed.events])
    return "new" if old is None else "updated"


def store_events(db, serial, rows):
    """Event-log rows not yet archived (by sequence number) -> how many were added."""
    before = db.total_changes
    db.executemany("INSERT OR IGNORE INTO events(serial, seq, boot, rtc_valid, t, code, name, a, b, text) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [(serial,) + tuple(r) for r in rows])
    return db.total_changes - before


def ack_point(db, serial, sess):
    """The highest session the unit may count as archived: every session the unit still has up to
    it is archived, complete, and its trace (if the unit has one) archived at the unit's size."""
    arch = {r["session"]: r for r in db.execute(
        "SELECT session, complete, trc_bytes FROM sessions WHERE serial = ?", (serial,))}
    ack = 0
    for n in sorted(sess):
        r = arch.get(n)
        f = sess[n]
        if "sum" not in f:
            continue
        if r is None or not r["complete"] or ("trc" in f and r["trc_bytes"] != f["trc"]):
            break
        ack = n
    return ack
