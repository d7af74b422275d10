# main.py: the unit's application. Everything runs inside try/finally so that any exception,
# KeyboardInterrupt (a host pressing Ctrl-C) or exit leaves the output off.
import sys

import micropython

try:
    micropython.alloc_emergency_exception_buf(100)  # tracebacks from IRQ handlers (rp2)
except AttributeError:
    pass  # the unix port has no emergency buffer

import board  # noqa: E402  (makes the output safe on import)

_b = None
app = None
log = None
try:
    import cfgstore
    import logstore
    import selftest
    from app import App
    from version import VERSION

    _b = board.Board()
    _b.init_devices()
    _b.display.message("IONTO " + VERSION, "self-test...")
    _b.display.show()
    try:
        log = logstore.Log("/log")
        log.open(_b.reset_cause_name(), VERSION)
    except Exception as e:  # a damaged filesystem must not stop the unit from saying so
        print("main: session log unavailable:", e)
        log = None
    store = cfgstore.CfgStore("/")
    cfg, source, errs = store.load()
    if errs:
        print("main: configuration:", errs[0])
    ok, results = selftest.run(_b, cfg is not None, errs[0] if errs else "")
    if log is None:
        results.append(("storage", False, "session log unavailable: see technician"))
        ok = False
    for name, good, words in results:
        print("selftest %-12s %s  %s" % (name, "ok  " if good else "FAIL", words))
    if log is not None:
        log.selftest(ok, results)
    app = App(_b, cfg, ok, selftest.first_failure(results), out=sys.stdout, log=log)
    print("ionto %s ready (reset cause: %s, configuration: %s)" % (VERSION, _b.reset_cause_name(), source))
    app.run()
finally:
    if _b is not None:
        _b.safe()
        if log is not None:
            log.flush()  # output is off now: what waited in RAM goes to flash
        if _b.wdt is not None:
            # The watchdog cannot be stopped once armed. A host interrupting an idle unit
            # after a treatment gets a restart within the timeout; the output is off.
            print("main: output off; watchdog armed: the unit restarts shortly")
    else:
        board.make_safe()
