# Allocations in the safety path: a palms session through CONTACT, RAMP UP and TREAT with
# App(lock_heap=True), the tick running under micropython.heap_lock() (the low-rate work in
# App._slow unlocks). Any allocation there raises MemoryError: 0 errors, 0 allocations.
#
#   micropython bench/mpy_heaplock.py [treat_s=30]
#
# To say WHERE an allocation happened, the stages App.tick calls through its cached bound
# methods (self._measure, self._stick, ...) are wrapped from outside by fixed-arity closures,
# which allocate nothing themselves. After a MemoryError the harness records the stage and
# the session state, lets the next tick run unlocked (so a one-off lazy allocation happens
# once and the session can go on) and carries on locked: a per-tick allocation shows as an
# error every other tick, a lazy one as a single error.
#
# Stage "loop_entry" records an allocation on entering App._loop under the lock (an earlier
# App bound `self.tick` there; it now binds it once in __init__, so none is expected).
import mpy_common as C
import machine
import fwsim
import session as S
from app import PERIOD_US

pos, opt = C.args()
TREAT_S = float(opt.get("treat_s", 30))
MAX_ERR = 200

u = fwsim.Unit("palms", C.cfg_fast(), lock_heap=True)
app = u.app
where = [None, None]  # [App.tick stage, machine-mock method] the MemoryError went through
errors = {}  # "stage@STATE" or "stage>mock.Class.method@STATE" -> count


# The simulated hardware's methods are Python too, and some allocate under the lock (rp2's
# are C and do not). Wrapped at class level, innermost first, so an error that went through
# one is keyed "stage>mock.Class.method": the mock's allocation (or the firmware's below a
# listener it calls), not the firmware's own. The others are the firmware's.
def _mock(cls, name, opt):
    f = getattr(cls, name)
    tag = "mock.%s.%s" % (cls.__name__, name)
    if opt:
        def w(self, x=None):
            try:
                return f(self) if x is None else f(self, x)
            except MemoryError:
                if where[1] is None:
                    where[1] = tag
                raise
    else:
        def w(self):
            try:
                return f(self)
            except MemoryError:
                if where[1] is None:
                    where[1] = tag
                raise
    setattr(cls, name, w)


for cls, name, opt in ((machine.Pin, "value", True), (machine.Pin, "on", False), (machine.Pin, "off", False),
                       (machine.PWM, "duty_u16", True), (machine.PWM, "freq", True),
                       (machine.PWM, "deinit", False), (machine.ADC, "read_u16", False),
                       (machine.WDT, "feed", False)):
    _mock(cls, name, opt)


def _mk(f, tag, n):
    # One closure per arity: *args would allocate a tuple under the lock.
    if n == 0:
        def w():
            try:
                return f()
            except MemoryError:
                where[0] = tag
                raise
    elif n == 1:
        def w(a):
            try:
                return f(a)
            except MemoryError:
                where[0] = tag
                raise
    elif n == 2:
        def w(a, b):
            try:
                return f(a, b)
            except MemoryError:
                where[0] = tag
                raise
    else:
        def w(a, b, c):
            try:
                return f(a, b, c)
            except MemoryError:
                where[0] = tag
                raise
    return w


STAGES = (("_measure", 2), ("_poll", 1), ("_take", 0), ("_stick", 3), ("_apply", 1),
          ("_ok_to_feed", 0), ("_feed", 0), ("_bz_tick", 1), ("_disp_step", 0))
for name, n in STAGES:
    setattr(app, name, _mk(getattr(app, name), name[1:], n))

ticks_locked = [0]  # ticks that ran to the end under the lock


def step(n):
    """Run n ticks locked; on MemoryError record it, run one tick unlocked, go on."""
    goal = app.ticks + n
    while app.ticks < goal:
        t = app.ticks
        where[0] = where[1] = None
        try:
            app.run(max_ticks=goal)
            ticks_locked[0] += app.ticks - t
            return
        except MemoryError:
            ticks_locked[0] += app.ticks - t
            stage = where[0]
            if stage is None:
                stage = "loop_entry" if app.ticks == t and "tick" not in app.__dict__ else "loop"
            if where[1] is not None:
                stage += ">" + where[1]
            key = "%s@%s" % (stage, S.STATE_NAMES[u.s.state].replace(" ", "_"))
            errors[key] = errors.get(key, 0) + 1
            if sum(errors.values()) == 1 or errors[key] == 1:
                C.say("heaplock: MemoryError in %s (tick %d)" % (key, app.ticks))
            if sum(errors.values()) >= MAX_ERR:
                raise
            if stage == "loop_entry":
                app.tick = app.tick  # bound method made once, outside the lock
                continue
            app.lock_heap = False
            try:
                app.run(max_ticks=app.ticks + 1)
            finally:
                app.lock_heap = True


def run_s(s):
    step(int(s * 1_000_000 // PERIOD_US))


t0 = C.rt.ticks_ms()
ok = True
try:
    u.sb.handle({"cmd": "press", "button": "START"})
    run_s(0.3)
    u.sb.handle({"cmd": "press", "button": "START"})
    run_s(0.3)
    for _ in range(300):
        if u.s.state == S.TREAT:
            break
        run_s(1)
    reached = u.s.state == S.TREAT
    if reached:
        run_s(TREAT_S)
except MemoryError:
    ok = False
    reached = u.s.state == S.TREAT
n_err = sum(errors.values())
n_mock = sum(v for k, v in errors.items() if ">mock." in k)

C.say("heaplock: %d ticks locked, %d MemoryErrors, state %s, %d ms wall"
      % (ticks_locked[0], n_err, S.STATE_NAMES[u.s.state], C.wall_ms(t0)))
C.emit({
    "memory_errors": n_err,
    "memory_errors_via_mock": n_mock,
    "ticks_locked": ticks_locked[0],
    "reached_treat": 1 if reached else 0,
    "completed": 1 if ok else 0,
    "state": S.STATE_NAMES[u.s.state],
    "errors": errors,
})
