# The control loop on the RP2040 (rp2 port, on the emulated chip): the unit's own start-up, then
# a treatment through every state where current can flow, each held for a window of W seconds,
# timed by the loop itself (app.tick_stats: tick cost histogram, worst tick, overruns), and the
# free heap at the worst point of the whole session.
#
# Compiled by mpy-cross and imported as a module on a freshly reset chip, with the firmware's
# modules on its filesystem (as source over the raw REPL, its compile left no 30 KB block for
# the log's ring); the host's options in rp2opts.py beside it:
#   W = 3             seconds per state window (contact, ramp up, treat, reversal, ramp down)
# The line "@INJECT open" asks the board to lift the hands (the contact check's window),
# "@CLEAR open" puts them back. Prints one "@RESULT {json}" line. Everything runs heap-locked
# (App lock_heap=True, as main.py): an allocation in the safety path raises MemoryError and ends
# the run with the output off. The fault reactions are tests/rp2/reactions.py's.
#
# Heap: the free heap (garbage counted as used) is looked at between the script's steps of the
# start-up and the session, at the end of each timed window, inside the loop just before each
# planned collection outside the windows (the lowest point between two collections: the
# low-rate jobs only add garbage until then; gc.mem_free() walks the heap, so not inside a
# timed window), and after the session's log is written to flash; the live data alone
# (collected first) after the start-up, after each window and after the log write.
import sys
import gc
import time
import micropython

try:
    import rp2opts  # written by the host beside this module
except ImportError:
    rp2opts = None
W = getattr(rp2opts, "W", 3)
PROFILE = getattr(rp2opts, "PROFILE", False)  # True: time each kind of low-rate job (wrappers add to every tick)

ticks_us = time.ticks_us
ticks_diff = time.ticks_diff

# --- start-up as main.py does it, with its session log on the (modelled) flash ---------------
heap_min = [1 << 29, 1 << 29, 1 << 29]  # whole run, the session after the start-up, collected


def heap_look():
    f = gc.mem_free()
    if f < heap_min[0]:
        heap_min[0] = f
    if f < heap_min[1]:
        heap_min[1] = f


def heap_live():
    # the live data alone: collected first (outside the timed windows only)
    gc.collect()
    f = gc.mem_free()
    if f < heap_min[2]:
        heap_min[2] = f


t_boot = ticks_us()
heap_look()
import board as fwboard  # noqa: E402  (output safe at import)
import journal  # noqa: E402
import logstore  # noqa: E402

b = fwboard.Board()
b.init_devices()
# The log's 30 KB ring before the rest of the application (main.py takes it after importing
# it): this module's own bytecode is on the heap, which a unit's is not, so the free-heap
# figures below are a little worse than a unit's.
log = logstore.Log("/log", journal=journal.Journal(b.fram))
import config  # noqa: E402
import session as S  # noqa: E402
import limits as L  # noqa: E402
from app import App, PERIOD_US, HIST_BINS, HIST_BIN_US  # noqa: E402

res = {"period_us": PERIOD_US, "W": W, "freq": __import__("machine").freq()}
TPS = 1_000_000 // PERIOD_US  # ticks per second


def say(msg):
    print("# " + msg)


def cfg_bench():
    # hands_feet, 10 mA; the ramps last a whole window each; reversal on
    c = config.defaults()
    c["default_preset"] = "hands_feet"
    for p in c["presets"]:
        if p["name"] == "hands_feet":
            p["target_ua"] = 10_000
            p["ramp_up_s"] = max(L.RAMP_UP_S_MIN, W + 2)
            p["ramp_down_s"] = max(L.RAMP_DOWN_S_MIN, W + 2)
            p["duration_s"] = 1_200
            p["reverse"] = True
    ok, errs = config.validate(c)
    if not ok:
        raise ValueError("; ".join(errs))
    return c


# --- the rest of main.py's start-up -------------------------------------------------------
import cfgstore  # noqa: E402
import selftest  # noqa: E402
from version import VERSION  # noqa: E402

