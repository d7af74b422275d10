# Regulation when the skin changes at once, judged on the plant's TRUE current.
#
#   micropython tests/mpy/fw_reg_step.py
#
# The firmware treats at 5 mA (palms, settled); the skin's resistance then falls to a fifth
# (sweat, a cut, a ring in the water) or rises fivefold (drying, a hand half out of the
# water) in one step, at a moment of the loop period. For 3 s after each step: the worst
# 1 ms mean of the true current (windows every 250 us) and its instantaneous peak, against
# the target; the lowest true current at a tick's end; the state after (a step is no fault
# and no pause).
import vclock
import fwsim
import limits as L
import session as S
from fw_common import emit

TARGET = 10_000
u = fwsim.Unit("palms", fwsim.fast_cfg(target=TARGET, ceiling=12_000, ramp_up_s=10, ramp_down_s=5, reverse=False))
s = u.s
p = u.plant


def step(name, r_from, r_to, phase_us):
    p.set_load(r_skin_ohm=r_from, r_skin_final_ohm=r_from)
    u.run_s(3.0, observe=False)  # settled on the first load
    assert s.state == S.TREAT, S.STATE_NAMES[s.state]
    u.run_ticks(1, observe=False)
    t_step = vclock.now_us() + phase_us
    box = [True]

    def hook(nw):
        if box[0] and nw >= t_step:
            box[0] = False
            p.set_load(r_skin_ohm=r_to, r_skin_final_ohm=r_to)
    vclock.add_hook(hook)
    p.peak_ua = 0
    worst = 0
    low = TARGET
    try:
        while vclock.now_us() < t_step + 3_000_000:
            u.run_ticks(1, observe=False)
            t = vclock.now_us()
            if u.true_ua() < low:
                low = u.true_ua()  # the step took effect: a rise first costs current
            k = 0
            while k < L.LOOP_PERIOD_US:
                m = p.mean_ua(t - k - 1_000, t - k)
                if m > worst:
                    worst = m
                k += 250
    finally:
        vclock.remove_hook(hook)
    emit(name, {"worst_1ms_ua": worst, "peak_ua": int(p.peak_ua), "true_ua": u.true_ua(), "low_ua": low,
                "fault": s.fault, "state": S.STATE_NAMES[s.state]})


u.start_treatment()
u.run_s(2.0, observe=False)
step("drop", 4_500, 500, 3_700)
step("rise", 500, 3_500, 6_100)
emit("ui_errors", u.app.ui_errors)
