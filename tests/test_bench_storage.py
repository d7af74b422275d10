"""make bench's storage figures come out well-formed (quick mode: a 5-minute trace)."""
from bench import bench_storage


def test_storage_bench_quick():
    f = {name: (value, unit) for name, value, unit in bench_storage.run(quick=True)}
    assert f["storage_blackout_while_treating_us"][0] == 0
    assert f["storage_bytes_per_session_min"][0] > 0
    # Typical sector erase (45 ms) below the datasheet worst case (400 ms): both measured.
    assert 0 < f["storage_blackout_output_off_typ_us"][0] < f["storage_blackout_output_off_worst_us"][0]
