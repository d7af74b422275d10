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
