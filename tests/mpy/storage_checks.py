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
