# Power cuts at random moments of treatments: the session's dose, treatment time and trace
# survive through the FRAM journal (firmware/journal.py), and no flash write happens while
# current flows. MicroPython only: the real vfs.VfsLfs2 over hw/sim/flash.py and the FRAM
# model (hw/sim/fram_model.py) on the machine mock's I2C bus, read through firmware/fram.py,
# both on one flash.Power: the cut lands in the n-th write of either (a seeded prefix of it).
#
#   import journal_powercut; journal_powercut.run(img, cuts, seed)
#   -> "OK journal cuts=.. sessions=.. dose_lost_max_s=.. treat_lost_max_s=..
#       trace_lost_max_s=.. dose_lost_max_uas=.. flash_writes_while_on=0 ..."
#
# Each round: boot (Log.open: recovery; sometimes cut too), check what the previous cut left,
# then treatments until the cut. After every cut, at the next boot: the filesystem mounts, every
# record read is whole (no bad CRC stretch), every ended session is exact, and the session in
# flight is closed (END_POWER_LOST unless its own end made it) with a dose and treatment time
# at most 10 s short of what flowed and a trace at most 60 s short, holding exactly the
# samples logged, in order.
import gc
import vfs

import flash
import fram_model
import vclock
import machine
import pins
import journal
import logstore
import records as R
from fram import FRAM
from logkit import Preset, read as _read


class _Preset(Preset):
    name = "hands"

BLOCKS = 64
_RING = 600  # treatments here last up to 425 s
_TREAT = 4
_PAUSED = 6


class _Sup:
    dose_uas = 0


class _S:
    # What Log.on_session_event reads from a session.Session.
    def __init__(self):
        self.preset_idx = 1
        self.preset = _Preset
        self.target_ua = 15000
        self.treat_ms = 0
        self.sup = _Sup()


def _args(n, i, ua, st):
    # second(set_ua, act_ua, mv, load_ohm, polarity, state, ...)
    return (ua, (ua * 7 + i) & 0x7FFF, (n * 13 + i) & 0xFFF, 4000, i & 1, st)


def _val(a):
    # as records.unpack gives a sample back: (set, act, mv, load, state, polarity)
    return (a[0], a[1], a[2], a[3], a[5], a[4])


def _recs(path):
    st = R.Stats()
    out = R.read(_read(path) or b"", st)
    assert st.bad == 0 and st.torn == 0, (path, st.bad, st.torn)  # whole or absent
    return out


class Model:
    def __init__(self):
        self.done = {}  # session -> (dose, treat, samples list)
        self.cur = 0  # session whose summary is on flash, in flight
        self.samples = []  # its samples handed to the log (values as read back)
        self.dose = 0  # dose that had flowed when the power went (uA*s)
        self.treat = 0
        self.ua = 0  # its highest current (uA): the dose of a second
        self.ended = None  # (dose, treat) once its end was handed to the log
        self.flash_on = 0  # flash writes while current flowed (must stay 0)
        self.lost = {"dose_s": 0, "treat_s": 0, "trace_s": 0, "dose_uas": 0}
        self.checked = 0
        self.bus_us = 0  # longest I2C time of one second's journal writes


def _done(m, n, v):
    # The newest few ended sessions are re-checked each round (the heap holds no more).
    m.done[n] = v
    for k in sorted(m.done)[:-3]:
        del m.done[k]


def _check(m):
    n = m.cur
    if n:
        recs = _recs("/fl/log/s%06d.sum" % n)
        assert [r["type"] for r in recs] == ["summary", "end"], (n, recs)
        end = recs[1]
        got = [s for r in _recs("/fl/log/s%06d.trc" % n) if r["type"] == "samples" for s in r["samples"]]
        assert got == m.samples[:len(got)], (n, len(got), len(m.samples))
        assert end["samples"] == len(got), (end, len(got))
        if m.ended is not None and end["reason"] != logstore.END_POWER_LOST:
            assert (end["dose_uas"], end["treat_s"]) == m.ended, (end, m.ended)
        else:
            assert end["reason"] == logstore.END_POWER_LOST, end
        dose_lost = m.dose - end["dose_uas"]
        treat_lost = m.treat - end["treat_s"]
        trace_lost = len(m.samples) - len(got)
        assert dose_lost >= 0 and treat_lost >= 0, (end, m.dose, m.treat)
        dose_s = (dose_lost + m.ua - 1) // m.ua if m.ua else 0
        assert dose_s <= 10 and treat_lost <= 10 and trace_lost <= 60, (dose_s, treat_lost, trace_lost)
        lo = m.lost
        lo["dose_s"] = max(lo["dose_s"], dose_s)
        lo["treat_s"] = max(lo["treat_s"], treat_lost)
        lo["trace_s"] = max(lo["trace_s"], trace_lost)
        lo["dose_uas"] = max(lo["dose_uas"], dose_lost)
        _done(m, n, (end["dose_uas"], end["treat_s"], got))
        m.cur = 0
        m.checked += 1
    for k in sorted(m.done)[-2:]:
        dose, treat, samples = m.done[k]
        recs = _recs("/fl/log/s%06d.sum" % k)
        if recs:
            assert recs[-1]["type"] == "end" and recs[-1]["dose_uas"] == dose, (k, recs)
        if _read("/fl/log/s%06d.trc" % k) is not None:
            got = [s for r in _recs("/fl/log/s%06d.trc" % k) if r["type"] == "samples" for s in r["samples"]]
            assert got == samples, k
    _recs("/fl/log/events.log")


