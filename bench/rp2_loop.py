# The control loop on the RP2040 (rp2 port, on the emulated chip): the unit's own start-up, then
# a treatment through every state where current can flow, each held for a window of W seconds,
# timed by the loop itself (app.tick_stats: tick cost histogram, worst tick, overruns).
#
# Sent over the raw REPL with the firmware's modules on the board's filesystem; the host
# prepends its options as lines:
#   W = 3             seconds per state window (contact, ramp up, treat, reversal, ramp down)
#   FAULTS = ()       fault kinds to inject after the session ("over", "short", "i2c", "stale",
#                     "limiter", "open"): the line "@INJECT kind" asks the emulator for the
#                     condition on the pins; it times the enable pin's fall itself
# Prints one "@RESULT {json}" line. Everything runs heap-locked (App lock_heap=True, as main.py):
# an allocation in the safety path raises MemoryError and ends the run with the output off.
import sys
import gc
import time
import micropython

try:
    W
except NameError:
    W = 3
try:
    FAULTS
except NameError:
    FAULTS = ()
try:
    PROFILE  # True: time each kind of low-rate job (wrappers add a little to every tick)
except NameError:
    PROFILE = False

ticks_us = time.ticks_us
ticks_diff = time.ticks_diff

import board as fwboard  # noqa: E402  (output safe at import)
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


# --- start-up as main.py does it (less the session log: see hw/rp2/README.md) ----------------
t_boot = ticks_us()
b = fwboard.Board()
b.init_devices()
import cfgstore  # noqa: E402
import logstore  # noqa: E402,F401
import selftest  # noqa: E402
from version import VERSION  # noqa: E402

b.display.message("IONTO " + VERSION, "self-test...")
b.display.show()
cfg0, source, errs = cfgstore.CfgStore("/").load()
ok_st, results = selftest.run(b, cfg0 is not None, errs[0] if errs else "")
res["selftest_failures"] = [r[0] for r in results if not r[1]]
app = App(b, cfg_bench(), True, out=sys.stdout, lock_heap=True, version=VERSION)
res["startup_ms"] = ticks_diff(ticks_us(), t_boot) // 1000
gc.collect()
res["heap_free_after_boot"] = gc.mem_free()

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
heap_min = [1 << 29]
SHORT = TPS // 10  # ticks per uncounted step (0.1 s)


def heap_look():
    f = gc.mem_free()
    if f < heap_min[0]:
        heap_min[0] = f


def window(name, states):
    if app.s.state not in states:
        # (the contact check lasts a whole window only where the runner can open the circuit)
        wins[name] = {"skipped": "in state %s" % S.STATE_NAMES[app.s.state]}
        say("%s: skipped, in state %s" % (name, S.STATE_NAMES[app.s.state]))
        app.rephase()
        return
    gc0 = app.gc_runs
    app.reset_stats()
    t0 = ticks_us()
    app.run(max_ticks=app.ticks + W * TPS)
    span = ticks_diff(ticks_us(), t0)
    n, med, p99, mx, ov = app.tick_stats()
    wins[name] = {"ticks": n, "median_us": med, "p99_us": p99, "max_us": mx, "overruns": ov,
                  "gc_slots": app.gc_runs - gc0, "end": S.STATE_NAMES[app.s.state], "span_us": span}
    heap_look()
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
res["heap_free_min"] = heap_min[0]
if PROFILE:
    names = ("display_step", "events", "render", "status", "service", "format", "gc", "-")
    res["jobs"] = {names[i]: {"n": r[0], "mean_us": r[1] // r[0] if r[0] else 0, "max_us": r[2]}
                   for i, r in enumerate(jst) if r[0]}
    pn = ("measure", "buttons_poll", "session_tick", "output_apply", "buzzer_tick", "-")
    res["parts"] = {pn[i]: {"n": r[0], "mean_us": r[1] // r[0] if r[0] else 0, "max_us": r[2]}
                    for i, r in enumerate(part) if r[0]}

# --- fault reactions: the emulator applies the condition and times the enable pin --------------
react = {}
for kind in FAULTS:
    until((S.IDLE,), 0)
    for _ in range(4):
        if app.s.state == S.IDLE:
            break
        press(S.BTN_STOP)
    press(S.BTN_START)
    press(S.BTN_START)
    until((S.RAMP_UP,), 5)
    app.s.ramp.reset(app.s.target_ua)  # no need to wait for the ramp: full current at once
    until((S.TREAT,), 5)
    app.run(max_ticks=app.ticks + TPS // 2)
    st0 = app.s.state
    app.reset_stats()
    app.rephase()
    print("@INJECT " + kind)
    until((S.FAULT, S.PAUSED), 1)
    app.run(max_ticks=app.ticks + TPS // 10)
    react[kind] = {"from": S.STATE_NAMES[st0], "to": S.STATE_NAMES[app.s.state], "fault": app.s.fault}
    print("@CLEAR " + kind)
    app.rephase()
    app.run(max_ticks=app.ticks + TPS // 10)
res["reactions"] = react
gc.collect()
t = ticks_us()
gc.collect()
res["gc_collect_us"] = ticks_diff(ticks_us(), t)
res["heap_free_end"] = gc.mem_free()
b.safe()
import json  # noqa: E402

print("@RESULT " + json.dumps(res))