b.display.message("IONTO " + VERSION, "self-test...")
b.display.show()
log.open(b.reset_cause_name(), VERSION)
log.flush()
heap_look()
cfg0, source, errs = cfgstore.CfgStore("/").load()
ok_st, results = selftest.run(b, cfg0 is not None, errs[0] if errs else "")
res["selftest_failures"] = [r[0] for r in results if not r[1]]
log.selftest(ok_st, results)
heap_look()
app = App(b, cfg_bench(), True, out=sys.stdout, log=log, lock_heap=True, version=VERSION)
heap_look()
res["startup_ms"] = ticks_diff(ticks_us(), t_boot) // 1000
res["heap_free_min_startup"] = heap_min[0]
heap_min[1] = 1 << 29
heap_live()
res["heap_free_after_boot"] = heap_min[2]

# --- the free heap just before each planned collection (heap unlocked there) -------------------
slow_gc = app._slow
J_GC = 6  # app's _J_GC


probe = [True]  # off inside the timed windows: gc.mem_free() walks the heap (milliseconds)


def slow_heap(job, now_ms):
    if job == J_GC and probe[0]:
        heap_look()
    slow_gc(job, now_ms)


app._slow = slow_heap

# --- buttons injected into the loop's take() (a closure: no allocation per call) -------------
take0 = app._take
inj = [0]


def take_inj():
    m = take0()
    if inj[0]:
        m |= inj[0]
        inj[0] = 0
    return m


app._take = take_inj

# --- optional: cost per low-rate job (wrappers; the display step's runs heap-locked) ----------
jobs = {}  # job code -> [n, sum us, max us]; 0 = display step
if PROFILE:
    slow0 = app._slow
    step0 = app._disp_step
    jst = [[0, 0, 0] for _ in range(8)]

    def slow_w(job, now_ms):
        a = ticks_us()
        slow0(job, now_ms)
        d = ticks_diff(ticks_us(), a)
        r = jst[job]
        r[0] += 1
        r[1] += d
        if d > r[2]:
            r[2] = d

    def step_w():
        a = ticks_us()
        step0()
        d = ticks_diff(ticks_us(), a)
        r = jst[0]
        r[0] += 1
        r[1] += d
        if d > r[2]:
            r[2] = d

    app._slow = slow_w
    app._disp_step = step_w

    # the tick's own parts: fixed-arity wrappers (no argument tuples under the heap lock)
    part = [[0, 0, 0] for _ in range(6)]

    def _acc(i, d):
        r = part[i]
        r[0] += 1
        r[1] += d
        if d > r[2]:
            r[2] = d

    def wrap1(i, f):
        def w(x):
            a = ticks_us()
            r = f(x)
            _acc(i, ticks_diff(ticks_us(), a))
            return r
        return w

    def wrap2(i, f):
        def w(x, y):
            a = ticks_us()
            r = f(x, y)
            _acc(i, ticks_diff(ticks_us(), a))
            return r
        return w

    def wrap3(i, f):
        def w(x, y, z):
            a = ticks_us()
            r = f(x, y, z)
            _acc(i, ticks_diff(ticks_us(), a))
            return r
        return w

    app._measure = wrap2(0, app._measure)
    app._poll = wrap1(1, app._poll)
    app._stick = wrap3(2, app._stick)
    app._apply = wrap1(3, app._apply)
    app._bz_tick = wrap1(4, app._bz_tick)

# --- windows ------------------------------------------------------------------------------------
# A window is one app.run() call of W seconds inside one state (the ramps are configured to
# last longer than W): the loop's own statistics, reset (and the loop re-phased) before it.
# Between windows the session is moved on in short runs that are not counted.
wins = {}
SHORT = TPS // 10  # ticks per uncounted step (0.1 s)


