# The on-board benchmark: runs ON the unit (a Pico, or the virtual unit), sent by
# `ionto bench --port PORT` through the raw REPL after main.py was interrupted. The host
# appends the call `_bench(n_ticks, n_i2c)`; nothing here runs on import.
#
# It measures, with the unit's own clock (time.ticks_us):
#   - the control loop's period and jitter: the firmware's App loop run for n_ticks ticks
#     (App.run(max_ticks)), the start of every tick time-stamped;
#   - the cost of one tick (App.tick, the bound method the loop calls);
#   - one INA219 transaction (board.ina.read_shunt_ua()), n_i2c times;
#   - the free heap after a collection (gc.mem_free()).
# and prints each figure as `name: value unit`, the format of `make bench`. Lines starting
# with '@' are for the host: @PLATFORM, @REFUSE (why it did not run), @DONE.
#
# Safety: the bench's App is built with selftest_ok=False, so START is refused and the output
# is never enabled; the board is made safe before and after. It refuses to run while a
# treatment is under way (main.py's `app` in a treating state), or while the watchdog is armed
# and nothing feeds it (main.py's finally feeds it from a timer once the output is verified
# off; without that feeder the unit would restart within a second).
# On the virtual unit the times are virtual: they hold the simulated wire and conversion time
# charged to the virtual clock, not the time the unix port spends in bytecode.
import gc
import sys
from array import array
from time import ticks_diff, ticks_us

_IDLE_STATES = (0, 10, 11, 12)  # session.IDLE, DONE, STOPPED, FAULT: no current is flowing


def _pct(xs, p):
    s = sorted(xs)
    return s[min(len(s) - 1, len(s) * p // 100)]


def _say(name, value, unit):
    print("%s: %s %s" % (name, value, unit))


def _bench(n_ticks, n_i2c):
    g = globals()
    main_app = g.get("app")
    if main_app is not None and main_app.s.state not in _IDLE_STATES:
        import session

        print("@REFUSE a treatment is running (state %s)" % session.STATE_NAMES[main_app.s.state])
        return
    b = g.get("_b")
    if b is not None and b.wdt is not None and getattr(b, "feeder", None) is None:
        print("@REFUSE the watchdog is armed and not fed (a treatment ran since power-on): the unit restarts by itself")
        return
    print("@PLATFORM %s" % sys.platform)

    import board
    import config
    from app import PERIOD_US, App

    own = b is None
    if own:
        b = board.Board()
        b.init_devices()
    b.safe()

    # --- I2C: one INA219 shunt read (pointer write + 2-byte read on the wire) -------------
    d = array("i", bytes(4 * n_i2c))
    ina = b.ina
    errors = 0
    for i in range(n_i2c):
        t = ticks_us()
        ina.read_shunt_ua()
        d[i] = ticks_diff(ticks_us(), t)
        if ina.error:
            errors += 1
    i2c = list(d)

    # --- the control loop: period, jitter and tick cost ------------------------------------
    a = App(b, config.defaults(), False, "bench: no treatment")
    starts = array("i", bytes(4 * n_ticks))
    cost = array("i", bytes(4 * n_ticks))
    k = [0]
    tick0 = a._tick

    def timed(now_ms):
        t = ticks_us()
        tick0(now_ms)
        i = k[0]
        if i < n_ticks:
            starts[i] = t
            cost[i] = ticks_diff(ticks_us(), t)
            k[0] = i + 1

    a._tick = timed  # App._loop calls the bound method cached in __init__
    try:
        a.run(max_ticks=n_ticks)
    finally:
        b.safe()
    per = [ticks_diff(starts[i], starts[i - 1]) for i in range(1, n_ticks)]
    jit = [p - PERIOD_US if p >= PERIOD_US else PERIOD_US - p for p in per]
    ticks = list(cost)
    enabled = a.s.cmd.enable
    del a
    gc.collect()
    free = gc.mem_free()
    used = gc.mem_alloc()
    try:
        b.display.message("BENCH DONE", "reset to treat")
        b.display.show()
    except Exception:
        pass  # a display that fails is not the bench's business
    if own:
        b.close()

    _say("onboard_loop_period_us_median", _pct(per, 50), "us (target %d)" % PERIOD_US)
    _say("onboard_loop_period_us_min", min(per), "us")
    _say("onboard_loop_period_us_max", max(per), "us")
    _say("onboard_loop_jitter_us_p99", _pct(jit, 99), "us (|period - %d|)" % PERIOD_US)
    _say("onboard_loop_jitter_us_max", max(jit), "us")
    _say("onboard_loop_overruns", sum(1 for p in per if p > PERIOD_US + PERIOD_US // 2), "ticks (period > 1.5x)")
    _say("onboard_loop_ticks", n_ticks, "ticks (IDLE, output off)")
    _say("onboard_tick_us_median", _pct(ticks, 50), "us (App.tick)")
    _say("onboard_tick_us_p99", _pct(ticks, 99), "us")
    _say("onboard_tick_us_max", max(ticks), "us")
    _say("onboard_i2c_read_shunt_us_median", _pct(i2c, 50), "us (INA219 shunt read)")
    _say("onboard_i2c_read_shunt_us_p99", _pct(i2c, 99), "us")
    _say("onboard_i2c_read_shunt_us_max", max(i2c), "us")
    _say("onboard_i2c_errors", errors, "of %d reads" % n_i2c)
    _say("onboard_heap_free_bytes", free, "B (gc.mem_free after collect)")
    _say("onboard_heap_used_bytes", used, "B (gc.mem_alloc)")
    _say("onboard_output_enabled", 1 if enabled else 0, "(0: the output stayed off)")
    print("@DONE")
