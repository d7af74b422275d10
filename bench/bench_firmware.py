"""The firmware's control tick on the unix port, its allocations and I2C
traffic, fault reaction per kind, regulation per scenario, heap over a whole session.

Every figure comes from the real firmware on the in-process virtual unit (tests/mpy/fwsim.py)
run by a MicroPython script in bench/mpy_*.py. Timing figures run alone; virtual-time ones
(deterministic) two at a time. `run(quick=True)` (or BENCH_QUICK=1) runs a reduced set
for the smoke test.
"""
from . import _mpy as M

FAULTS = ("i2c_nack", "i2c_stuck", "over_current", "output_dead", "short", "hw_limit", "contact_lost")
# scenario -> (preset, extra args)
SCENARIOS = (
    ("palms", "hands_feet", ()),
    ("soles", "feet", ()),
    ("armpits", "armpits", ()),
    ("soft_water", "hands_feet", ()),
    ("resistance_drop", "hands_feet", ("event_s=150",)),  # its drop (600 s) moved into the window
    ("noisy_contact", "hands_feet", ()),
)


def run(quick=None):
    q = M.quick(quick)
    out = []
    add = out.append

    # --- tick cost, allocation, I2C: alone, timing matters ---------------------------------
    M.say("firmware: tick cost, allocation, I2C (TREAT, 10 mA palms)")
    # A larger heap for the statistics only: 10 000 durations sorted as lists (the firmware's
    # own use stays as measured: allocation is counted per tick, not in the heap's size).
    r = M.run("mpy_tick.py", "n=%d" % (500 if q else 10_000), heapsize="4M")
    if r:
        add(("fw_tick_us_median", r["tick_us_median"], "us (unix port, incl. simulated hw)"))
        add(("fw_tick_us_p99", r["tick_us_p99"], "us"))
        add(("fw_tick_us_max", r["tick_us_max"], "us"))
        add(("fw_tick_fast_us_median", r["tick_fast_us_median"], "us (ticks without display/status work)"))
        add(("fw_tick_slow_us_median", r["tick_slow_us_median"], "us (ticks with display/status work, %.1f %% of ticks)" % r["tick_slow_share_pct"]))
        add(("fw_alloc_bytes_per_tick_lock_off", r["alloc_bytes_per_tick"], "B/tick (mem_total, all code in the tick)"))
        add(("fw_alloc_sim_bytes_per_tick_lock_off", r["alloc_sim_bytes_per_tick"], "B/tick (simulated hardware's share)"))
        add(("fw_alloc_fw_bytes_per_fast_tick_lock_off", r["alloc_fw_fast_bytes_per_tick"], "B/tick (firmware, ticks without _slow; includes big frames the VM heap-allocates only when it can)"))
        add(("fw_alloc_fw_bytes_per_slow_call", r["alloc_fw_slow_bytes_per_call"], "B/call (display 5 Hz, status 1 Hz, events)"))
        add(("fw_i2c_calls_per_tick", r["i2c_calls_per_tick"], "calls/tick"))
        add(("fw_i2c_ina219_reads_per_tick", r["i2c_ina219_calls_per_tick"], "readfrom_mem_into/tick"))
        add(("fw_i2c_display_writes_per_tick", r["i2c_display_calls_per_tick"], "writeto/tick (SSD1306)"))
        add(("fw_i2c_wire_transactions_per_tick", r["i2c_wire_transactions_per_tick"], "transactions/tick (pointer write + read each)"))

    # --- deterministic (virtual-time) figures, in parallel -----------------------------------
    jobs = [("mpy_heaplock.py", ("treat_s=%d" % (2 if q else 30),), {})]
    faults = FAULTS[:2] if q else FAULTS
    jobs += [("mpy_faults.py", (k,), {}) for k in faults]
    scen = SCENARIOS[:1] if q else SCENARIOS
    jobs += [("mpy_reg.py", (n, "preset=" + p, "treat_s=%d" % (5 if q else 120)) + extra + (("fast=1",) if q else ()), {}) for n, p, extra in scen]
    if not q:  # the 512K run gives the high-water when 128K does not suffice (both at once)
        jobs.append(("mpy_session.py", (), {"heapsize": "512K"}))
        jobs.append(("mpy_session.py", (), {"heapsize": "128K"}))
    M.say("firmware: heap lock, %d faults, %d scenarios%s (2 at a time)" % (len(faults), len(scen), "" if q else ", 128K session"))
    res = M.run_many(jobs)
    hl = res[0]
    if hl:
        add(("fw_heaplock_memory_errors", hl["memory_errors"], "MemoryErrors under heap_lock (0 = no allocation in the safety path)"))
        add(("fw_heaplock_memory_errors_via_mock", hl["memory_errors_via_mock"], "of them through a machine-mock method"))
        add(("fw_heaplock_ticks", hl["ticks_locked"], "ticks completed under the lock"))
        add(("fw_heaplock_reached_treat", hl["reached_treat"], "1/0"))
        M.say("  heap lock errors by stage@state: %s" % hl["errors"])
    for k, r in zip(faults, res[1:1 + len(faults)]):
        if r:
            add(("fw_fault_reaction_ms_%s" % k, r["reaction_ms"], "virtual ms to %s (-1: none in 5 s; ended in %s)"
                 % ("setpoint 0" if k == "contact_lost" else "enable low", r["state_after"])))
    for (n, p, extra), r in zip(scen, res[1 + len(faults):1 + len(faults) + len(scen)]):
        if r:
            add(("fw_reg_%s_reached_treat" % n, r["reached_treat"], "1/0 within 240 virtual s (compliance may hold RAMP UP)"))
            add(("fw_reg_%s_err_meas_ua" % n, r["err_meas_ua"], "uA mean |measured - setpoint| in TREAT (preset %s)" % p))
            add(("fw_reg_%s_err_true_ua" % n, r["err_true_ua"], "uA mean |true - target| in TREAT"))
            add(("fw_reg_%s_overshoot_ua" % n, r["overshoot_ua"], "uA true current above target, from START"))
            add(("fw_reg_%s_settling_s" % n, r["settling_s"], "s from TREAT entry to within 1 %% (-1: not settled; TREAT entered at %.0f s)" % r["treat_entry_s"]))
    # --- the sensing chain (tests/mpy/fw_sensing.py): re-contact and sensing faults ----------
    # quick (the suite's smoke test): the cheap contact-check sweep only
    states = ("contact",) if q else ("contact", "ramp_up", "treat", "rev_down", "rev_up", "ramp_down")
    jobs = [("splash", st) for st in states] + ([] if q else [("fault", "treat")])
    M.say("firmware: contact broken in %d states, sensing faults in TREAT (2 at a time)" % len(states))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=2) as ex:
        sens = list(ex.map(lambda j: M.run_r("tests/mpy/fw_sensing.py", *j), jobs))
    cases = []
    for r in sens:
        if r and "splash" in r:
            cases += r["splash"]
    if cases:
        worst = max(cases, key=lambda c: c["peak_ua"] - c["limit_ua"])
        add(("fw_recontact_peak_ua", worst["peak_ua"], "uA instantaneous, worst re-contact over %d breaks of 1 ms..%d s in %d states (setpoint %d uA)"
             % (len(cases), max(c["d_ms"] for c in cases) // 1000, len(states), worst["sp"])))
        add(("fw_recontact_peak_charge_nc", max(c["spike_nc"] for c in cases), "nC above the source's current, worst re-contact spike"))
        add(("fw_recontact_worst_1ms_over_setpoint_ua", max(c["worst_1ms_ua"] - c["limit_ua"] + 500 for c in cases),
             "uA, worst 1 ms mean of the true current minus the setpoint (bound 500)"))
        add(("fw_recontact_faults", sum(len(c["faults"]) for c in cases), "faults over all breaks (0: a splash is no fault)"))
    fr = sens[-1]
    if not q and fr and "fault" in fr:
        for c in fr["fault"]:
            add(("fw_sensing_detect_ms_%s" % c["fault"].replace(".", "_"), c["detect_ms"],
                 "virtual ms from injection in TREAT to enable low (%.0f periods; fault %d)"
                 % (c["detect_ms"] * 1000 / fr["period_us"], c["code"])))
        add(("fw_sensing_worst_1ms_over_setpoint_ua", max(c["worst_1ms_ua"] - c["sp"] for c in fr["fault"]),
             "uA, worst 1 ms mean of the true current above the setpoint while a sensing fault is on (bound 500)"))
        add(("fw_sensing_peak_ua", max(c["peak_ua"] for c in fr["fault"]),
             "uA instantaneous, the true current's peak while a sensing fault is on (setpoint %d uA)" % max(c["sp"] for c in fr["fault"])))
    if not q:
        s128 = res[-1]
        done128 = 1 if (s128 and s128["completed"]) else 0
        add(("fw_session_128k_completed", done128, "1/0 (palms, hands_feet 20 min, -X heapsize=128K)"))
        s = s128 if done128 else res[-2]
        if s:
            add(("fw_session_live_heap_high_water_bytes", s["live_high_water_bytes"], "B (after gc.collect, every virtual s; heap %d B)" % s["heap_bytes"]))
            add(("fw_session_sim_only_live_bytes", s["sim_live_bytes"], "B (the simulator alone, same heap)"))
            add(("fw_session_fw_share_live_bytes", s["live_high_water_bytes"] - s["sim_live_bytes"], "B (high-water minus simulator; 64-bit objects)"))
            add(("fw_session_alloc_bytes_per_tick", s["alloc_bytes_per_tick"], "B/tick over the session, incl. simulator"))
            add(("fw_session_completed_heap_%s" % ("128k" if done128 else "512k"), 1 if s["completed"] else 0, "1/0 (end state %s)" % s["end_state"]))
    return out
