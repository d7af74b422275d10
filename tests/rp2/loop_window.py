# On the emulated RP2040 (rp2 port, our image): the control loop through a few emulated seconds
# of a treatment, heap-locked as main.py runs it. Prints "@RESULT {json}" with the loop's own
# statistics per window (app.tick_stats) and the free heap around them. The host sends it after
# app_prelude.py (the App, step, finish) and option lines: W = seconds per window, RAMP_UP_S.
try:
    W
except NameError:
    W = 2

res = {"period_us": PERIOD_US, "windows": {}}
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
finish(res)
