"""Record framing for the unit's logs: length + CRC32, so a torn tail or a damaged record is
found and skipped, never misread. Shared by the firmware and the host tools (one copy; runs on
CPython and MicroPython).

Frame (little-endian)::

    0xA5 | type u8 | len u16 | payload (len bytes) | crc32 u32 over type, len and payload

Every payload starts with the common prefix (PREFIX, 13 bytes): seq u32 (monotonic across
boots), boot u32 (boot count), flags u8 (F_RTC: the time field is RTC time set by the host;
otherwise it is the unset RTC, which rp2 starts at 2021-01-01 00:00 at every power-on or
reset: time - RTC_POWER_ON is then seconds since that reset), time u32.

Writing, without allocating::

    buf = bytearray(records.MAX_FRAME)
    n = records.seal(buf, 0, T_EVENT, records.pack_event(buf, 0, seq, boot, flags, t, code, a, b))
    f.write(memoryview(buf)[:n])

Reading: ``for typ, payload, off in records.scan(data, stats): ...`` yields good records only;
``stats`` (a Stats) counts the bad stretches (resyncs on the next magic byte) and the torn
tail. A candidate is accepted only if its length fits and its CRC matches, so a bit flip or a
truncation costs the damaged record, never a misread one.
"""
import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:  # CPython host tools without the test shims

    def const(x):
        return x


MAGIC = const(0xA5)
HEADER = const(4)  # magic, type, len
TRAILER = const(4)  # crc32
OVERHEAD = const(8)
MAX_PAYLOAD = const(1024)
MAX_FRAME = const(1032)

# Record types
T_SUMMARY = const(1)  # session start: written and closed before any current flows
T_SAMPLES = const(2)  # a block of per-second samples
T_SEV = const(3)  # a session event (adjust, pause, fault...): EV_* code, a, b
T_END = const(4)  # session end: reason, dose
T_EVENT = const(5)  # event log: code, a, b
T_TEXT = const(6)  # event log: code + short text (boot cause, config change old -> new)
TYPE_NAMES = ("", "summary", "samples", "sev", "end", "event", "text")

F_RTC = const(1)  # time is RTC (host-set) seconds since 1970; else RTC_POWER_ON + s since reset
RTC_POWER_ON = const(1609459200)  # 2021-01-01 00:00 UTC: where rp2 starts the RTC at reset

PREFIX = "<IIBI"  # seq, boot, flags, time
PREFIX_LEN = const(13)

# Summary: prefix, session u32, time source u8, then fixed settings, then two short strings
# (firmware version, preset name) each u8 length + ASCII.
SUMMARY = "<IB12i"
SUMMARY_LEN = const(53)  # after the prefix
SUMMARY_FIELDS = (
    "session", "time_source", "preset_idx", "target_ua", "ceiling_ua", "duration_s", "slew_up_ua_s",
    "slew_down_ua_s", "reverse", "polarity", "area_cm2", "gate_hz", "gate_duty_pct", "dose_cap_uas",
)
# Samples: prefix, session u32, first second u32, dose uA*s so far i32, treat s u32, count u8,
# then count x SAMPLE (set uA, actual uA, electrode mV, load /10 ohm, state | polarity << 7),
# each u16: the ring's own layout, so a flush copies memory.
SAMPLES = "<IIiIB"
SAMPLES_LEN = const(17)
SAMPLE_WORDS = const(5)
SAMPLE_BYTES = const(10)
MAX_SAMPLES = const(99)  # per record: 13 + 17 + 990 <= MAX_PAYLOAD
# Session event: prefix, session u32, session second u32, code u8, a i32, b i32
SEV = "<IIBii"
# End: prefix, session u32, reason u8, dose uA*s i32, treat s u32, samples u32, lost u32
END = "<IBiIII"
# Event: prefix, code u16, a i32, b i32
EVENT = "<Hii"
# Text: prefix, code u16, then the text (UTF-8, up to MAX_PAYLOAD - 15 bytes)
TEXT = "<H"
TEXT_MAX = const(1009)


class Stats:
    """What a scan skipped: `bad` stretches resynced over, `skipped` bytes in them, `torn`
    bytes of an incomplete last frame, `good` records returned."""

    def __init__(self):
        self.good = 0
        self.bad = 0
        self.skipped = 0
        self.torn = 0


def _crc(buf, start, end):
    return crc32(memoryview(buf)[start:end]) & 0xFFFFFFFF


def seal(buf, off, typ, n):
    """Frame n payload bytes already packed at buf[off + HEADER:]; returns the frame length."""
    if n < 0 or n > MAX_PAYLOAD:
        raise ValueError("payload length")
    buf[off] = MAGIC
    buf[off + 1] = typ
    buf[off + 2] = n & 0xFF
    buf[off + 3] = n >> 8
    end = off + HEADER + n
    struct.pack_into("<I", buf, end, _crc(buf, off + 1, end))
    return n + OVERHEAD


def frame(typ, payload):
    """Convenience for host tools and tests: bytes payload -> framed bytes (allocates)."""
    buf = bytearray(len(payload) + OVERHEAD)
    buf[HEADER:HEADER + len(payload)] = payload
    seal(buf, 0, typ, len(payload))
    return bytes(buf)


def pack_prefix(buf, off, seq, boot, flags, t):
    """Pack the common prefix at the payload start (off is the frame offset); returns its length."""
    struct.pack_into(PREFIX, buf, off + HEADER, seq, boot, flags, t)
    return PREFIX_LEN


