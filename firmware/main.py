# main.py: the unit's application. Everything runs inside try/finally so that any exception,
# KeyboardInterrupt (a host pressing Ctrl-C while the unit is idle: during a treatment the
# loop ignores Ctrl-C, see board.host_interrupt) or exit leaves the output off.
import sys

import micropython

try:
    micropython.alloc_emergency_exception_buf(100)  # tracebacks from IRQ handlers (rp2)
except AttributeError:
    pass  # the unix port has no emergency buffer

import board  # noqa: E402  (makes the output safe on import)

# The watchdog feeder's period once main.py has ended: well inside app.WDT_MS (1 s).
_FEED_MS = 250
# After a host's Ctrl-C: back to the application unless a host renews this lease (ionto does
# with every command; `board.host_lease(0)` at the REPL ends it for a technician's session).
# A host that vanished right after its Ctrl-C (cable pulled) cannot strand the unit at its REPL.
_REPL_LEASE_MS = 120_000
_stopped_by_host = False

_b = None
app = None
log = None
try:
    import cfgstore
    import journal
    import logstore
    import selftest
    from app import App
    from version import VERSION

    _b = board.Board()
    # Before anything is logged: the clock a host set, kept across the watchdog reset.
    clock = _b.restore_time()
    _b.init_devices()
    _b.display.message("IONTO " + VERSION, "self-test...")
    _b.display.show()
    jr = journal.Journal(_b.fram)
    try:
        log = logstore.Log("/log", journal=jr)
        log.open(_b.reset_cause_name(), VERSION)
        if clock is not None:
            log.rtc_valid = True
            log.text(logstore.L_CLOCK, "clock kept across the watchdog reset (a second or two behind at most)")
        if not jr.ok:
            log.text(logstore.L_JOURNAL, "FRAM does not answer: a power cut during a treatment would lose"
                     " its trace and dose")
        log.flush()
    except Exception as e:  # a damaged filesystem must not stop the unit from saying so
        print("main: STORAGE ERROR: session log unavailable (%s): the unit will not treat" % e)
        log = None
    if clock is not None:
        print("main: clock kept across the reset")
    if not jr.ok:
        print("main: power-cut journal: FRAM does not answer; a power cut during a treatment would"
              " lose its trace and dose (call the technician)")
    store = cfgstore.CfgStore("/")
    cfg, source, errs = store.load()
    if errs:
        print("main: configuration:", errs[0])
    notice = ""
    if source == cfgstore.BAK:
        # config.json was damaged or invalid: treat on the last good one, but say so.
        notice = "using previous configuration"
        _b.display.message("IONTO " + VERSION, "Using previous configuration. Tell the technician.")
        _b.display.show()
    ok, results = selftest.run(_b, cfg is not None, errs[0] if errs else "")
    if log is None:
        results.append(("storage", False, "storage error: session log unavailable, call the technician"))
    for name, good, words in results:
        print("selftest %-12s %s  %s" % (name, "ok  " if good else "FAIL", words))
    if log is not None:
        log.selftest(ok, results)
    # lock_heap: the safety path runs under micropython.heap_lock() (app.py says why: on the
    # rp2 port it also keeps call frames off the heap).
    app = App(_b, cfg, ok, selftest.first_failure(results), out=sys.stdout, log=log,
              version=VERSION, notice=notice, storage_ok=log is not None, lock_heap=True)
    print("ionto %s ready (reset cause: %s, configuration: %s%s)" % (
        VERSION, _b.reset_cause_name(), source, ", using previous configuration" if notice else ""))
    app.run()
except KeyboardInterrupt:
    _stopped_by_host = True
    raise
finally:
    if _b is not None:
        _b.safe()
        _b.host_interrupt(True)
        board.keep_time()
        if log is not None:
            log.flush()  # output is off now: what waited in RAM goes to flash
        if _b.wdt is not None:
            # The watchdog cannot be stopped once armed (a treatment ran since power-on). With
            # the output verified off, a timer feeds it while the REPL runs, so a host session
            # after a treatment is not cut short. rp2's soft reset stops timers: after one
            # (Ctrl-D, mpremote leaving) the new main.py does not feed it and the watchdog
            # restarts the unit within 1 s (reset cause "watchdog"; the output stays off).
            # If the output is not verified off, nothing feeds it: the reset opens the switch.
            if _b.output.enable_level() == 0 and _b.feed_from_timer(_FEED_MS):
                print("main: output off; watchdog fed while the REPL runs (a soft reset restarts the unit)")
            else:
                print("main: output not verified off: the watchdog restarts the unit")
        if _stopped_by_host:
            try:
                board.host_lease(_REPL_LEASE_MS)
            except Exception:
                pass
    else:
        board.make_safe()
