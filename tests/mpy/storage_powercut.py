# Power cuts at random block writes while sessions are logged and the configuration is saved,
# on the real vfs.VfsLfs2 over hw/sim/flash.py (MicroPython only). Run by tests/test_logstore.py:
# `import storage_powercut; storage_powercut.run(img, cuts, seed)`; prints "OK powercut ...".
#
# After every cut, on a fresh Flash over the same image: the filesystem mounts; every completed
# session is intact (summary + end, every sample exactly as logged); the session in flight has
# its summary (if begin() returned) and at least every sample whose flush returned, and only
# samples that were logged, in order; the configuration is wholly the old or wholly the new.
import os
import vfs

import cfgstore
import config
import flash
import logstore
import records as R
from logkit import Preset as _Preset, read as _read

BLOCKS = 64  # 384 KiB: small images mount and scan fast; pruning still gets exercised


def _args(n, i):
    # sample(set_ua, act_ua, mv, load_ohm, polarity, state)
    return ((n * 7 + i) & 0x7FFF, i & 0x7FFF, n & 0xFFF, 4000, i & 1, 4)


def _val(n, i):
    # as records.unpack gives it back: (set, act, mv, load, state, polarity)
    return ((n * 7 + i) & 0x7FFF, i & 0x7FFF, n & 0xFFF, 4000, 4, i & 1)


def _cfg(target):
    c = config.defaults()
    c["presets"][1]["target_ua"] = target
    return c


class Model:
    """What the workload knows it committed (only steps that returned before the cut)."""

    def __init__(self):
        self.target = 18000  # defaults: presets[1] (feet)
        self.saving = None  # target of a save in flight
        self.done = {}  # session -> samples
        self.cur = 0  # session in flight (begin() returned)
        self.committed = 0  # its samples whose flush returned
        self.logged = 0  # its samples handed to sample()
        self.begun_pending = 0  # session number a begin() was working on


def _check(m, rnd):
    # Configuration: wholly old or wholly new.
    cfg, src, errs = cfgstore.CfgStore("/fl").load()
    assert cfg is not None and src in ("config.json", "defaults"), (rnd, src, errs)
    t = cfg["presets"][1]["target_ua"]
    ok = [m.target] + ([m.saving] if m.saving is not None else [])
    assert t in ok, (rnd, t, ok)
    assert cfg == _cfg(t), rnd
    m.target, m.saving = t, None
    # Completed sessions: the newest few are checked each round, all at the end.
    for n in sorted(m.done)[-3:]:
        _check_done(m, n, rnd)
    # The session in flight.
    n = m.cur
    if n:
        recs = R.read(_read("/fl/log/s%06d.sum" % n) or b"")
        assert recs and recs[0]["type"] == "summary" and recs[0]["session"] == n, (rnd, n, recs)
        got = _samples(n)
        assert len(got) >= m.committed and len(got) <= m.logged, (rnd, n, len(got), m.committed, m.logged)
        assert got == [_val(n, i) for i in range(len(got))], (rnd, n)
        if len(recs) > 1:  # closed by a boot's recovery, or the end record made it
            assert recs[1]["type"] == "end" and recs[1]["samples"] in (len(got), m.logged), (rnd, recs)


def _samples(n):
    data = _read("/fl/log/s%06d.trc" % n)
    if data is None:
        return []
    st = R.Stats()
    out = [s for r in R.read(data, st) if r["type"] == "samples" for s in r["samples"]]
    assert st.bad == 0, (n, st.bad)  # appends are atomic: at most a torn tail, never damage
    return out


def _check_done(m, n, rnd):
    cnt = m.done[n]
    recs = R.read(_read("/fl/log/s%06d.sum" % n) or b"")
    assert [r["type"] for r in recs] == ["summary", "end"], (rnd, n, recs)
    assert recs[1]["samples"] == cnt and recs[1]["reason"] == 1, (rnd, n, recs[1])
    data = _read("/fl/log/s%06d.trc" % n)
    if data is not None or n == max(m.done):
        got = _samples(n)
        assert got == [_val(n, i) for i in range(cnt)], (rnd, n, cnt, got[:3], len(got))


def _workload(m, dev, log, store, rng):
    m.phase = "boot"
    log.open("power on", "0.1.0")
    if dev.dead:
        return
    # The previous in-flight session is closed by open(): it now counts as ended (power lost).
    m.cur = 0
    while not dev.dead:
        if rng.below(4) == 0:
            new = 15000 + 100 * rng.below(80)
            m.phase = "config"
            m.saving = new
            try:
                store.save(_cfg(new))
            except OSError:
                pass
            if dev.dead:
                return
            m.target, m.saving = new, None
            continue
        n = log.session + 1
        m.phase = "summary"
        if not log.begin(1, _Preset, 18000) or dev.dead:
            return
        m.cur, m.committed, m.logged = n, 0, 0
        secs = 5 + rng.below(40)
        for i in range(secs):
            log.sample(*_args(n, i))
            m.logged = i + 1
            if rng.below(12) == 0:
                m.phase = "trace"
                log.flush()  # a commit point (CADENCE-style)
                if dev.dead:
                    return
                m.committed = m.logged
        log.end(1, 100, secs)
        m.phase = "end"
        log.flush()
        if dev.dead:
            return
        m.done[n] = secs
        m.cur = 0
        log.ack(n - 4)  # the host archives all but the newest four: their traces may go


def run(img, cuts, seed):
    rng = flash._Rand(seed)
    flash.create_image(img, BLOCKS)
    dev = flash.Flash(img, blocks=BLOCKS)
    vfs.VfsLfs2.mkfs(dev, progsize=256)
    dev.close()
    m = Model()
    done_cuts = 0
    phases = {}
    rnd = 0
    ops = 0
    while done_cuts < cuts:
        rnd += 1
        dev = flash.Flash(img, blocks=BLOCKS, seed=seed * 1000 + rnd)
        vfs.mount(vfs.VfsLfs2(dev, progsize=256), "/fl")
        _check(m, rnd)
        dev.arm_power_cut(1 + rng.below(40))
        log = logstore.Log("/fl/log")
        try:
            _workload(m, dev, log, cfgstore.CfgStore("/fl"), rng)
        except flash.PowerCut:
            pass
        except OSError:
            assert dev.dead, "OSError with the power on"
        assert dev.dead
        done_cuts += 1
        phases[m.phase] = phases.get(m.phase, 0) + 1
        ops += dev.ops
        try:
            vfs.umount("/fl")
        except OSError:
            pass
        dev.close()
    # Finally: every completed session whose files remain is intact, and the unit still works.
    dev = flash.Flash(img, blocks=BLOCKS)
    vfs.mount(vfs.VfsLfs2(dev, progsize=256), "/fl")
    _check(m, rnd + 1)
    for n in m.done:
        if _read("/fl/log/s%06d.sum" % n) is not None:
            _check_done(m, n, -1)
    log = logstore.Log("/fl/log")
    log.open("power on", "0.1.0")
    assert log.write_errors == 0
    vfs.umount("/fl")
    dev.close()
    print("OK powercut", done_cuts, len(m.done), ops,
          " ".join("%s=%d" % (k, phases[k]) for k in sorted(phases)))
