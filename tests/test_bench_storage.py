"""make bench's storage figures come out well-formed (quick mode: a 5-minute trace, 20 power
cuts over treatments, 1 during a treatment by the firmware)."""
from bench import bench_storage


def test_storage_bench_quick():
    f = {name: (value, unit) for name, value, unit in bench_storage.run(quick=True)}
    assert f["storage_blackout_while_treating_us"][0] == 0
    assert f["storage_bytes_per_session_min"][0] > 0
    # Typical sector erase (45 ms) below the datasheet worst case (400 ms): both measured.
    assert 0 < f["storage_blackout_output_off_typ_us"][0] < f["storage_blackout_output_off_worst_us"][0]
    # Power cuts during treatments: within the goals, and nothing written to flash meanwhile.
    assert f["storage_power_cuts_tested"][0] == 20
    assert f["storage_trace_lost_by_power_cut_max_s"][0] <= 60
    assert f["storage_dose_lost_by_power_cut_max_s"][0] <= 10
    assert f["storage_treat_time_lost_by_power_cut_max_s"][0] <= 10
    assert f["storage_flash_writes_while_treating"][0] == 0
    assert 0 < f["storage_journal_i2c_us_per_s"][0] < 2_000
    assert f["storage_firmware_power_cuts_tested"][0] == 1
    assert f["storage_flash_ops_with_output_on"][0] == 0
    assert f["storage_firmware_trace_lost_by_power_cut_max_s"][0] <= 60
