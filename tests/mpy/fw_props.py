# Invariants under random sequences (seeded, so every run is the same): random presses,
# patient events (lift, immerse, short, resistance jumps) and injected faults, each for
# SECONDS of virtual time on a fast preset, every tick checked:
#   output disabled in IDLE, DONE, STOPPED and FAULT;
#   true current never above the preset ceiling (+ tolerance);
#   the commanded current never rises faster than ramp + trim allow;
#   after re-immersion the true current never overshoots the target.
# argv: first seed, number of seeds, seconds each.
import sys
import vclock
import fwsim
import limits as L
import session as S
from fw_common import emit, Rng

first = int(sys.argv[1])
count = int(sys.argv[2])
seconds = int(sys.argv[3])
BUTTONS = ("START", "START", "START", "STOP", "UP", "UP", "DOWN", "MODE")
SCENARIOS = ("palms", "soles", "armpits", "noisy_contact", "palms")
FAULTS = ("i2c_nack", "i2c_stuck", "sensor_stuck", "output_dead")
# Ramp (1 mA/s) plus trim (1 mA/s) per tick (one loop period), plus rounding: the largest
# allowed rise.
UP_MAX = (L.RAMP_UP_MAX_UA_S + L.TRIM_ERR_MAX_UA * 1000 // L.TRIM_TI_MS) * L.LOOP_PERIOD_MS // 1000 + 2

for seed in range(first, first + count):
    r = Rng(seed)
    sc = r.pick(SCENARIOS)
    cfg = fwsim.fast_cfg(target=4_000 + 500 * r.below(5), ceiling=8_000, extra=r.below(2) == 0)
    u = fwsim.Unit(sc, cfg=cfg)
    u.check = True
    end = vclock.now_us() + seconds * 1_000_000
    events = []
    fault_on = False
    overshoot = 0
    resumes = 0
    watch_resume = False
    resets = 0
    if r.below(4):
        u.start_treatment(60)  # most sequences begin with the nurse starting a treatment
    while vclock.now_us() < end:
        k = r.below(10)
        if k < 5:
            b = r.pick(BUTTONS)
            u.sb.handle({"cmd": "press", "button": b})
            events.append(b)
        elif k == 5 and u.plant.contact == "immersed":
            u.plant.lift()
            events.append("lift")
        elif k == 6 and u.plant.contact != "immersed":
            u.plant.immerse()
            events.append("immerse")
            watch_resume = not fault_on
        elif k == 7 and (fault_on or r.below(3) == 0):
            if fault_on:
                u.sb.clear_faults()
                fault_on = False
                events.append("clear")
            else:
                f = r.pick(FAULTS)
                u.fault(f)
                fault_on = True
                events.append(f)
        elif k == 8 and r.below(4) == 0 and u.plant.contact == "immersed":
            u.plant.short()
            events.append("short")
        elif k == 9:
            u.plant.set_load(r_series_ohm=300 + 200 * r.below(8))
            events.append("load")
        # Hold each situation 0.1 .. 3 s: a patient is not faster than that.
        n = 50 + r.below(1_450)
        for _ in range(n):
            try:
                u.run_ticks(1)
            except fwsim.Reset:
                resets += 1
                break
            if watch_resume and u.s.state in (S.RAMP_UP, S.TREAT, S.REV_UP):
                resumes += 1
                watch_resume = False
                u.peak_ua = 0
            if u.s.state == S.PAUSED or u.s.state == S.FAULT:
                watch_resume = watch_resume and u.s.state == S.PAUSED
            if not fault_on and u.plant.contact == "immersed" and u.s.state in (S.RAMP_UP, S.TREAT, S.REV_UP):
                lim = u.s.target_ua + L.CEILING_TOL_UA
                if u.peak_ua > lim and u.peak_ua - lim > overshoot:
                    overshoot = u.peak_ua - lim
        if resets:
            break
    emit("seed", [seed, sc, len(events), " ".join(events[:40])])
    emit("violations_%d" % seed, u.violations[:5])
    emit("max_cmd_up_%d" % seed, [u.max_cmd_up_ua, UP_MAX])
    emit("overshoot_%d" % seed, overshoot)
    emit("states_%d" % seed, sorted(set(S.STATE_NAMES[x] for x in u.states)))
    emit("resets_%d" % seed, resets)
