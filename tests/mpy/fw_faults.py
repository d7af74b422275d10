# Safety faults during a treatment on the in-process virtual unit. argv[1] names the fault;
# the unit reaches TREAT with a fast preset (5 mA, 10 s ramp), the fault is injected at a
# tick boundary, and the script reports how the firmware reacted: virtual us from onset to
# the enable line low, the fault latched, what the display says, whether STOP clears it
# while the cause is present and after it is gone.
import sys
import machine
import pins
import vclock
import fwsim
import limits as L
import session as S
from regulator import ua_to_duty
from fw_common import emit, fault_name

kind = sys.argv[1]
scenario = "short_one_tray" if kind == "short_scenario" else "palms"
u = fwsim.Unit(scenario, cfg=fwsim.fast_cfg())
ina = u.sb.ina219


def gone():  # the cause removed
    u.sb.clear_faults()


if kind == "short_scenario":
    # Both electrodes in one tray from the start: the contact test current (50 uA) is too
    # small to judge a short; the ramp must find it before the current is of any size.
    u.press("START")
    u.press("START")
    u.until(lambda s: s.state in (S.FAULT, S.TREAT), 30)
    emit("peak_ua", u.peak_ua)
    emit("states", [S.STATE_NAMES[x] for x in u.states])
    t_inj = None
else:
    u.start_treatment()
    u.run_s(1)
    emit("before_ua", u.true_ua())
    emit("before_state", u.state_name())
    t_inj = vclock.now_us()
    if kind in ("i2c_nack", "i2c_stuck"):
        u.fault(kind)
    elif kind == "sensor_stuck":
        u.fault("sensor_stuck")  # reads what flows now, for ever: plausible until STOP
        u.press("STOP", 0)
        t_inj = vclock.now_us()
    elif kind == "sensor_over":
        u.fault("sensor_stuck", 31_000)  # the sensor reads 31 mA
    elif kind == "stale":
        ina.write_reg(0, ina.peek(0) & ~7)  # the INA219 powered down: no new conversions

        def gone():
            ina.write_reg(0, ina.peek(0) | 7)
    elif kind == "output_dead":
        u.fault("output_dead")
    elif kind == "short":
        u.plant.short()

        def gone():
            u.plant.immerse()
    elif kind == "plant_over":
        # The source runs at twice its setpoint (a failed DAC reference): true current high.
        p = u.plant
        orig = p.set_duty
        p.set_duty = lambda d: orig(d * 2 if d * 2 < 65535 else 65535)
        orig(p.duty * 2)

        def gone():
            p.set_duty = orig
    elif kind == "hw_limit":
        # The comparator trips under current (what only a collapsed load can cause now that
        # the clamp holds the voltage at the load's need): the plant's own path, minus the
        # transient. (A hand slammed back into the water no longer trips it: tests/test_sensing.py.)
        u.plant.hw_limit_tripped = True
        u.plant.on_trip(True)
    elif kind == "stuck_on":
        # Welded switch and a leaking source: after STOP the current goes on with the
        # output off. Fault, and the watchdog is starved so the chip resets.
        p = u.plant
        p.set_faults(stuck_on=True)
        floor = ua_to_duty(3_000)
        orig = p.set_duty
        p.set_duty = lambda d: orig(d if d > floor else floor)
        u.press("STOP", 0)
        t_inj = vclock.now_us()

if t_inj is not None:
    t_reset = None
    try:
        dt = u.ticks_until(lambda: u.s.state == S.FAULT and not u.enable(), 1_500)
        emit("react_us", dt)
    except (fwsim.Reset, AssertionError):
        emit("react_us", None)
    emit("max_true_ua_before_cut", u.peak_ua)
    emit("peak_during", u.plant.peak_ua)
emit("state", u.state_name())
emit("fault", fault_name(u.s.fault))
emit("enable_pin", u.enable())
emit("end_reason", S.END_TEXT[u.s.end_reason])
try:
    u.run_s(0.05)
except fwsim.Reset:
    pass
emit("true_ua_50ms", u.true_ua())
emit("cmd_ua", u.s.cmd_ua)
try:
    u.run_s(0.3)
except fwsim.Reset:
    pass
emit("screen", u.text())
emit("buzzing", u.sb.panel.buzzing())

if kind == "stuck_on":
    # Current flows with the output off: the loop stops feeding the watchdog.
    try:
        u.run_s(3)
        emit("reset", None)
    except fwsim.Reset:
        emit("reset", u.resets[0][1])
        emit("reset_after_ms", (u.resets[0][0] - t_inj) // 1000)
        emit("enable_pin_at_reset", u.enable())
    sys.exit(0)

# Latch: STOP while the cause is present does not clear it.
u.press("STOP")
emit("after_stop_present", u.state_name())
emit("refuse_present", u.s.refuse)
gone()
u.run_s(0.2)
u.press("STOP")
emit("after_stop_gone", u.state_name())
emit("enable_after_clear", u.enable())
emit("resets", len(u.resets))