def _treatment(m, dev, log, rng):
    s = _S()
    n = log.session + 1
    s.target_ua = 5000 + 500 * rng.below(31)
    log.on_session_event(1, 1, 0, s)  # EV_STATE CONFIRM <- IDLE: summary + journal open
    if dev.dead or not log.summary_ok:
        return False
    m.cur, m.samples, m.dose, m.treat, m.ua, m.ended = n, [], 0, 0, s.target_ua, None
    i = 0
    for _ in range(rng.below(3)):  # seconds at CONFIRM, output off: flushed to flash
        a = _args(n, i, 0, 1)
        m.samples.append(_val(a))
        log.second(*(a + (0, 0)))
        log.service(False)
        if dev.dead:
            return False
        i += 1
    log.on_session_event(2, 1, s.target_ua, s)  # EV_START
    secs = 20 + rng.below(400)
    pause = rng.below(secs) if rng.below(3) == 0 else -1
    for k in range(secs):
        st = _PAUSED if pause <= k < pause + 5 else _TREAT
        ua = s.target_ua if st == _TREAT else 50
        # The second flows, then it is logged: a cut inside second() loses this one.
        m.dose += ua
        if st == _TREAT:
            m.treat += 1
        a = _args(n, i, ua, st)
        m.samples.append(_val(a))
        ops = dev.ops
        t0 = vclock.now_us()
        log.second(*(a + (m.dose, m.treat)))
        dt = vclock.now_us() - t0  # the journal's I2C wire time, as the bus model charges it
        if dt > m.bus_us:
            m.bus_us = dt
        if log.service(True) or dev.ops != ops:
            m.flash_on += 1
        if dev.dead:
            return False
        i += 1
    s.treat_ms = m.treat * 1000
    s.sup.dose_uas = m.dose
    m.ended = (m.dose, m.treat)
    log.on_session_event(8, 1, m.dose, s)  # EV_END, done
    log.service(False)
    if dev.dead:
        return False
    _done(m, n, (m.dose, m.treat, m.samples))
    m.cur = 0
    log.ack(n - 3)
    return True


def run(img, cuts, seed):
    rng = flash._Rand(seed)
    flash.create_image(img, BLOCKS)
    dev = flash.Flash(img, blocks=BLOCKS)
    vfs.VfsLfs2.mkfs(dev, progsize=256)
    dev.close()
    bus = machine.sim_i2c_bus(pins.I2C_ID)
    i2c = machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA),
                      freq=pins.I2C_FREQ, timeout=pins.I2C_TIMEOUT_US)
    fr = fram_model.FRAM(img + ".fram")  # one chip: its contents outlive every cut
    bus.attach(pins.FRAM_ADDR, fr)
    m = Model()
    done = 0
    sessions = 0
    boot_cuts = 0
    rnd = 0
    while done < cuts:
        rnd += 1
        power = flash.Power(seed * 1000 + rnd)
        dev = flash.Flash(img, blocks=BLOCKS, power=power)
        fr.power = power
        gc.collect()
        vfs.mount(vfs.VfsLfs2(dev, progsize=256), "/fl")
        cut_at_boot = rng.below(6) == 0
        if cut_at_boot:
            power.arm(1 + rng.below(6))
        log = logstore.Log("/fl/log", ring_s=_RING, journal=journal.Journal(FRAM(i2c, pins.FRAM_ADDR)))
        try:
            log.open("power on", "0.1.0")
        except flash.PowerCut:
            pass
        if not power.dead:
            _check(m)
            power.arm(1 + rng.below(900))
            try:
                while _treatment(m, dev, log, rng):
                    sessions += 1
            except flash.PowerCut:
                pass
        else:
            boot_cuts += 1
        assert power.dead
        done += 1
        try:
            vfs.umount("/fl")
        except OSError:
            pass
        dev.close()
        log = None
    # The last boot closes the last cut session too.
    dev = flash.Flash(img, blocks=BLOCKS)
    fr.power = dev.power
    vfs.mount(vfs.VfsLfs2(dev, progsize=256), "/fl")
    log = logstore.Log("/fl/log", ring_s=_RING, journal=journal.Journal(FRAM(i2c, pins.FRAM_ADDR)))
    log.open("power on", "0.1.0")
    _check(m)
    assert log.write_errors == 0
    assert m.flash_on == 0, m.flash_on
    vfs.umount("/fl")
    dev.close()
    fr.close()
    lo = m.lost
    print("OK journal cuts=%d sessions=%d checked=%d boot_cuts=%d dose_lost_max_s=%d treat_lost_max_s=%d"
          " trace_lost_max_s=%d dose_lost_max_uas=%d flash_writes_while_on=%d journal_bus_us=%d"
          % (done, sessions, m.checked, boot_cuts, lo["dose_s"], lo["treat_s"], lo["trace_s"], lo["dose_uas"],
             m.flash_on, m.bus_us))
