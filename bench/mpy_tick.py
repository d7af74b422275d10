# Control tick in TREAT on the unix port: cost (real clock), allocation, I2C traffic.
#
#   micropython bench/mpy_tick.py [n=5000]
#
# One palms session is brought to TREAT, then three phases of n ticks each run the real loop
# (App.run through fwsim) with App.tick and App._slow wrapped from outside (instance
# attributes shadow the methods: the loop looks up self.tick and self._slow):
#   1. real-clock duration of each tick, split by whether the low-rate work (_slow: events,
#      display page at 5 Hz, status line at 1 Hz) ran in it;
#   2. bytes allocated per tick (micropython.mem_total(): cumulative, GC-independent), split
#      into _slow and the rest, and into the simulator's share and the firmware's: every
#      piece of simulator code a firmware call reaches runs between vclock.sim_unlock() and
#      sim_relock() (that is how it survives the firmware's heap lock), so wrapping those two
#      counts what the models allocate (floats in the plant, bytes in the I2C mock);
#   3. I2C calls per tick by method and address (wrappers on the firmware's I2C instance)
#      and wire transactions (the mock bus counts a register read as pointer write + read).
# The tick times include the simulated hardware's Python (plant, INA219 model, bus mock).
import mpy_common as C
import array
import micropython
import fwsim
import vclock
import time as vtime  # the virtual one (mpy_common forgot the built-in)
import pins
import session as S
from app import PERIOD_US

pos, opt = C.args()
N = int(opt.get("n", 5000))

u = fwsim.Unit("palms", C.cfg_fast())
t0 = C.rt.ticks_ms()
u.start_treatment()
u.run_s(2, observe=False)
C.say("tick: TREAT after %d ms wall, %d ticks" % (C.wall_ms(t0), u.app.ticks))
app = u.app
tick0 = app.tick
slow0 = app._slow

# --- 1. cost -------------------------------------------------------------------------------
dur = array.array("i", bytes(4 * N))
slow_at = bytearray(N)
st = [0, 0]  # [index, slow ran in this tick]


def slow_mark(job, now_ms):
    st[1] = 1
    slow0(job, now_ms)


def tick_timed(now_ms):
    st[1] = 0
    a = C.rt.ticks_us()
    tick0(now_ms)
    d = C.rt.ticks_diff(C.rt.ticks_us(), a)
    i = st[0]
    if i < N:
        dur[i] = d
        slow_at[i] = st[1]
        st[0] = i + 1


app._slow = slow_mark
app.tick = app._tick = tick_timed  # App._loop calls the bound method cached in __init__
u.run_ticks(N, observe=False)
all_us = list(dur)
fast = [dur[i] for i in range(N) if not slow_at[i]]
slow = [dur[i] for i in range(N) if slow_at[i]]
res = {
    "tick_us_median": C.median(all_us),
    "tick_us_p99": C.pct(all_us, 99),
    "tick_us_max": max(all_us),
    "tick_fast_us_median": C.median(fast),
    "tick_slow_us_median": C.median(slow),
    "tick_slow_share_pct": 100.0 * len(slow) / N,
    "ticks_timed": N,
    "state": S.STATE_NAMES[u.s.state],
}
C.say("tick: cost median %s us, p99 %s us" % (res["tick_us_median"], res["tick_us_p99"]))

# --- 2. allocation -------------------------------------------------------------------------
mt = micropython.mem_total
su0 = vclock.sim_unlock
sr0 = vclock.sim_relock
adv0 = vclock.advance
sim = [0, 0, 0, 0]  # [depth, mem_total at entry, simulator bytes, depth inside advance()]


def _enter():
    if sim[0] == 0:
        sim[1] = mt()
    sim[0] += 1


def _leave():
    sim[0] -= 1
    if sim[0] == 0:
        sim[2] += mt() - sim[1]


# advance() (the clock: plant hooks, timers) is simulator code as a whole; inside it
# sim_unlock() is not paired with sim_relock() while the heap is unlocked, so pairs are
# only counted outside it (the I2C, ADC and pin-listener paths of the machine mock).
def advance(us):
    sim[3] += 1
    _enter()
    try:
        adv0(us)
    finally:
        _leave()
        sim[3] -= 1


