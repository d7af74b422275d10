# Fault reaction: virtual ms from the onset of a fault in TREAT to the output enable pin low
# (contact_lost: to the setpoint PWM at or below the contact-test current, since a lifted
# hand drops the command and pauses, it does not fault).
#
#   micropython bench/mpy_faults.py KIND [settle_s=3]
#
# KIND: i2c_nack, i2c_stuck, over_current (INA219 stuck reading 31 mA), output_dead, short,
# hw_limit, contact_lost. The pins are watched through the machine mock's listeners, so the
# time is the virtual time at which the firmware wrote the pin.
import mpy_common as C
import machine
import vclock
import fwsim
import pins
import session as S
import limits as L
from app import PERIOD_US

pos, opt = C.args()
KIND = pos[0]
SETTLE_S = float(opt.get("settle_s", 3))

u = fwsim.Unit("palms", C.cfg_fast())
u.start_treatment()
u.run_s(SETTLE_S, observe=False)
seen = {"en_low": None, "sp_zero": None}


def on_enable(pid, level):
    if not level and seen["en_low"] is None:
        seen["en_low"] = vclock.now_us()


_TEST_DUTY = (L.CONTACT_TEST_UA * 65535 + pins.SETPOINT_FULL_SCALE_UA - 1) // pins.SETPOINT_FULL_SCALE_UA


def on_setpoint(pid, mean):
    # contact lost: the command drops to the contact-test current (or 0) at once
    if mean <= _TEST_DUTY and seen["sp_zero"] is None:
        seen["sp_zero"] = vclock.now_us()


machine.sim_pin(pins.PIN_OUTPUT_ENABLE).on_change(on_enable)
machine.sim_pwm(pins.PIN_SETPOINT_PWM).on_change(on_setpoint)
before = S.STATE_NAMES[u.s.state]
sb = u.sb
p = u.plant
t0 = vclock.now_us()
if KIND == "i2c_nack" or KIND == "i2c_stuck":
    sb.fault(KIND)
elif KIND == "over_current":
    sb.fault("sensor_stuck", 31_000)
elif KIND == "output_dead":
    sb.fault("output_dead")
elif KIND == "short":
    p.short()
elif KIND == "hw_limit":
    # The comparator trips (as on a transient above HW_LIMIT_UA): it opens the return path and
    # pulls its pin low; the plant's own path for this, minus the transient.
    p.hw_limit_tripped = True
    p.on_trip(True)
elif KIND == "contact_lost":
    p.lift()
else:
    raise ValueError("unknown fault kind %r" % KIND)
key = "sp_zero" if KIND == "contact_lost" else "en_low"
for _ in range(5 * 1_000_000 // PERIOD_US):
    if seen[key] is not None:
        break
    u.run_ticks(1, observe=False)
u.run_s(0.1, observe=False)
t = seen[key]
res = {
    "kind": KIND,
    "reaction_ms": (t - t0) / 1000 if t is not None else -1,
    "state_before": before,
    "state_after": S.STATE_NAMES[u.s.state],
    "fault": u.s.fault,
}
C.say("fault %s: %s ms, %s -> %s (fault code %d)" % (KIND, res["reaction_ms"], before, res["state_after"], u.s.fault))
C.emit(res)
