# Session transitions on the in-process virtual unit (argv[1] names the topic). Results as
# "@R [key, value]" lines for tests/test_firmware_e2e.py.
import sys
import vclock
import machine
import pins
import fwsim
import limits as L
import session as S
from fw_common import emit

topic = sys.argv[1]
names = S.STATE_NAMES

if topic == "confirm":
    u = fwsim.Unit("palms")
    u.press("START")
    emit("after_start", u.state_name())
    emit("confirm_screen", u.text())
    emit("enable_confirm", u.enable())
    u.run_s(L.CONFIRM_TIMEOUT_MS / 1000 + 0.5)
    emit("after_timeout", u.state_name())
    u.press("START")
    u.press("STOP")
    emit("after_stop", u.state_name())
    emit("idle_screen", u.text())
    emit("enable_ever", [e for e in u.pin_log if e[1] == pins.PIN_OUTPUT_ENABLE and e[2]])

elif topic == "mode":
    u = fwsim.Unit("palms")
    seen = [u.s.preset.name]
    shown = [u.text()[1]]
    for _ in range(4):
        u.press("MODE")
        seen.append(u.s.preset.name)
        shown.append(u.text()[1])
    emit("presets", seen)
    emit("shown", shown)
    u.press("START")
    u.press("MODE")
    emit("mode_in_confirm", [u.state_name(), u.s.preset.name])
    u.press("STOP")

elif topic == "updown":
    u = fwsim.Unit("palms", cfg=fwsim.fast_cfg(target=5_000, ceiling=6_000))
    u.press("UP")  # IDLE: not an adjustment
    emit("idle_target", u.s.target_ua)
    u.start_treatment()
    u.run_s(1)
    u.press("MODE")
    emit("mode_in_treat", [u.state_name(), u.s.preset.name])
    set0 = u.s.set_ua
    u.sb.handle({"cmd": "press", "button": "UP"})
    u.run_s(0.1)
    emit("target_after_up", u.s.target_ua)
    emit("set_rise_100ms", u.s.set_ua - set0)  # through the ramp, not a jump
    u.press("UP")
    u.press("UP")
    emit("target_at_ceiling", u.s.target_ua)
    u.until(lambda s: s.state == S.TREAT and s.set_ua == s.target_ua, 10)
    u.run_s(1)
    emit("true_at_ceiling", u.true_ua())
    u.press("DOWN")
    emit("target_after_down", u.s.target_ua)
    u.run_s(2)
    emit("true_after_down", u.true_ua())
    emit("max_step_ua", u.max_step_ua)
    emit("max_cmd_up_ua", u.max_cmd_up_ua)
    emit("peak_ua", u.peak_ua)

elif topic == "stop":
    u = fwsim.Unit("palms", cfg=fwsim.fast_cfg(target=8_000, ceiling=8_000, ramp_up_s=10))
    u.start_treatment()
    u.run_s(1)
    v = u.s.set_ua
    emit("set_before", v)
    u.max_cmd_down_ua = 0
    t0 = vclock.now_us()
    u.sb.handle({"cmd": "press", "button": "STOP"})
    u.until(lambda s: s.state == S.STOPPED, 10)
    emit("stop_ms", (vclock.now_us() - t0) // 1000)
    emit("states", [names[x] for x in u.states[-3:]])
    emit("max_cmd_down_ua", u.max_cmd_down_ua)
    emit("max_step_ua", u.max_step_ua)
    u.run_s(0.5)
    emit("enable", u.enable())
    emit("true_ua", u.true_ua())
    emit("end_reason", S.END_TEXT[u.s.end_reason])
    emit("screen", u.text())

elif topic == "pulsed":
    cfg = fwsim.fast_cfg(pulsed={"freq_hz": 1_000, "duty_pct": 50})
    u = fwsim.Unit("palms", cfg=cfg)
    u.start_treatment()
    u.run_s(1)
    g = machine.sim_pwm(pins.PIN_PULSE_GATE)
    emit("gate", [g.enabled, g.freq, g.duty_u16])
    emit("screen", u.text())
    emit("set_avg_ua", u.s.set_avg_ua)
    emit("set_ua", u.s.set_ua)
    emit("state", u.state_name())
    # The true current over one gate period averages to about half the setpoint.
    tot = 0
    n = 0
    for _ in range(100):
        vclock.advance(10)
        tot += u.true_ua()
        n += 1
    emit("avg_true_ua", tot // n)

elif topic == "contact":
    u = fwsim.Unit("palms", cfg=fwsim.fast_cfg())
    u.start_treatment()
    u.run_s(2)
    target = u.s.target_ua
    emit("before", [u.state_name(), u.true_ua()])
    t0 = vclock.now_us()
    u.plant.lift()
    dt = u.ticks_until(lambda: u.s.state == S.PAUSED, 100)
    emit("pause_ms", dt // 1000)
    emit("cmd_at_pause", u.s.cmd_ua)
    emit("set_at_pause", u.s.set_ua)
    t_treat = u.s.treat_ms
    u.run_s(3)
    emit("treat_ms_frozen", u.s.treat_ms - t_treat)
    emit("paused_screen", u.text())
    emit("pause_beeps_ms", u.buzzer_on_times(t0))
    emit("enable_paused", u.enable())
    u.plant.immerse()
    u.peak_ua = 0
    u.max_step_ua = 0
    u._last_ua = None
    u.until(lambda s: s.state == S.RAMP_UP, 5)
    emit("set_at_resume", u.s.set_ua)
    u.until(lambda s: s.state == S.TREAT, 20)
    u.run_s(1)
    emit("after", [u.state_name(), u.true_ua()])
    emit("peak_after_immersion", u.peak_ua)
    emit("target", target)
    emit("max_step_ua", u.max_step_ua)
    emit("max_cmd_up_ua", u.max_cmd_up_ua)
    emit("treat_ms_running", u.s.treat_ms - t_treat)

elif topic == "compliance":
    u = fwsim.Unit("soft_water")
    u.press("START")
    u.press("START")
    u.until(lambda s: s.limited, 60)
    u.run_s(1)
    emit("state", u.state_name())
    emit("screen", u.text())
    emit("limit_reason", u.s.limit_reason)
    t = u.s.treat_ms
    u.run_s(10)
    emit("still", [u.state_name(), u.s.limited, u.s.treat_ms - t])
    emit("true_ua", u.true_ua())
    emit("target", u.s.target_ua)
    emit("fault", u.s.fault)

elif topic == "glyco":
    # The shipped glycopyrrolate preset, chosen with MODE as the nurse does.
    u = fwsim.Unit("armpits")
    for _ in range(8):
        if u.s.preset.name == "glycopyrrolate":
            break
        u.press("MODE")
    emit("preset", [u.s.preset.name, u.s.preset.reverse])
    u.start_treatment()
    half = u.s.preset.duration_ms // 2
    for _ in range(40):  # in bulk: no per-tick Python
        if u.s.treat_ms >= half + 10_000 or u.s.state != S.TREAT:
            break
        u.run_s(min(30, (half + 11_000 - u.s.treat_ms) / 1000), observe=False)
    emit("treat_ms", u.s.treat_ms)
    emit("state", u.state_name())
    emit("polarity_edges", [e for e in u.pin_log if e[1] == pins.PIN_POLARITY])
    emit("reversed", u.s.reversed)
    emit("true_ua", u.true_ua())