def sim_unlock():
    if not sim[3]:
        _enter()
    return su0()


def sim_relock(n):
    sr0(n)
    if not sim[3]:
        _leave()


fw = array.array("i", bytes(4 * N))  # firmware bytes per tick
tot = [0, 0]  # all bytes in ticks, simulator bytes in ticks
sl = [0, 0, 0]  # firmware bytes in _slow, calls, firmware bytes in fast ticks
st[0] = 0


def slow_alloc(job, now_ms):
    a = mt()
    s0 = sim[2]
    slow0(job, now_ms)
    sl[0] += mt() - a - (sim[2] - s0)
    sl[1] += 1


def tick_alloc(now_ms):
    st[1] = sl[1]
    a = mt()
    s0 = sim[2]
    tick0(now_ms)
    d = mt() - a
    ds = sim[2] - s0
    tot[0] += d
    tot[1] += ds
    i = st[0]
    if i < N:
        fw[i] = d - ds
        if sl[1] == st[1]:
            sl[2] += d - ds
        st[0] = i + 1


vclock.sim_unlock = sim_unlock
vclock.sim_relock = sim_relock
vclock.advance = advance
vtime._advance = advance  # time.sleep_us cached the function at import
app._slow = slow_alloc
app.tick = tick_alloc
try:
    u.run_ticks(N, observe=False)
finally:
    vclock.sim_unlock = su0
    vclock.sim_relock = sr0
    vclock.advance = adv0
    vtime._advance = adv0
fast_n = N - sl[1]
res["alloc_bytes_per_tick"] = tot[0] / N
res["alloc_sim_bytes_per_tick"] = tot[1] / N
res["alloc_fw_bytes_per_tick"] = sum(fw) / N
res["alloc_fw_fast_bytes_per_tick"] = sl[2] / fast_n if fast_n else -1
res["alloc_fw_slow_bytes_per_call"] = sl[0] / sl[1] if sl[1] else 0
res["alloc_slow_calls_per_s"] = sl[1] * (1_000_000 / PERIOD_US) / N
res["alloc_fw_ticks_nonzero_pct"] = 100.0 * sum(1 for x in fw if x) / N
C.say("alloc: %.1f B/tick in all (%.1f simulator), firmware %.1f B/tick: fast ticks %.2f, _slow %.0f B/call"
      % (res["alloc_bytes_per_tick"], res["alloc_sim_bytes_per_tick"], res["alloc_fw_bytes_per_tick"],
         res["alloc_fw_fast_bytes_per_tick"], res["alloc_fw_slow_bytes_per_call"]))

# --- 3. I2C ----------------------------------------------------------------------------------
app._slow = slow0
app.tick = tick0
i2c = app.b.i2c
bus = i2c._bus
counts = {}  # (method, addr) -> calls


def counter(name):
    orig = getattr(i2c, name)

    def w(addr, *a, **k):
        key = name + "@0x%02x" % addr
        counts[key] = counts.get(key, 0) + 1
        return orig(addr, *a, **k)

    setattr(i2c, name, w)


for m in ("readfrom_mem_into", "readfrom_mem", "writeto_mem", "readfrom_into", "readfrom", "writeto", "writevto"):
    counter(m)
w0 = bus.transactions
u.run_ticks(N, observe=False)
calls = sum(counts.values())
ina = sum(v for k, v in counts.items() if k.endswith("@0x%02x" % pins.INA219_ADDR))
res["i2c_calls_per_tick"] = calls / N
res["i2c_ina219_calls_per_tick"] = ina / N
res["i2c_display_calls_per_tick"] = (calls - ina) / N
res["i2c_wire_transactions_per_tick"] = (bus.transactions - w0) / N
res["i2c_by_call"] = dict((k, v / N) for k, v in counts.items())
C.say("i2c: %s" % res["i2c_by_call"])
C.emit(res)