def pack_event(buf, off, seq, boot, flags, t, code, a, b):
    pack_prefix(buf, off, seq, boot, flags, t)
    struct.pack_into(EVENT, buf, off + HEADER + PREFIX_LEN, code, a, b)
    return PREFIX_LEN + 10


def pack_text(buf, off, seq, boot, flags, t, code, text):
    pack_prefix(buf, off, seq, boot, flags, t)
    p = off + HEADER + PREFIX_LEN
    struct.pack_into(TEXT, buf, p, code)
    if isinstance(text, str):
        text = text.encode()
    n = min(len(text), TEXT_MAX)
    memoryview(buf)[p + 2:p + 2 + n] = text[:n]  # through a view: callers may hold one
    return PREFIX_LEN + 2 + n


def pack_summary(buf, off, seq, boot, flags, t, session, time_source, settings, version, preset_name):
    """settings: 12 ints in SUMMARY_FIELDS order after time_source."""
    pack_prefix(buf, off, seq, boot, flags, t)
    p = off + HEADER + PREFIX_LEN
    struct.pack_into(SUMMARY, buf, p, session, time_source, *settings)
    p += SUMMARY_LEN
    for s in (version, preset_name):
        if isinstance(s, str):
            s = s.encode()
        s = s[:32]
        buf[p] = len(s)
        memoryview(buf)[p + 1:p + 1 + len(s)] = s
        p += 1 + len(s)
    return p - off - HEADER


def scan(data, stats=None):
    """Yield (type, payload memoryview, frame offset) for each good frame in data (bytes or
    bytearray). Bytes between good frames count as bad stretches; bytes after the last good
    frame (a write cut short, or damage there) as the torn tail."""
    mv = memoryview(data)
    n = len(data)
    pos = 0
    bad_from = -1  # start of the current bad stretch
    while pos < n:
        if data[pos] == MAGIC and pos + HEADER + TRAILER <= n:
            ln = data[pos + 2] | (data[pos + 3] << 8)
            end = pos + HEADER + ln
            if ln <= MAX_PAYLOAD and end + TRAILER <= n:
                crc = data[end] | (data[end + 1] << 8) | (data[end + 2] << 16) | (data[end + 3] << 24)
                if _crc(data, pos + 1, end) == crc:
                    if bad_from >= 0:
                        if stats:
                            stats.bad += 1
                            stats.skipped += pos - bad_from
                        bad_from = -1
                    if stats:
                        stats.good += 1
                    yield data[pos + 1], mv[pos + HEADER:end], pos
                    pos = end + TRAILER
                    continue
        # Not a good frame here: resync on the next magic byte.
        if bad_from < 0:
            bad_from = pos
        pos = data.find(b"\xa5", pos + 1)
        if pos < 0:
            pos = n
    if stats and bad_from >= 0:
        stats.torn += n - bad_from


def unpack(typ, payload):
    """Decode one payload into a dict (host tools, tests, recovery; allocates)."""
    seq, boot, flags, t = struct.unpack_from(PREFIX, payload, 0)
    d = {"type": TYPE_NAMES[typ] if typ < len(TYPE_NAMES) else typ, "seq": seq, "boot": boot,
         "rtc_valid": bool(flags & F_RTC), "time": t}
    p = PREFIX_LEN
    if typ == T_SUMMARY:
        v = struct.unpack_from(SUMMARY, payload, p)
        for i in range(len(SUMMARY_FIELDS)):
            d[SUMMARY_FIELDS[i]] = v[i]
        p += SUMMARY_LEN
        for k in ("version", "preset"):
            ln = payload[p]
            d[k] = bytes(payload[p + 1:p + 1 + ln]).decode()
            p += 1 + ln
    elif typ == T_SAMPLES:
        d["session"], d["t0"], d["dose_uas"], d["treat_s"], cnt = struct.unpack_from(SAMPLES, payload, p)
        p += SAMPLES_LEN
        if len(payload) != p + cnt * SAMPLE_BYTES:
            raise ValueError("sample count")
        w = struct.unpack_from("<%dH" % (cnt * SAMPLE_WORDS), payload, p)
        d["samples"] = [
            (w[i], w[i + 1], w[i + 2], w[i + 3] * 10 if w[i + 3] != 0xFFFF else -1, w[i + 4] & 0x7F, w[i + 4] >> 7)
            for i in range(0, len(w), SAMPLE_WORDS)
        ]
    elif typ == T_SEV:
        d["session"], d["sec"], d["code"], d["a"], d["b"] = struct.unpack_from(SEV, payload, p)
    elif typ == T_END:
        d["session"], d["reason"], d["dose_uas"], d["treat_s"], d["samples"], d["lost"] = struct.unpack_from(END, payload, p)
    elif typ == T_EVENT:
        d["code"], d["a"], d["b"] = struct.unpack_from(EVENT, payload, p)
    elif typ == T_TEXT:
        d["code"] = struct.unpack_from(TEXT, payload, p)[0]
        d["text"] = bytes(payload[p + 2:]).decode()
    return d


def read(data, stats=None):
    """All good records of data as dicts (host tools, tests). Records whose payload does not
    decode for their type count as bad (stats.bad) and are left out."""
    out = []
    for typ, payload, off in scan(data, stats):
        try:
            out.append(unpack(typ, payload))
        except Exception:
            if stats:
                stats.good -= 1
                stats.bad += 1
    return out
