"""`ionto status`: what a unit is doing and how it is kept.

    ionto status [--port P] [--json] [--faults N]

Idle unit (or one sitting at its REPL): firmware version and integrity (firmware/integrity.py
run on the unit against its manifest), state, configuration (its source file and the presets),
storage (flash used of total, sessions and traces on the unit, archived up to which session),
recent faults from the unit's event log (/log/events.log and events.old, decoded with
firmware/records.py), and the clock (RTC set by a host or not, unit time against host time).

While a treatment runs nothing is sent to the unit: status shows only what the read-only
status channel gives (@ST and @ID lines: state, time left, target, set and actual current,
polarity, electrode voltage, dose, session) and says the rest is available when it is idle.
"""
import json
import time

from . import link, words
from .config_cmd import SOURCE_WORDS, presets_table
from .fw import firmware
from .errors import IontoError

EVENT_FILES = ("/log/events.old", "/log/events.log")  # oldest first
_BARE = """import os, sys, time, json, binascii, machine
st = os.statvfs('/')
print(json.dumps({"bare": True, "serial": binascii.hexlify(machine.unique_id()).decode().upper(),
                  "version": None, "integrity": [False, "no ionto firmware on the unit: deploy it with ionto flash"],
                  "mpy": getattr(sys.implementation, '_mpy', 0), "time": time.time(),
                  "fs": {"total": st[0] * st[2], "free": st[0] * st[3]}, "log": {"rtc_valid": False}}))
"""


def add_arguments(p):
    p.add_argument("--port", help="the unit's serial port (default: IONTO_PORT, else the only unit connected)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--faults", type=int, default=5, metavar="N", help="recent faults to show (default 5)")
    p.add_argument("--listen", type=float, default=2.5, metavar="S",
                   help="seconds to listen to the status channel first (default 2.5)")


# --- the event log ------------------------------------------------------------------------
def event_log(u):
    """The unit's event log as record dicts in sequence order, each with its "name"; and the
    count of damaged stretches skipped."""
    records = firmware("records")
    names = firmware("logstore").LOG_NAMES
    present = {n for n, _size, is_dir in u.listdir("/log") if not is_dir}
    out = []
    bad = 0
    for path in EVENT_FILES:
        if path.rsplit("/", 1)[1] not in present:
            continue
        stats = records.Stats()
        for r in records.read(u.read_file(path), stats):
            if r["type"] in ("event", "text"):
                r["name"] = names[r["code"]] if 0 <= r["code"] < len(names) else str(r["code"])
                out.append(r)
        bad += stats.bad + (1 if stats.torn else 0)
    out.sort(key=lambda r: r["seq"])
    return out, bad


RTC_POWERON = firmware("records").RTC_POWER_ON  # 2021-01-01 00:00 UTC: where rp2's RTC starts at reset


def when(r):
    """A record's time in words: UTC when the RTC was set. Otherwise the record holds the
    unset RTC, which counts from RTC_POWERON at power-up (soft resets do not restart it)."""
    if r.get("rtc_valid"):
        return words.utc(r["time"])
    t = r["time"]
    return "boot %d, %s (clock unset)" % (r["boot"], "+%d s" % (t - RTC_POWERON) if t >= RTC_POWERON else "%d s" % t)


def fault_words(r):
    if r["name"] == "fault":
        return words.fault_at(r["a"], r["b"])
    return "self-test %s" % r.get("text", "failed")


def recent_faults(events, n):
    hits = [r for r in events if r["name"] == "fault"
            or (r["name"] == "selftest" and str(r.get("text", "")).startswith("FAILED"))]
    return hits[-n:] if n > 0 else []


# --- gathering -----------------------------------------------------------------------------
def gather(port, listen_s=2.5, n_faults=5):
    """Everything status shows, as a dict. Treating: the status channel only."""
    with link.Link.open(port) as u:
        st = u.listen(listen_s)
        d = {"port": port, "listened": st is not None, "status": st.as_dict() if st else None,
             "identity": u.identity, "treating": bool(st and st.treating)}
        if st is None:
            d["state"] = "at REPL"
        else:
            d["state"] = words.state_words(st.state)
        if d["treating"]:
            return d
        # Idle, or main.py not running: the REPL is free (enter() listens once more and
        # refuses, sending nothing, if a treatment started meanwhile).
        u.enter(listen_s=1.0)
        t0 = time.time()
        try:
            info = u.hostcmd("info")
        except IontoError as e:
            if "hostcmd" not in e.message:
                raise
            # A board with MicroPython but no ionto firmware (new, or wiped): what its REPL says.
            info = link._last_json(u.exec(_BARE), "bare unit")
        t1 = time.time()
        if info.get("bare"):
            got, events, bad = None, [], 0
        else:
            got = u.hostcmd("config_get")
            events, bad = event_log(u)
    d["info"] = info
    d["config"] = got
    d["faults"] = recent_faults(events, n_faults)
    d["events"] = len(events)
    d["damaged_event_records"] = bad
    lg = info.get("log") or {}
    unit_t = info.get("time")
    d["clock"] = {"rtc_valid": lg.get("rtc_valid"), "unit_time": unit_t, "host_time": int((t0 + t1) / 2),
                  "offset_s": int(round(unit_t - (t0 + t1) / 2.0)) if isinstance(unit_t, (int, float)) else None}
    return d


