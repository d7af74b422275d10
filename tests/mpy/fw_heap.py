# A treatment with the heap locked: START, contact, ramp, TREAT and minutes of treatment,
# a nurse's UP and a hand lifted and put back, all under micropython.heap_lock() (the App
# lifts it only for the low-rate display and event work). Any allocation on the safety
# path would raise MemoryError here.
# argv[1] "cached": store App.tick's bound method on the instance first (then `self.tick`
# in App._loop is a plain lookup, not a new bound-method object made under the lock).
import sys
import fwsim
import session as S
from fw_common import emit

u = fwsim.Unit("palms", cfg=fwsim.fast_cfg(), lock_heap=True)
# and create the setpoint PWM before the lock (Output makes it on the first nonzero setpoint).
if sys.argv[1] == "cached":
    u.app.tick = u.app.tick
    u.b.output.set_ua(100)
    u.b.output.set_ua(0)
err = None
try:
    u.start_treatment()
    u.run_s(10)
    u.press("UP")
    u.run_s(20)
    u.plant.lift()
    u.run_s(2)
    u.plant.immerse()
    u.until(lambda s: s.state == S.TREAT, 30)
    u.run_s(120, observe=False)
except MemoryError as e:
    err = repr(e)
    sys.print_exception(e)
emit("error", err)
emit("state", u.state_name())
emit("treat_ms", u.s.treat_ms)
emit("ticks", u.app.ticks)
emit("ui_errors", [u.app.ui_errors, u.app.ui_error])
emit("states", [S.STATE_NAMES[x] for x in u.states])
emit("true_ua", u.true_ua())
