# Virtual seconds per wall second, in-process (fwsim: simulator + firmware, no REPL), on a
# 40-minute session: hands_feet with duration_s=2400, palms.
#
#   micropython bench/mpy_speed.py [slice_s=180]
#
# The wall time to reach TREAT (contact check and ramp, with fwsim's per-tick observer as
# tests use it) is measured whole; then `slice_s` virtual seconds of TREAT are run in 10 s
# chunks without the observer (the harness's fast path) and timed on the real clock.
import mpy_common as C
import vclock
import fwsim
import session as S

pos, opt = C.args()
SLICE_S = int(opt.get("slice_s", 180))
u = fwsim.Unit("palms", C.cfg_fast() if opt.get("fast") else C.cfg_for(duration_s=2400))  # fast=1: smoke test
t0 = C.rt.ticks_ms()
v0 = vclock.now_us()
u.start_treatment()
to_treat_wall = C.wall_ms(t0) / 1000
to_treat_virt = (vclock.now_us() - v0) / 1e6
t1 = C.rt.ticks_ms()
v1 = vclock.now_us()
left = SLICE_S
while left > 0:
    k = 10 if left > 10 else left
    u.run_s(k, observe=False)
    left -= k
wall = C.wall_ms(t1) / 1000
virt = (vclock.now_us() - v1) / 1e6
res = {
    "to_treat_wall_s": to_treat_wall,
    "to_treat_virtual_s": to_treat_virt,
    "slice_virtual_s": virt,
    "slice_wall_s": wall,
    "x_real_time": virt / wall if wall > 0 else -1,
    "state": S.STATE_NAMES[u.s.state],
}
C.say("speed: %s" % res)
C.emit(res)