# --- words -----------------------------------------------------------------------------------
def _kib(n):
    return "%d KiB" % (n // 1024)


def _channel_lines(s):
    out = []
    if s.get("time_left_s") is not None:
        out.append("time left %s" % words.mmss(s["time_left_s"]))
    for key, label in (("target_ua", "target"), ("set_ua", "set"), ("actual_ua", "actual")):
        if s.get(key) is not None:
            out.append("%s %s" % (label, words.ma(s[key])))
    if s.get("polarity") is not None:
        out.append("polarity %s" % words.polarity(s["polarity"]))
    if s.get("mv") is not None:
        out.append("electrodes %s" % words.volts(s["mv"]))
    if s.get("dose_uas") is not None:
        out.append("dose %s" % words.dose(s["dose_uas"]))
    if s.get("session") is not None:
        out.append("session %d" % s["session"])
    line = ", ".join(out)
    extra = []
    if s.get("limited_ua") not in (None, -1):
        extra.append("limited to %s (the skin's resistance)" % words.ma(s["limited_ua"]))
    if s.get("fault"):
        extra.append("fault: %s" % words.fault_name(s["fault"]))
    return [line] + extra


def render(d):
    L = []
    ident = d.get("identity") or {}
    info = d.get("info") or {}
    serial = info.get("serial") or ident.get("serial")
    L.append("unit       %s%s" % (serial + " on " if serial else "on ", d["port"]))
    if d["treating"]:
        if ident.get("version"):
            L.append("firmware   %s" % ident["version"])
        L.append("state      %s: a treatment is running" % d["state"])
        for line in _channel_lines(d["status"]):
            L.append("           %s" % line)
        L.append("Nothing was sent to the unit. Firmware integrity, configuration, storage, faults and clock are "
                 "available when it is idle.")
        return "\n".join(L)
    ok, integrity = (info.get("integrity") or [False, "?"])[:2]
    if ok:
        # The unit says e.g. "firmware 0.1.0 intact (26 files)": the label already says firmware.
        L.append("firmware   %s" % (integrity[9:] if integrity.startswith("firmware ") else integrity))
    else:
        L.append("firmware   %s, NOT INTACT: %s" % (info.get("version") or "none", integrity))
    st = info.get("selftest")
    if st is not None:
        L.append("self-test  %s" % ("passed at boot" if st.get("ok") else "FAILED at boot: %s" % (st.get("text") or "?")))
    L.append("state      %s" % (d["state"] if d["listened"] else "at REPL (main.py not running)"))
    if d.get("status"):
        L.append("           %s" % _channel_lines(d["status"])[0])
    got = d.get("config") or {}
    cfg = got.get("config")
    if info.get("bare"):
        L.append("config     none: the firmware is not on the unit")
    else:
        L.append("config     from %s" % SOURCE_WORDS.get(got.get("source"), got.get("source")))
    for e in got.get("errors") or ():
        L.append("           unit says: %s" % e)
    if cfg is not None:
        L.append("           default preset %s; USB isolated: %s" % (cfg.get("default_preset"),
                                                                    "yes" if cfg.get("isolated_usb") else "no"))
        L.extend("           " + line for line in presets_table(cfg).splitlines())
    fs = info.get("fs") or {}
    lg = info.get("log") or {}
    if "total" in fs:
        used = fs["total"] - fs["free"]
        L.append("storage    flash %s used of %s (%d %%)" % (_kib(used), _kib(fs["total"]), 100 * used // max(1, fs["total"])))
    else:
        L.append("storage    flash: %s" % fs.get("error", "?"))
    if "error" in lg:
        L.append("           session log: %s" % lg["error"])
    elif not info.get("bare"):
        L.append("           %d sessions on the unit (%d with traces), last session %d, archived up to session %d"
                 % (lg.get("sessions", 0), lg.get("traces", 0), lg.get("session", 0), lg.get("acked", 0)))
        if lg.get("lost") or lg.get("write_errors"):
            L.append("           LOST %d records, %d write errors" % (lg.get("lost", 0), lg.get("write_errors", 0)))
    faults = d.get("faults") or []
    if not faults:
        L.append("faults     none in the event log (%d events)" % d.get("events", 0))
    else:
        L.append("faults     last %d of the event log:" % len(faults))
        for r in faults:
            L.append("           %-32s %s" % (when(r), fault_words(r)))
    if d.get("damaged_event_records"):
        L.append("           %d damaged stretches of the event log skipped" % d["damaged_event_records"])
    c = d["clock"]
    if c.get("rtc_valid"):
        L.append("clock      set: %s (%s)" % (words.utc(c["unit_time"]), words.offset(c["offset_s"])))
    else:
        L.append("clock      NOT SET since power-up (unit says %s, %s): records carry seconds since boot; "
                 "run `ionto clock sync`" % (words.utc(c.get("unit_time")), words.offset(c.get("offset_s") or 0)))
    return "\n".join(L)


def run(args):
    d = gather(link.resolve_port(args.port), args.listen, args.faults)
    if args.json:
        print(json.dumps(d, indent=1, default=str))
    else:
        print(render(d))
    return 0
