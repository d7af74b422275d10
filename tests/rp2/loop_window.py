# On the emulated RP2040 (rp2 port, our image): the control loop through a few emulated seconds
# of a treatment, heap-locked as main.py runs it. Prints "@RESULT {json}" with the loop's own
# statistics per window (app.tick_stats) and the free heap around them. Options (lines the
# host prepends): W = seconds per window.
import gc
import json
import micropython

try:
    W
except NameError:
    W = 2

import board as fwboard  # noqa: E402  (output safe at import)
import config  # noqa: E402
import session as S  # noqa: E402
from app import App, PERIOD_US  # noqa: E402

TPS = 1_000_000 // PERIOD_US
c = config.defaults()
c["default_preset"] = "hands_feet"
for p in c["presets"]:
    if p["name"] == "hands_feet":
        p["target_ua"] = 10_000
        p["ramp_up_s"] = 15
b = fwboard.Board()
b.init_devices()
app = App(b, c, True, lock_heap=True)
take0 = app._take
inj = [0]


def take():
    m = take0()
    if inj[0]:
        m |= inj[0]
        inj[0] = 0
    return m


app._take = take
res = {"period_us": PERIOD_US, "windows": {}}


def step(n):
    app.run(max_ticks=app.ticks + n)


step(TPS // 10)
for _ in range(2):
    inj[0] = S.BTN_START
    step(TPS // 5)
n = 0
while app.s.state != S.RAMP_UP and n < 30:
    step(TPS // 10)
    n += 1
for name in ("ramp_up", "ramp_up_display"):
    gc.collect()
    free0 = gc.mem_free()
    gc0 = app.gc_runs
    app.reset_stats()
    st0 = S.STATE_NAMES[app.s.state]
    app.run(max_ticks=app.ticks + W * TPS)
    n, med, p99, mx, ov = app.tick_stats()
    res["windows"][name] = {"state": st0, "end": S.STATE_NAMES[app.s.state], "ticks": n, "median_us": med,
                            "p99_us": p99, "max_us": mx, "overruns": ov, "free_before": free0,
                            "fault": app.s.fault, "ui_errors": app.ui_errors,
                            "gc_slots": app.gc_runs - gc0}
b.safe()
# As main.py's finally: the watchdog the session armed is fed from a timer while the chip sits at
# its REPL with the output off (otherwise it resets the chip a second later, under the next run).
if b.output.enable_level() == 0:
    b.feed_from_timer(250)
print("@RESULT " + json.dumps(res))
