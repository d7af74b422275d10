"""firmware/records.py: framing with length + CRC32; torn and bit-flipped data never misparse."""
import struct

import records as R
from hypothesis import given, settings
from hypothesis import strategies as st


def _event(seq, code=7, a=1, b=-2, flags=R.F_RTC):
    buf = bytearray(R.MAX_FRAME)
    n = R.seal(buf, 0, R.T_EVENT, R.pack_event(buf, 0, seq, 3, flags, 1_700_000_000, code, a, b))
    return bytes(buf[:n])


def _stream(k):
    return [_event(i, code=i % 50, a=i * 1000, b=-i) for i in range(k)]


def test_round_trip_of_every_type():
    buf = bytearray(R.MAX_FRAME)
    out = b""
    settings_ = (2, 15000, 25000, 1200, 60, 30, 1, 0, 120, 0, 100, 600 * 60000)
    n = R.seal(buf, 0, R.T_SUMMARY, R.pack_summary(buf, 0, 10, 4, 0, 33, 17, 0, settings_, "0.1.0", "hands_feet"))
    out += bytes(buf[:n])
    p = R.pack_prefix(buf, 0, 11, 4, 0, 34)
    struct.pack_into(R.SAMPLES, buf, R.HEADER + p, 17, 0, 1234, 2, 2)
    q = R.HEADER + p + R.SAMPLES_LEN
    struct.pack_into("<10H", buf, q, 100, 90, 2000, 300, 4 | 128, 200, 190, 2100, 0xFFFF, 3)
    n = R.seal(buf, 0, R.T_SAMPLES, p + R.SAMPLES_LEN + 20)
    out += bytes(buf[:n])
    out += _event(12)
    n = R.seal(buf, 0, R.T_TEXT, R.pack_text(buf, 0, 13, 4, 1, 35, 2, "presets[0].target_ua 15000 -> 16000"))
    out += bytes(buf[:n])
    st_ = R.Stats()
    recs = R.read(out, st_)
    assert [r["type"] for r in recs] == ["summary", "samples", "event", "text"]
    s = recs[0]
    assert (s["seq"], s["boot"], s["rtc_valid"], s["time"], s["session"]) == (10, 4, False, 33, 17)
    assert (s["preset_idx"], s["target_ua"], s["dose_cap_uas"], s["version"], s["preset"]) == (2, 15000, 36_000_000, "0.1.0", "hands_feet")
    assert recs[1]["samples"] == [(100, 90, 2000, 3000, 4, 1), (200, 190, 2100, -1, 3, 0)]
    assert recs[1]["dose_uas"] == 1234
    assert (recs[2]["code"], recs[2]["a"], recs[2]["b"], recs[2]["rtc_valid"]) == (7, 1, -2, True)
    assert recs[3]["text"] == "presets[0].target_ua 15000 -> 16000"
    assert (st_.good, st_.bad, st_.skipped, st_.torn) == (4, 0, 0, 0)


def test_seal_refuses_an_oversized_payload():
    buf = bytearray(R.MAX_FRAME + 8)
    try:
        R.seal(buf, 0, R.T_TEXT, R.MAX_PAYLOAD + 1)
    except ValueError:
        pass
    else:
        raise AssertionError("accepted")


def test_torn_tail_is_counted_not_read():
    recs = _stream(5)
    data = b"".join(recs)
    cut = data[: len(data) - 3]
    st_ = R.Stats()
    got = R.read(cut, st_)
    assert [r["seq"] for r in got] == [0, 1, 2, 3]
    assert st_.torn == len(recs[4]) - 3 and st_.bad == 0


def test_corrupt_record_in_the_middle_is_skipped_and_the_rest_found():
    recs = _stream(6)
    bad = bytearray(recs[2])
    bad[10] ^= 0x40
    data = b"".join(recs[:2]) + bytes(bad) + b"".join(recs[3:])
    st_ = R.Stats()
    got = R.read(data, st_)
    assert [r["seq"] for r in got] == [0, 1, 3, 4, 5]
    assert st_.bad == 1 and st_.skipped == len(bad) and st_.torn == 0


def test_garbage_between_records_and_a_corrupt_length():
    recs = _stream(3)
    bad = bytearray(recs[1])
    bad[2] = 0xFF  # length now runs far past the end
    data = recs[0] + b"\xa5\xa5\x00junk" + bytes(bad) + recs[2]
    st_ = R.Stats()
    assert [r["seq"] for r in R.read(data, st_)] == [0, 2]
    assert st_.bad == 1


@settings(max_examples=300, deadline=None)
@given(k=st.integers(1, 8), cut=st.integers(0, 400))
def test_truncation_never_misparses(k, cut):
    recs = _stream(k)
    data = b"".join(recs)
    cut = min(cut, len(data))
    got = R.read(data[:cut])
    # Exactly the records wholly inside the prefix, in order, unchanged.
    whole = 0
    size = 0
    for r in recs:
        if size + len(r) <= cut:
            whole += 1
            size += len(r)
    assert [r["seq"] for r in got] == list(range(whole))


@settings(max_examples=500, deadline=None)
@given(k=st.integers(1, 6), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 7)), min_size=1, max_size=4))
def test_bit_flips_never_misparse(k, flips):
    recs = _stream(k)
    data = bytearray(b"".join(recs))
    hit = set()
    for pos, bit in flips:
        pos %= len(data)
        data[pos] ^= 1 << bit
    # Which records were touched (a flip pair on the same bit cancels: compare contents).
    start = 0
    clean = []
    for i, r in enumerate(recs):
        if bytes(data[start:start + len(r)]) == r:
            clean.append(i)
        else:
            hit.add(i)
        start += len(r)
    got = R.read(bytes(data))
    seqs = [r["seq"] for r in got]
    # Every record returned is one that was written, unchanged; every untouched one is returned.
    for r in got:
        assert r == R.read(recs[r["seq"]])[0]
    for i in clean:
        assert i in seqs
    assert seqs == sorted(seqs)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise(data):
    st_ = R.Stats()
    R.read(data, st_)
    assert st_.skipped + st_.torn <= len(data)


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=R.MAX_PAYLOAD), typ=st.integers(0, 255))
def test_any_payload_frames_and_scans_back(payload, typ):
    f = R.frame(typ, payload)
    got = list(R.scan(f))
    assert len(got) == 1 and got[0][0] == typ and bytes(got[0][1]) == payload


def test_runs_under_micropython(mpy):
    r = mpy("import storage_checks; storage_checks.records_basic()")
    assert r.stdout.startswith("OK records")
