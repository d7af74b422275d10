"""Smoke test of the benchmarks: each bench module's run() in its quick mode returns
well-formed figures (name, number, unit). Speed is not asserted here: `make bench` prints it."""
import math

import pytest

from bench import bench_firmware, bench_sim


def _check(figs, prefix, must):
    names = [f[0] for f in figs]
    assert len(names) == len(set(names)), names
    for name, value, unit in figs:
        assert name.startswith(prefix) and name.isidentifier(), name
        assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
        assert math.isfinite(value), (name, value)
        assert isinstance(unit, str) and unit, name
    for m in must:
        assert m in names, (m, names)
    return dict((f[0], f[1]) for f in figs)


@pytest.mark.parametrize("quick_env", [False, True])
def test_quick_flag(monkeypatch, quick_env):
    from bench import _mpy

    monkeypatch.setenv("BENCH_QUICK", "1" if quick_env else "0")
    assert _mpy.quick() is quick_env
    assert _mpy.quick(True) is True


def test_bench_firmware_quick():
    f = _check(bench_firmware.run(quick=True), "fw_", (
        "fw_tick_us_median", "fw_tick_us_p99", "fw_i2c_ina219_reads_per_tick",
        "fw_heaplock_memory_errors", "fw_fault_reaction_ms_i2c_nack", "fw_reg_palms_err_true_ua"))
    assert f["fw_tick_us_median"] > 0
    assert f["fw_tick_us_p99"] >= f["fw_tick_us_median"]
    # The driver's budget: the shunt register on every tick, the status pair (bus, power) on one
    # tick in SENSOR_FLAGS_MS / LOOP_PERIOD_MS (ina219.py): 1 + 2 x 10 / 20 = 2 reads a tick.
    import limits as L

    assert f["fw_i2c_ina219_reads_per_tick"] == 1 + 2 * L.LOOP_PERIOD_MS / L.SENSOR_FLAGS_MS
    assert f["fw_fault_reaction_ms_i2c_nack"] > 0


def test_bench_sim_quick():
    f = _check(bench_sim.run(quick=True), "sim_", (
        "sim_inproc_treat_x_real_time", "sim_inproc_session40_projected_wall_s", "sim_mpremote_exec_rtt_ms_median"))
    assert f["sim_inproc_treat_x_real_time"] > 0
    assert f["sim_mpremote_exec_rtt_ms_median"] > 0
