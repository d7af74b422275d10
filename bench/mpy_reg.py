# Regulation per scenario: from START through RAMP UP and `treat_s` virtual seconds of TREAT.
#
#   micropython bench/mpy_reg.py SCENARIO [preset=hands_feet] [treat_s=120] [event_s=...]
#
# Sampled at the end of every tick: the plant's TRUE current (the firmware never sees it),
# the firmware's measured current (Meas.ua) and its ramp setpoint (Session.set_ua).
#   err_meas_ua   mean |measured - setpoint| over TREAT ticks
#   err_true_ua   mean |true - target| over TREAT ticks
#   overshoot_ua  max(true current, the plant's integrated peak) - target, from START on (>= 0)
#   settling_s    from TREAT entry to the last TREAT sample outside target +- 1 %; -1 if the
#                 window ends outside the band (not settled)
# event_s: move the scenario's first timed event to this many seconds after the output is
# first enabled (resistance_drop happens at 600 s, past a 2-minute window).
import mpy_common as C
import scenario as SC
import fwsim
import session as S

pos, opt = C.args()
NAME = pos[0]
PRESET = opt.get("preset", "hands_feet")
TREAT_S = float(opt.get("treat_s", 120))
spec = NAME
if "event_s" in opt:
    spec = SC.load(NAME)
    spec = {"name": spec["name"], "description": spec.get("description", ""), "load": spec["load"],
            "events": [dict(e) for e in spec["events"]]}
    spec["events"][0]["t_s"] = float(opt["event_s"])
u = fwsim.Unit(spec, C.cfg_fast() if opt.get("fast") else C.cfg_for(PRESET))  # fast=1: smoke test
s = u.s
p = u.plant
meas = u.app.meas
t0 = C.rt.ticks_ms()
u.press("START")
u.press("START")
p.peak_ua = 0
target = s.target_ua
band = target // 100
n = 0
e_meas = 0
e_true = 0
peak = 0
t_treat = None
t_last_out = None
end_us = None
last_in_band = True
while True:
    u.run_ticks(1, observe=False)
    now = u.now_ms()
    ua = p.current_ua()
    if ua > peak:
        peak = ua
    st = s.state
    if t_treat is None:
        if st == S.TREAT:
            t_treat = now
            end = now + int(TREAT_S * 1000)
        elif now > 240_000:  # compliance-limited loads may never get there
            break
        continue
    if st == S.TREAT:
        n += 1
        d = meas.ua - s.set_ua
        e_meas += d if d >= 0 else -d
        d = ua - target
        d = d if d >= 0 else -d
        e_true += d
        last_in_band = d <= band
        if not last_in_band:
            t_last_out = now
    if now >= end:
        break
peak = max(peak, int(p.peak_ua))
res = {
    "scenario": NAME,
    "reached_treat": 1 if t_treat is not None else 0,
    "treat_entry_s": t_treat / 1000 if t_treat is not None else -1,
    "err_meas_ua": e_meas / n if n else -1,
    "err_true_ua": e_true / n if n else -1,
    "overshoot_ua": peak - target if peak > target else 0,
    "settling_s": -1 if (t_treat is None or not last_in_band) else
    ((t_last_out - t_treat) / 1000 if t_last_out is not None else 0),
    "treat_ticks": n,
    "limited": 1 if s.limited else 0,
}
C.say("reg %s: %s (%d ms wall)" % (NAME, res, C.wall_ms(t0)))
C.emit(res)
