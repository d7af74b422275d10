# The `machine` mock's RTC and the calendar arithmetic behind it (and behind the virtual
# `time`). Re-exported by machine.py.
import vclock

_RTC_POWERON = (2021, 1, 1, 4, 0, 0, 0, 0)  # rp2 main.c sets this at boot (a Friday)

# --- RTC ------------------------------------------------------------------------------------
def _days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _mktime(y, mo, d, h, mi, s):
    """Seconds since 1970-01-01 (rp2's epoch); fields may overflow like C mktime."""
    y += (mo - 1) // 12
    mo = (mo - 1) % 12 + 1
    return _days_from_civil(y, mo, 1) * 86400 + (d - 1) * 86400 + h * 3600 + mi * 60 + s


def _gmtime(secs):
    """(year, month, mday, hour, minute, second, weekday Mon=0, yearday 1..366)."""
    days, rem = divmod(secs, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    yd = days - _days_from_civil(y, 1, 1) + 1
    wd = (days + 3) % 7  # 1970-01-01 was a Thursday
    return (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, wd, yd)


_rtc_secs = 0  # RTC seconds (epoch 1970) at virtual time _rtc_at
_rtc_at = 0


def _rtc_power_on():
    global _rtc_secs, _rtc_at
    t = _RTC_POWERON
    _rtc_secs = _mktime(t[0], t[1], t[2], t[4], t[5], t[6])
    _rtc_at = vclock.now_us()


def sim_rtc_us():
    """RTC time in microseconds since 1970 (for time.time()/time_ns())."""
    return _rtc_secs * 1_000_000 + (vclock.now_us() - _rtc_at)


class RTC:
    def __init__(self, id=0, *, datetime=None):
        if datetime is not None:
            self.datetime(datetime)

    def datetime(self, datetimetuple=None):
        global _rtc_secs, _rtc_at
        if datetimetuple is None:
            t = _gmtime(sim_rtc_us() // 1_000_000)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        t = datetimetuple
        if len(t) < 7:
            raise ValueError("requires an 8-tuple")
        if not (1 <= t[1] <= 12 and 1 <= t[2] <= 31 and 0 <= t[4] <= 23 and 0 <= t[5] <= 59 and 0 <= t[6] <= 59):
            raise ValueError("invalid datetime")
        _rtc_secs = _mktime(t[0], t[1], t[2], t[4], t[5], t[6])
        _rtc_at = vclock.now_us()
