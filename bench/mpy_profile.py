# Where a virtual unit's tick goes: an exclusive-time breakdown of the firmware's tick and the
# simulated board under it (fwsim, in TREAT), by wrapping the pieces of the tick in timers.
# Not a figure of `make bench`: a tool for deciding what to make faster.
#
#   MICROPYPATH=hw/sim:firmware:tests/mpy:bench micropython bench/mpy_profile.py [n=3000] [warm_s=40]
#
# warm_s: virtual seconds of TREAT before measuring. After ~30 s the regulator dithers the
# setpoint between two PWM steps on every tick, so the plant never settles (a new closed-form
# segment every tick): that is the state a long session spends its time in. The baseline (no
# wrappers) is timed on the process's CPU time (/proc/self/stat), which a loaded machine
# disturbs far less than the wall clock; the pieces can only be timed on the wall clock, so
# run it on a quiet machine. The wrappers cost time too (about half the tick again: each
# one's call is charged to the piece that calls it), so read the shares, not the
# microseconds: a piece's share of the wrapped tick, times the baseline, is roughly its cost.
import mpy_common as C
import vclock
import fwsim
import app as appmod
import machine_i2c

_rt = vclock._rt
tu = _rt.ticks_us
td = _rt.ticks_diff
T = {}  # label -> [calls, exclusive us]
stack = [0]  # per active wrapper: its wrapped children's inclusive us


def cpu_ms():
    with open("/proc/self/stat") as f:
        return int(f.read().split()[13]) * 10  # utime, 100 Hz clock ticks


def wrap(label, fn):
    rec = T.get(label)
    if rec is None:
        rec = T[label] = [0, 0]

    def w(*a):
        t0 = tu()
        stack.append(0)
        try:
            return fn(*a)
        finally:
            dt = td(tu(), t0)
            rec[0] += 1
            rec[1] += dt - stack.pop()
            stack[-1] += dt

    return w


def wattr(obj, name, label):
    setattr(obj, name, wrap(label, getattr(obj, name)))


pos, opt = C.args()
N = int(opt.get("n", 3000))
u = fwsim.Unit("palms", C.cfg_for(duration_s=2400))
u.start_treatment()
u.run_s(int(opt.get("warm_s", 40)), observe=False)
a = u.app
b = u.b
sb = u.sb

c0 = cpu_ms()
w0 = tu()
a.run(max_ticks=a.ticks + N)
base_cpu = (cpu_ms() - c0) * 1000 / N
base_wall = td(tu(), w0) / N


for n in ("_measure", "_poll", "_take", "_stick", "_apply", "_ok_to_feed", "_feed", "_bz_tick", "_disp_step", "_slow"):
    wattr(a, n, "fw app." + n.lstrip("_"))
appmod.sleep_us = wrap("fw sleep_us (clock advance)", appmod.sleep_us)
wattr(b.ina, "read_shunt_ua", "fw ina219.read_shunt_ua")
wattr(b.i2c, "readfrom_mem_into", "mock I2C.readfrom_mem_into")
wattr(b.i2c, "writeto", "mock I2C.writeto")
machine_i2c._device_read = wrap("mock I2C device read", machine_i2c._device_read)
machine_i2c._answer = wrap("mock I2C device read", machine_i2c._answer)
vclock.charge = wrap("vclock.charge", vclock.charge)
vclock.charge_unlocked = wrap("vclock.charge_unlocked (I2C wire time)", vclock.charge_unlocked)
vclock.sim_unlock = wrap("vclock.sim_unlock", vclock.sim_unlock)
vclock.sim_relock = wrap("vclock.sim_relock", vclock.sim_relock)
ina = sb.ina219
# (not i2c_read: i2c_read_into goes through a replaced i2c_read, the slow way)
wattr(ina, "i2c_read_into", "INA219 model i2c_read_into")
wattr(ina, "_answer", "INA219 model _answer (register value)")
b.i2c._rd_dev = None  # the bus looks i2c_read_into up again: the wrapper
wattr(ina, "i2c_write", "INA219 model i2c_write")
wattr(ina, "_update", "INA219 model _update")
wattr(ina, "source", "board _shunt_source")
wattr(sb.display, "i2c_write", "SSD1306 model i2c_write")
p = sb.plant
for n in ("current_ua", "mean_ua", "electrode_mv", "sense_ua", "_advance", "_run", "_integrate", "_regime",
          "_regulate", "_regulate_exact", "_open_eval", "_step", "_acc", "_charge", "set_duty", "set_clamp", "_sync"):
    wattr(p, n, "plant." + n)
for i in range(len(vclock._hooks)):
    vclock._hooks[i] = wrap("clock hook (board: limiter watch)", vclock._hooks[i])
# board.measure calls these through bound methods it made once (Board.__init__)
b._adc_read = wrap("mock ADC read (electrode)", b._adc_read)
b._sense_read = wrap("mock ADC read (sense)", b._sense_read)
b._hw_limit_value = wrap("mock Pin.value", b._hw_limit_value)
b._vbus_value = wrap("mock Pin.value", b._vbus_value)
for o in (b.output._sp, b.output._cl):
    if o is not None:
        wattr(o, "duty_u16", "mock PWM.duty_u16 (+ plant input)")
s = u.s
sup = s.sup
for n in ("check", "veto"):
    if hasattr(sup, n):
        wattr(sup, n, "fw supervisor." + n)

c0 = cpu_ms()
w0 = tu()
a.run(max_ticks=a.ticks + N)
whole = td(tu(), w0)  # the pieces are timed on the wall clock: shares of the wall time
tot = (cpu_ms() - c0) * 1000 / N
C.say("baseline: %.1f us/tick CPU, %.1f us/tick wall (%d ticks, TREAT, plant %s)" % (
    base_cpu, base_wall, N, "settled" if p._settled else "moving"))
C.say("wrapped: %.1f us/tick CPU; share of it and the baseline's us at that share, per piece:" % tot)
rows = []
acc = 0
for k, (n, us) in T.items():
    if n:
        acc += us
        rows.append((us, k, n / N))
rows.sort(key=lambda r: -r[0])
for us, k, n in rows:
    C.say("  %-42s %5.2f calls/tick %5.1f %% %6.1f us/tick" % (k, n, 100 * us / whole, base_cpu * us / whole))
rest = whole - acc
C.say("  %-42s %16.1f %% %6.1f us/tick" % ("rest (loop, ticks_*, unwrapped firmware)", 100 * rest / whole, base_cpu * rest / whole))
C.emit({"base_cpu_us": base_cpu, "base_wall_us": base_wall, "wrapped_cpu_us": tot,
        "rows": [[k, round(n, 2), round(100 * us / whole, 1)] for us, k, n in rows]})
