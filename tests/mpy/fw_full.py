# The one full-length session: IDLE -> CONFIRM -> CONTACT -> RAMP_UP -> TREAT -> REVERSING
# -> TREAT -> RAMP_DOWN -> DONE, palms, a 10 mA preset with the fastest ramps the limits
# allow (20 min of treatment is the shortest a preset may have). Observed per tick around
# every transition, in bulk (no per-tick Python) through the steady parts.
import vclock
import pins
import fwsim
import limits as L
import session as S
from fw_common import emit

cfg = fwsim.fast_cfg(target=10_000, ceiling=12_000, ramp_up_s=10, ramp_down_s=5, dose=600)
u = fwsim.Unit("palms", cfg=cfg)
p = u.s.preset
u.press("START")
emit("confirm_screen", u.text())
u.press("START")
u.until(lambda s: s.state == S.TREAT, 60)
u.run_s(1)
emit("treat_screen", u.text())
lefts = []
lefts.append(u.s.time_left_s)
# Steady treatment to just before half time, in bulk.
half = p.duration_ms // 2
while u.s.treat_ms < half - 3_000:
    u.run_s(min(20, (half - 2_000 - u.s.treat_ms) / 1000), observe=False)
    lefts.append(u.s.time_left_s)
    u._last_ua = None  # the bulk run was not watched tick by tick
emit("states_before_half", u.state_name())
u.until(lambda s: s.state == S.REV_DOWN, 10)
u.until(lambda s: s.state == S.TREAT, 40)
u.run_s(1)
emit("after_reverse", [u.state_name(), u.s.polarity, u.true_ua()])
while u.s.treat_ms < p.duration_ms - 3_000:
    u.run_s(min(20, (p.duration_ms - 2_000 - u.s.treat_ms) / 1000), observe=False)
    lefts.append(u.s.time_left_s)
    u._last_ua = None
emit("lefts", lefts)
u.until(lambda s: s.state == S.RAMP_DOWN, 10)
t_down = vclock.now_us()
u.until(lambda s: s.state == S.DONE, 30)
emit("ramp_down_ms", (vclock.now_us() - t_down) // 1000)
u.run_s(2)
emit("states", [S.STATE_NAMES[x] for x in u.states])
emit("end_reason", S.END_TEXT[u.s.end_reason])
emit("dose_mamin", u.s.dose_mamin())
emit("dose_uas", u.s.dose_uas)
emit("treat_ms", u.s.treat_ms)
emit("done_screen", u.text())
emit("enable", u.enable())
emit("true_ua", u.true_ua())
emit("fault", u.s.fault)
emit("max_step_ua", u.max_step_ua)
emit("max_cmd_up_ua", u.max_cmd_up_ua)
emit("max_cmd_down_ua", u.max_cmd_down_ua)
emit("peak_ua", u.peak_ua)
emit("polarity_edges", [[e[0] // 1000, e[2], e[3]] for e in u.pin_log if e[1] == pins.PIN_POLARITY])
emit("end_beeps_ms", u.buzzer_on_times(t_down))
emit("overruns", u.app.overruns)
emit("ui_errors", u.app.ui_errors)
emit("slews", [p.slew_up, p.slew_down])
