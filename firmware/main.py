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
try:
    import config
    import selftest
    from app import App
    from version import VERSION

    _b = board.Board()
    _b.init_devices()
    _b.display.message("IONTO " + VERSION, "self-test...")
    _b.display.show()
    try:
        with open("config.json") as f:
            cfg, errs = config.parse(f.read())
    except OSError:
        cfg, errs = config.defaults(), []
    if cfg is None:
        cfg = config.defaults()  # shown, never used: the session refuses START
        ok_cfg = False
    else:
        ok_cfg = True
    ok, results = selftest.run(_b, ok_cfg, errs[0] if errs else "")
    for name, good, words in results:
        print("selftest %-12s %s  %s" % (name, "ok  " if good else "FAIL", words))
    app = App(_b, cfg if ok_cfg else None, ok, selftest.first_failure(results), out=sys.stdout)
    print("ionto %s ready (reset cause: %s)" % (VERSION, _b.reset_cause_name()))
    app.run()
finally:
    if _b is not None:
        _b.safe()
        if _b.wdt is not None:
            # The watchdog cannot be stopped once armed. A host interrupting an idle unit
            # after a treatment gets a restart within the timeout; the output is off.
            print("main: output off; watchdog armed: the unit restarts shortly")
    else:
        board.make_safe()
