# MicroPython checks of firmware/records.py, cfgstore.py and logstore.py, through the real
# vfs.VfsLfs2 over hw/sim/flash.py. Run by tests/test_records.py, test_cfgstore.py and
# test_logstore.py: `import storage_checks; storage_checks.NAME(args)`; a failure raises
# (micropython exits non-zero); success prints one line starting with "OK".
import records as R


def records_basic():
    buf = bytearray(R.MAX_FRAME)
    out = bytearray()
    for i in range(5):
        n = R.seal(buf, 0, R.T_EVENT, R.pack_event(buf, 0, i, 2, R.F_RTC, 99, 7, i, -i))
        out += buf[:n]
    n = R.seal(buf, 0, R.T_TEXT, R.pack_text(buf, 0, 5, 2, 0, 100, 1, "boot: power on"))
    out += buf[:n]
    out[31 + 20] ^= 1  # damage record 1 (event frames are 31 bytes)
    st = R.Stats()
    recs = R.read(bytes(out[:-2]), st)
    assert [r["seq"] for r in recs] == [0, 2, 3, 4], recs
    assert st.bad == 1 and st.torn == n - 2, (st.bad, st.torn)
    print("OK records", st.good, st.bad, st.skipped, st.torn)


import os
import vfs

import flash
from logkit import Preset, read


def _fresh(img, blocks=flash.BLOCK_COUNT):
    flash.create_image(img, blocks)
    dev = flash.Flash(img, blocks=blocks)
    vfs.VfsLfs2.mkfs(dev, progsize=256)
    return dev


def _mount(img, blocks=flash.BLOCK_COUNT, **kw):
    dev = flash.Flash(img, blocks=blocks, **kw)
    vfs.mount(vfs.VfsLfs2(dev, progsize=256), "/fl")
    return dev


def _umount(dev):
    try:
        vfs.umount("/fl")
    except OSError:
        pass
    dev.close()


def cfg_on_littlefs(img):
    import cfgstore
    import config

    _fresh(img).close()
    dev = _mount(img)
    s = cfgstore.CfgStore("/fl")
    assert s.load()[1] == "defaults"
    c = config.defaults()
    c["presets"][0]["target_ua"] = 16000
    ok, errs, d = s.save(c)
    assert ok and d == [("presets[0].target_ua", "15000", "16000")], (errs, d)
    c2 = config.defaults()
    c2["presets"][0]["target_ua"] = 17000
    assert s.save(c2)[0]
    _umount(dev)
    dev = _mount(img)
    s = cfgstore.CfgStore("/fl")
    cfg, src, errs = s.load()
    assert cfg == c2 and src == "config.json", (src, errs)
    names = sorted(os.listdir("/fl"))
    assert names == ["config.bak", "config.json"], names
    with open("/fl/config.json", "wb") as f:
        f.write(b"{broken")
    cfg, src, errs = cfgstore.CfgStore("/fl").load()
    assert cfg == c and src == "config.bak", (src, errs)
    _umount(dev)
    print("OK cfg")


class _Preset(Preset):
    name = "hands_feet"
    ceiling_ua = 25000
    slew_up = 250
    slew_down = 500
    area_cm2 = 120
    dose_cap_uas = 36_000_000


def _session(log, secs, seed=0):
    # One treatment as the loop drives it: summary at CONFIRM, samples each second, end.
    log.begin(0, _Preset, 15000)
    log.sev(2, 0, 15000)
    for i in range(secs):
        log.sample((seed + i) & 0x7FFF, i, 3000, 4000, i & 1, 4)
        log.progress(i * 15, i)
    log.sev(8, 1, secs * 15)
    log.end(1, secs * 15, secs)
    log.flush()


def _read(path):
    data = read(path)
    if data is None:
        raise OSError(2)  # ENOENT: the callers expect the file to be there
    return data


def log_heap(img):
    """sample() and sev() allocate nothing (heap locked), on the real filesystem."""
    import micropython
    import logstore

    _fresh(img).close()
    dev = _mount(img)
    log = logstore.Log("/fl/log")
    log.open("power on", "0.1.0")
    log.begin(0, _Preset, 15000)
    micropython.heap_lock()
    try:
        for i in range(200):
            log.sample(i * 100, i * 99, 20000 + i, 3500, i & 1, 4)
            if i % 50 == 0:
                log.sev(3, i, i + 1)
            log.progress(i * 15, i)
    finally:
        micropython.heap_unlock()
    # The loop's one call per second, with a real Session, is allocation-free too.
    import config
    import session

    s = session.Session(config.defaults(), True)
    s.set_ua, s.actual_ua, s.load_ohm, s.treat_ms = 11, 12, 4321, 7000
    micropython.heap_lock()
    try:
        log.each_second(s, 1500)
    finally:
        micropython.heap_unlock()
    log.end(1, 3000, 200)
    log.flush()
    recs = R.read(_read("/fl/log/s000001.trc"))
    got = [x for r in recs if r["type"] == "samples" for x in r["samples"]]
    assert got[:200] == [(i * 100, i * 99, 20000 + i, 3500, 4, i & 1) for i in range(200)], got[:3]
    assert got[200:] == [(11, 12, 1500, 4320, s.state, s.polarity)], got[200:]
    assert R.read(_read("/fl/log/s000001.sum"))[-1]["samples"] == 201
    _umount(dev)
    print("OK heap")