def window(name, states):
    if app.s.state not in states:
        # (the contact check lasts a whole window only where the runner can open the circuit)
        wins[name] = {"skipped": "in state %s" % S.STATE_NAMES[app.s.state]}
        say("%s: skipped, in state %s" % (name, S.STATE_NAMES[app.s.state]))
        app.rephase()
        return
    gc0 = app.gc_runs
    app.reset_stats()
    probe[0] = False
    t0 = ticks_us()
    app.run(max_ticks=app.ticks + W * TPS)
    span = ticks_diff(ticks_us(), t0)
    probe[0] = True
    n, med, p99, mx, ov = app.tick_stats()
    wins[name] = {"ticks": n, "median_us": med, "p99_us": p99, "max_us": mx, "overruns": ov,
                  "gc_slots": app.gc_runs - gc0, "end": S.STATE_NAMES[app.s.state], "span_us": span}
    heap_look()  # the window's garbage since its last planned collection
    heap_live()
    say("%s: %r" % (name, wins[name]))
    app.rephase()  # the bookkeeping above is the bench's pause, not the loop's


def until(states, max_s):
    n = 0
    while app.s.state not in states and n < max_s * 10:
        app.run(max_ticks=app.ticks + SHORT)
        n += 1
    heap_look()
    app.rephase()


def press(btn):
    inj[0] = btn
    app.run(max_ticks=app.ticks + SHORT)


app.run(max_ticks=app.ticks + SHORT)
# contact check: no skin (the emulator's plant opens the circuit) for a whole window
print("@INJECT open")
app.rephase()
press(S.BTN_START)  # CONFIRM
press(S.BTN_START)  # CONTACT
app.run(max_ticks=app.ticks + 2)
window("contact", (S.CONTACT,))
print("@CLEAR open")
app.rephase()
until((S.RAMP_UP,), 5)
window("ramp_up", (S.RAMP_UP,))
until((S.TREAT,), 60)
press(S.BTN_UP)  # a target change: the display and the log follow
window("treat", (S.TREAT, S.RAMP_UP))
until((S.TREAT,), 60)
# the reversal at half-time: the session clock is moved to just before it
app.s.treat_ms = app.s.preset.duration_ms // 2 - 50
until((S.REV_DOWN,), 2)
window("reversal", (S.REV_DOWN,))
until((S.TREAT,), 60)
# the end: the clock moved to just before it, the ramp down to DONE
app.s.treat_ms = app.s.preset.duration_ms - 50
until((S.RAMP_DOWN,), 2)
window("ramp_down", (S.RAMP_DOWN,))
until((S.DONE,), 60)
res["end_state"] = S.STATE_NAMES[app.s.state]
res["fault"] = app.s.fault
say("end %s fault %d" % (res["end_state"], app.s.fault))
app.rephase()


res["windows"] = wins
if PROFILE:
    names = ("display_step", "events", "render", "status", "service", "format", "gc", "-")
    res["jobs"] = {names[i]: {"n": r[0], "mean_us": r[1] // r[0] if r[0] else 0, "max_us": r[2]}
                   for i, r in enumerate(jst) if r[0]}
    pn = ("measure", "buttons_poll", "session_tick", "output_apply", "buzzer_tick", "-")
    res["parts"] = {pn[i]: {"n": r[0], "mean_us": r[1] // r[0] if r[0] else 0, "max_us": r[2]}
                    for i, r in enumerate(part) if r[0]}

# --- the session's log written to flash once the output is off --------------------------------
n = 0
while log.pending() and n < 100:
    app.run(max_ticks=app.ticks + SHORT)
    n += 1
heap_look()
heap_live()
res["log_pending"] = log.pending()
res["log_session"] = log.session
res["heap_free_min"] = heap_min[0]
res["heap_free_min_session"] = heap_min[1]
res["heap_free_min_collected"] = heap_min[2]
gc.collect()
t = ticks_us()
gc.collect()
res["gc_collect_us"] = ticks_diff(ticks_us(), t)
res["heap_free_end"] = gc.mem_free()
b.safe()
import json  # noqa: E402

print("@RESULT " + json.dumps(res))
