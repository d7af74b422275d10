# What the host tools (`ionto`) call on the unit over the raw REPL, once main.py has been
# stopped (the host refuses to stop it while a treatment runs; the output is off by then).
# Each function prints one JSON line, which host_tools/ionto/link.py reads.
#
#   import hostcmd; hostcmd.G = globals(); hostcmd.info()
#
# G is the REPL's globals: main.py ran there, so its `log` (logstore.Log) and `app` are reused
# when present; otherwise a Log is attached to the current boot's log (no boot counted).
# No patient data passes here: configuration, clock, firmware and log bookkeeping only.
import json
import os
import sys

G = {}
_log = None


def _out(v):
    print(json.dumps(v))


def _the_log():
    global _log
    lg = G.get("log")
    if lg is not None:
        return lg
    if _log is None:
        import logstore

        lg = logstore.Log("/log")
        lg.attach(_version())
        _log = lg
    return _log


def _version():
    try:
        from version import VERSION

        return VERSION
    except ImportError:
        return "?"


def _serial():
    import binascii

    import machine

    return binascii.hexlify(machine.unique_id()).decode().upper()


def _fs(path="/"):
    st = os.statvfs(path)
    return {"total": st[0] * st[2], "free": st[0] * st[3]}


def info():
    """Identity, firmware integrity, configuration source, storage, clock, log counters."""
    import time

    import integrity

    ok, words = integrity.check("/")
    d = {"serial": _serial(), "version": _version(), "mpy": getattr(sys.implementation, "_mpy", 0),
         "platform": sys.platform, "integrity": [ok, words], "time": time.time(),
         "localtime": list(time.gmtime())[:6]}
    try:
        d["fs"] = _fs("/")
    except OSError as e:
        d["fs"] = {"error": str(e)}
    try:
        import cfgstore

        cfg, source, errs = cfgstore.CfgStore("/").load()
        d["config"] = {"source": source, "errors": errs}
    except Exception as e:  # a broken configuration module must not hide the rest
        d["config"] = {"source": "none", "errors": [str(e)]}
    try:
        lg = _the_log()
        sums, trcs = lg._sessions()
        d["log"] = {"boot": lg.boot, "session": lg.session, "sessions": len(sums), "traces": len(trcs),
                    "acked": lg.acked(), "rtc_valid": lg.rtc_valid, "lost": lg.lost,
                    "write_errors": lg.write_errors}
    except Exception as e:
        d["log"] = {"error": str(e)}
    app = G.get("app")
    if app is not None:
        import session

        d["state"] = session.STATE_NAMES[app.s.state]
        # The boot's self-test, as main.py ran it (the app keeps its outcome and first failure).
        d["selftest"] = {"ok": bool(app.s.selftest_ok), "text": app.selftest_text or ""}
    _out(d)


def ls(path="/log"):
    r = []
    try:
        for e in os.ilistdir(path):
            r.append([e[0], e[3] if len(e) > 3 else 0, e[1] == 0x4000])
    except OSError:
        pass
    _out(r)


def config_get():
    import cfgstore

    cfg, source, errs = cfgstore.CfgStore("/").load()
    _out({"config": cfg, "source": source, "errors": errs})


def config_put(text):
    """Validate (config.py, the same code the host ran) and save atomically (cfgstore); each
    changed value goes into the event log as old -> new."""
    import cfgstore
    import config

    cfg, errs = config.parse(text)
    if cfg is None:
        _out({"ok": False, "errors": errs, "diff": []})
        return
    lg = _the_log()
    try:
        ok, errs, diff = cfgstore.CfgStore("/").save(cfg, on_change=lg.config_event)
    except OSError as e:
        _out({"ok": False, "errors": ["the flash refused the write (%s): see the technician guide" % e], "diff": []})
        return
    lg.flush()
    _out({"ok": ok, "errors": errs, "diff": [list(x) for x in diff]})


def clock_set(unix_s):
    """Set the RTC (UTC) from the host; the event log records old and new time."""
    import time

    import machine

    old = time.time()
    t = time.gmtime(int(unix_s))
    # rp2 RTC tuple: (year, month, day, weekday, hours, minutes, seconds, subseconds)
    machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))
    lg = _the_log()
    lg.set_clock(int(unix_s), int(old))
    lg.flush()
    _keep_time()
    _out({"old": old, "new": time.time()})


def _keep_time():
    # The RTC into the watchdog scratch registers: the restart that ends a host session
    # (a watchdog reset) keeps the clock (board.keep_time).
    try:
        import board

        board.keep_time()
    except Exception:
        pass


def ack(n):
    """The host archived every session up to n: their traces may be pruned first."""
    lg = _the_log()
    lg.ack(int(n))
    _out({"acked": lg.acked()})


def event_text(code_name, text):
    """A host action into the event log, e.g. ("firmware", "0.1.0 -> 0.2.0")."""
    import logstore

    code = logstore.LOG_NAMES.index(code_name) if code_name in logstore.LOG_NAMES else logstore.L_HOST
    lg = _the_log()
    lg.text(code, str(text)[:200])
    lg.flush()
    _out({"ok": True})


def host_done():
    """The host is leaving: mark the restart that follows as the end of a host session (the
    next boot's event-log entry says so) and tell the host whether the watchdog is armed (a
    treatment ran since power-on): then it hard-resets the unit, since after a soft reset
    nothing would feed the watchdog and it would bite a second later anyway."""
    b = G.get("_b")
    armed = b is not None and getattr(b, "wdt", None) is not None
    try:
        import logstore

        logstore.mark_host_exit("/log")
    except Exception:  # no log (new or damaged unit): the restart is still right
        pass
    _keep_time()
    _out({"wdt": armed})