def log_full(img, sessions, blocks):
    """A small flash filled by many sessions: usage stays in budget, pruning goes archived
    traces -> unarchived traces -> summaries, the newest session is always whole, nothing raises,
    and the heap does not grow."""
    import gc
    import logstore

    _fresh(img, blocks).close()
    dev = _mount(img, blocks)
    log = logstore.Log("/fl/log")
    log.open("power on", "0.1.0")
    free0 = None
    for k in range(sessions):
        _session(log, 120, k)
        n = log.session
        recs = R.read(_read("/fl/log/s%06d.sum" % n))
        assert [r["type"] for r in recs] == ["summary", "end"], (k, recs)
        tr = R.read(_read("/fl/log/s%06d.trc" % n))
        assert sum(len(r["samples"]) for r in tr if r["type"] == "samples") == 120
        if k == sessions // 3:
            log.ack(n - 5)  # the host archived all but the last five
        gc.collect()
        if k == 10:
            free0 = gc.mem_free()
        elif k > 10:
            assert gc.mem_free() >= free0 - 2048, (k, free0, gc.mem_free())
        used, total = log._usage()
        assert used <= total * 80 // 100, (k, used, total)
    assert log.write_errors == 0 and log.lost == 0, (log.write_errors, log.lost)
    assert log.pruned > 0
    names = os.listdir("/fl/log")
    sums = sorted(int(x[1:7]) for x in names if x.endswith(".sum"))
    trcs = sorted(int(x[1:7]) for x in names if x.endswith(".trc"))
    assert sums[-1] == log.session and trcs[-1] == log.session
    # Summaries outlive traces.
    assert len(sums) > len(trcs) and sums[0] <= trcs[0], (sums, trcs)
    ev = R.read(_read("/fl/log/events.log"))
    if "events.old" in names:
        ev = R.read(_read("/fl/log/events.old")) + ev
    pr = [(r["a"], r["b"]) for r in ev if r["code"] == logstore.L_PRUNED]
    seqs = [r["seq"] for r in ev]
    assert seqs == sorted(seqs)
    _umount(dev)
    print("OK full", sessions, log.pruned, len(sums), len(trcs), len(pr), free0)


def blackout(img, minutes, worst_case=False):
    """Figures: longest blackout of one flush of 30 s of trace (CADENCE), bytes and erases per
    session-minute, and the same for OFF_ONLY (one flush at the end)."""
    import logstore

    _fresh(img).close()
    out = []
    for policy in (logstore.CADENCE, logstore.OFF_ONLY):
        dev = _mount(img)
        dev.set_worst_case(worst_case)
        log = logstore.Log("/fl/log", policy=policy)
        log.open("power on", "0.1.0")
        log.begin(0, _Preset, 15000)
        dev.reset_stats()
        worst = 0
        for i in range(minutes * 60):
            log.sample(i, i, 3000, 4000, 0, 4)
            if policy == logstore.CADENCE and i % 30 == 29:
                log.flush()
                worst = max(worst, dev.stats()["longest_blackout_us"])
                dev.longest_blackout_us = 0
        log.end(1, 100, minutes * 60)
        log.flush()
        st = dev.stats()
        worst = max(worst, st["longest_blackout_us"])
        out.append((worst, st["bytes_programmed"] // minutes, st["blocks_erased"] * 100 // minutes))
        _umount(dev)
    print("OK blackout cadence_worst_us=%d bytes_per_min=%d erases_per_100min=%d "
          "offonly_worst_us=%d bytes_per_min=%d erases_per_100min=%d" % (out[0] + out[1]))


def capacity(img, minutes):
    """Figure: sessions of `minutes` that fit on the Pico-sized flash before pruning starts."""
    import logstore

    _fresh(img).close()
    dev = _mount(img)
    log = logstore.Log("/fl/log")
    log.open("power on", "0.1.0")
    k = 0
    while log.pruned == 0:
        _session(log, minutes * 60, k)
        k += 1
    used, total = log._usage()
    _umount(dev)
    print("OK capacity sessions=%d used=%d total=%d" % (k - 1, used, total))


def log_hog(img, blocks):
    """Flash filled by something logstore may not prune (a technician's file): the session's
    summary still goes on flash in the headroom, and the end record; once the flash is truly full,
    older sessions go (unarchived or not) so the current one's summary is written; nothing raises."""
    import logstore

    _fresh(img, blocks).close()
    dev = _mount(img, blocks)
    log = logstore.Log("/fl/log")
    log.open("power on", "0.1.0")
    chunk = b"\x55" * 4096
    with open("/fl/hog.bin", "wb") as f:
        for _ in range(blocks * 85 // 100):
            f.write(chunk)
    _session(log, 300)
    assert log.summary_ok
    recs = R.read(_read("/fl/log/s%06d.sum" % log.session))
    assert [r["type"] for r in recs] == ["summary", "end"], recs
    # Now truly full: nothing raises, failures are counted.
    try:
        with open("/fl/hog2.bin", "wb") as f:
            while True:
                f.write(chunk)
    except OSError:
        pass
    errs = log.write_errors
    for k in range(3):
        _session(log, 300, k)
        # Older sessions made room (pruned even though unarchived): the newest is on flash.
        assert log.summary_ok, k
        recs = R.read(_read("/fl/log/s%06d.sum" % log.session))
        assert recs[0]["type"] == "summary", recs
    assert log.pruned >= 2
    _umount(dev)
    # The filesystem still mounts; the newest session's summary is there.
    dev = _mount(img, blocks)
    n = max(int(x[1:7]) for x in os.listdir("/fl/log") if x.endswith(".sum"))
    assert n == 4, n
    _umount(dev)
    print("OK hog", errs, log.write_errors, log.lost)
