# One whole session under the heap given with -X heapsize (the goal: 128K): default preset
# (hands_feet, 20 min, polarity reversal at half-time), palms, START to DONE.
#
#   micropython -X heapsize=128K bench/mpy_session.py [max_s=1800]
#
# Reports whether it completed, the live-heap high-water (gc.mem_alloc() right after a
# gc.collect(), every virtual second: what the heap must hold), the live heap of the
# simulator alone (its modules and board, before the firmware is imported), the heap size and
# the bytes allocated per tick over the session (micropython.mem_total(), garbage included).
import mpy_common as C
import gc
import micropython

pos, opt = C.args()
MAX_S = int(opt.get("max_s", 1800))
gc.collect()
import vclock  # noqa: E402
import machine  # noqa: E402,F401
import simboard  # noqa: E402

sb0 = simboard.Board("palms")
gc.collect()
sim_live = gc.mem_alloc()
sb0.close()
del sb0
import fwsim  # noqa: E402
import session as S  # noqa: E402

heap = gc.mem_alloc() + gc.mem_free()
t0 = C.rt.ticks_ms()
hw = 0
done = False
err = ""
ticks = 0
try:
    u = fwsim.Unit("palms")
    m0 = micropython.mem_total()
    u.press("START")
    u.press("START")
    for sec in range(MAX_S):
        u.run_s(1, observe=False)
        gc.collect()
        a = gc.mem_alloc()
        if a > hw:
            hw = a
        st = u.s.state
        if st == S.DONE or st == S.STOPPED or st == S.FAULT:
            break
    ticks = u.app.ticks
    done = u.s.state == S.DONE
    state = S.STATE_NAMES[u.s.state]
    alloc = (micropython.mem_total() - m0) / ticks if ticks else -1
    vs = vclock.now_us() / 1e6
except MemoryError as e:
    state = "MemoryError"
    err = repr(e)
    alloc = -1
    vs = vclock.now_us() / 1e6
res = {
    "completed": 1 if done else 0,
    "end_state": state,
    "live_high_water_bytes": hw,
    "sim_live_bytes": sim_live,
    "heap_bytes": heap,
    "alloc_bytes_per_tick": alloc,
    "virtual_s": vs,
    "wall_s": C.wall_ms(t0) / 1000,
    "error": err,
}
C.say("session: %s" % res)
C.emit(res)
