"""The clinic's time zone: every course date and time the host tools show is clinic time.

The units keep UTC (their RTC is set from the host's UTC clock, `ionto clock sync`); the
archive stores Unix seconds. A session becomes a course day only here, by converting its UTC
start to the clinic's zone, so a session at 23:59 falls on the same day in `ionto logs list`,
`ionto course show`, a visit record and the report, whatever zone the computer (or its TZ
variable) is set to. The zone is configured once per archive (`ionto course tz Europe/Berlin`,
kept in the archive's meta table). Until it is, the computer's own zone is used and the
report says so.
"""
import datetime as _dt
import time as _time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import EXIT_USAGE, IontoError

_META_KEY = "clinic_tz"


def zone_info(name):
    """An IANA zone name -> ZoneInfo, or IontoError with one line."""
    try:
        if not name or name != name.strip() or name.startswith("/") or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise IontoError(EXIT_USAGE, "unknown time zone %r: give an IANA name such as Europe/Berlin, "
                         "America/New_York or UTC" % (name,))


class ClinicClock:
    """Clinic time from Unix seconds. name is None when the zone is not configured (then the
    computer's zone is used, which a clinic should not rely on)."""

    def __init__(self, name=None):
        self.name = name
        self.zone = zone_info(name) if name else None

    @property
    def configured(self):
        return self.zone is not None

    def local(self, unix_s):
        t = _dt.datetime.fromtimestamp(int(unix_s), _dt.timezone.utc)
        return t.astimezone(self.zone) if self.zone else t.astimezone()

    def date(self, unix_s):
        return self.local(unix_s).date()

    def words(self, unix_s, seconds=False):
        """'2026-12-01 23:59 CET' (the zone's abbreviation, so nobody reads it as UTC)."""
        return self.local(unix_s).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "") + " %Z")

    def hhmm(self, unix_s):
        return self.local(unix_s).strftime("%H:%M")

    def now_unix(self):
        return int(_time.time())

    def today(self):
        return self.date(self.now_unix())

    def unix(self, date, hh=0, mm=0, ss=0):
        """Clinic wall time on a date -> Unix seconds."""
        tz = self.zone
        if tz is None:
            return int(_time.mktime((date.year, date.month, date.day, hh, mm, ss, 0, 0, -1)))
        return int(_dt.datetime(date.year, date.month, date.day, hh, mm, ss, tzinfo=tz).timestamp())

    def label(self):
        if self.zone:
            return self.name
        return "not set: this computer's zone (%s); set it once with `ionto course tz ZONE`" % _time.strftime("%Z")


def get(db):
    """The archive's clinic clock."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (_META_KEY,)).fetchone()
    return ClinicClock(row[0] if row else None)


def set_zone(db, name):
    zone_info(name)
    db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (_META_KEY, name))
    db.commit()
    return ClinicClock(name)
