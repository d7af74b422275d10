# Power cuts at random moments of real treatments: the firmware (App, session, supervisor,
# drivers) on the in-process virtual unit, its session log on LittleFS over the flash model and
# its journal on the board's FRAM model, both on one flash.Power. Each round: a fresh power-on,
# a treatment (fast preset), a cut at a random moment of it (between two writes, or inside the
# next FRAM write), then the next boot on the same flash and FRAM.
#
#   micropython fw_powercut.py IMG CUTS SEED
#   -> "OK fwcut cuts=.. dose_lost_max_s=.. treat_lost_max_s=.. trace_lost_max_s=..
#       flash_ops_with_output_on=0 torn=.."
#
# Checked each round: no flash write or erase in any tick during which the output was enabled;
# after the next boot the session holds its summary and an end "power lost" with the dose and
# treatment time the firmware had counted at the cut, at most 10 s short, and a trace at most
# 60 s short, every record whole.
import gc
import sys

import vfs

import flash
import fwsim
import journal
import logstore
import records as R
import session as S

img, cuts, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = flash._Rand(seed)
BLOCKS = 96

flash.create_image(img, BLOCKS)
_d = flash.Flash(img, blocks=BLOCKS)
vfs.VfsLfs2.mkfs(_d, progsize=256)
_d.close()


_on_ops = [0]
_watch = [False]  # while the firmware runs (after the cut the simulated pins just keep their levels)


def boot(u, power):
    dev = flash.Flash(img, blocks=BLOCKS, power=power)
    tick = dev._tick

    def watched():
        # Every flash write or erase passes here: none may come while the output is enabled.
        if _watch[0] and u.enable():
            _on_ops[0] += 1
        return tick()

    dev._tick = watched
    vfs.mount(vfs.VfsLfs2(dev, progsize=256), "/fl")
    u.sb.fram.power = power  # the same chip (its bytes kept), on the supply of this boot
    gc.collect()
    log = logstore.Log("/fl/log", ring_s=900, journal=journal.Journal(u.b.fram))
    log.open("power on", "test")
    return dev, log


def down(dev):
    try:
        vfs.umount("/fl")
    except OSError:
        pass
    dev.close()


def recs(path):
    st = R.Stats()
    with open(path, "rb") as f:
        out = R.read(f.read(), st)
    assert st.bad == 0 and st.torn == 0, (path, st.bad, st.torn)
    return out


worst = {"dose_s": 0, "treat_s": 0, "trace_s": 0}
torn = 0
for k in range(cuts):
    target = 5000 + 500 * rng.below(11)
    u = fwsim.Unit("palms", cfg=fwsim.fast_cfg(target=target, ceiling=target, dose=600))
    power = flash.Power(seed * 1000 + k)
    dev, log = boot(u, power)
    u.app.log = log
    _watch[0] = True
    u.press("START")
    u.press("START")
    assert log.summary_ok
    n = log.open_session
    u.until(lambda s: s.state == S.TREAT, 60)
    ticks = (2 + rng.below(50)) * 500 + rng.below(500)
    inside = rng.below(2) == 0
    try:
        u.run_ticks(ticks, observe=False)
        if inside:
            power.arm(1)  # the supply goes during the next write (an FRAM write: nothing else writes)
            u.run_ticks(2000, observe=False)
            raise AssertionError("no write came to cut")
    except flash.PowerCut:
        torn += 1
    _watch[0] = False
    dose, treat, secs = u.s.sup.dose_uas, u.s.treat_ms // 1000, log._sec
    down(dev)
    # The next boot, on the same flash and FRAM.
    dev, log = boot(u, flash.Power())
    s = recs("/fl/log/s%06d.sum" % n)
    assert [r["type"] for r in s] == ["summary", "end"], s
    end = s[1]
    assert end["reason"] == logstore.END_POWER_LOST, end
    got = [x for r in recs("/fl/log/s%06d.trc" % n) if r["type"] == "samples" for x in r["samples"]]
    assert end["samples"] == len(got)
    dose_s = (dose - end["dose_uas"] + target - 1) // target
    treat_s = treat - end["treat_s"]
    trace_s = secs - len(got)
    assert 0 <= dose_s <= 10 and 0 <= treat_s <= 10 and 0 <= trace_s <= 60, (dose_s, treat_s, trace_s, end)
    worst["dose_s"] = max(worst["dose_s"], dose_s)
    worst["treat_s"] = max(worst["treat_s"], treat_s)
    worst["trace_s"] = max(worst["trace_s"], trace_s)
    down(dev)
    log = u = None
    gc.collect()
on_ops = _on_ops[0]
assert on_ops == 0, on_ops
print("OK fwcut cuts=%d dose_lost_max_s=%d treat_lost_max_s=%d trace_lost_max_s=%d flash_ops_with_output_on=%d torn=%d"
      % (cuts, worst["dose_s"], worst["treat_s"], worst["trace_s"], on_ops, torn))
