"""Property tests (hypothesis) over the control core: random buttons, loads and faults.

Invariants checked on every tick of every example:
- the output is disabled in IDLE, CONFIRM, DONE, STOPPED and FAULT, and whenever a fault is
  latched or the supervisor is not armed;
- the commanded current is never above the preset ceiling (nor 30 mA);
- no commanded step up is larger than the ramp and trim allow; steps down are bounded by the
  STOP ramp except a cutoff to zero and the compliance hold (the current is already there);
- after re-immersion the command restarts from zero;
- the polarity switches only with the output at zero and no current flowing;
- a fault latches until STOP with its cause gone, and leads to IDLE only then;
- every integer the core keeps fits rp2's small ints (no big-int allocation per tick).
"""
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import MPY_TESTS

sys.path.insert(0, str(MPY_TESTS))

import config  # noqa: E402
import limits as L  # noqa: E402
import session as S  # noqa: E402
from core_checks import Bench  # noqa: E402
from ramp import Ramp  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
OFF_STATES = (S.IDLE, S.CONFIRM, S.DONE, S.STOPPED, S.FAULT)
SMALL = 1 << 30


def fast_config():
    cfg = config.defaults()
    for p in cfg["presets"]:
        p["duration_s"] = 1_200
        p["ramp_up_s"] = max(L.RAMP_UP_S_MIN, -(-p["target_ua"] // L.RAMP_UP_MAX_UA_S))
        p["ramp_down_s"] = max(L.RAMP_DOWN_S_MIN, -(-p["target_ua"] // L.RAMP_DOWN_MAX_UA_S))
    cfg["presets"][2]["pulsed"] = {"freq_hz": 1_000, "duty_pct": 50}
    return cfg


BUTTONS = st.sampled_from([0, 0, 0, S.BTN_START, S.BTN_START, S.BTN_STOP, S.BTN_UP, S.BTN_UP, S.BTN_DOWN, S.BTN_MODE, S.BTN_START | S.BTN_STOP])
_FAULTY = [
    ("load", 100), ("err", 5), ("ovf", True), ("fresh", False), ("hw_limit", True), ("stuck_on", True),
    ("extra_ua", 3_000), ("extra_ua", 31_000), ("gain_pct", 50), ("vbus", True), ("loop_us", 30_000),
]
_BENIGN = [
    ("load", 3_000), ("load", 2_000), ("load", 0), ("load", 0), ("load", 12_000), ("load", 60_000),
    ("err", 0), ("ovf", False), ("fresh", True), ("hw_limit", False), ("stuck_on", False), ("extra_ua", 0),
    ("gain_pct", 100), ("gain_pct", 95), ("gain_pct", 105), ("vbus", False), ("loop_us", 1_500),
]
# Faults are rarer than ordinary events, and every fault has its undoing among the benign ones.
PLANT = st.sampled_from(_BENIGN * 2 + [("none", 0)] * 20 + _FAULTY)
STEP = st.tuples(BUTTONS, PLANT, st.sampled_from([2, 10, 10, 50, 1_000]), st.integers(1, 250))


def small_ints(*objs):
    for o in objs:
        for k, v in vars(o).items():
            if type(v) is int:
                assert -SMALL < v < SMALL, (type(o).__name__, k, v)
            elif type(v) is list:
                for x in v:
                    assert type(x) is not int or -SMALL < x < SMALL, (type(o).__name__, k)


def check_sequence(bench, steps):
    s, p = bench.s, bench.p
    prev_cmd_ua, prev_en, prev_pol, prev_state = s.cmd.ua, s.cmd.enable, s.cmd.polarity, s.state
    in_fault = False
    for buttons, (attr, val), dt, n in steps:
        if attr != "none":
            setattr(p, attr, val)
        bench.dt = dt
        for i in range(n):
            b = buttons if i == 0 else 0
            meas_ua = p.ua
            cmd = bench.tick(b)
            st_ = s.state
            pre = s.preset
            # output off where it must be
            if st_ in OFF_STATES or s.sup.fault or not s.sup.armed:
                assert not cmd.enable and cmd.ua == 0 and cmd.duty == 0 and not cmd.gate, S.STATE_NAMES[st_]
            # never above the ceiling
            assert cmd.ua <= pre.ceiling_ua <= L.ABS_MAX_UA
            assert cmd.ua <= s.sup.cmd_max
            # steps: the ramp's slew plus the trim's (1 uA/ms), each rounded up
            allow_up = pre.slew_up * dt // 1000 + 1 + dt * L.TRIM_ERR_MAX_UA // L.TRIM_TI_MS + 1
            if cmd.enable and prev_en:
                up = cmd.ua - prev_cmd_ua
                assert up <= allow_up, (S.STATE_NAMES[prev_state], S.STATE_NAMES[st_], prev_cmd_ua, cmd.ua)
                down = -up
                allow_down = L.ABS_MAX_UA * dt // L.STOP_RAMP_MS + 1 + dt + 1
                assert (
                    down <= allow_down
                    or cmd.ua <= allow_up  # cutoff to (near) zero
                    or s.limited  # compliance hold: the current is already below
                    or (s.sup.open_now and cmd.ua <= L.CONTACT_TEST_UA + allow_up)  # open: to the test level
                ), (S.STATE_NAMES[prev_state], S.STATE_NAMES[st_], prev_cmd_ua, cmd.ua)
            elif cmd.enable:
                # switching on: from zero (contact check or resume ramp), never a jump
                assert cmd.ua <= allow_up
            # re-immersion restarts from zero
            if prev_state == S.PAUSED and st_ == S.RAMP_UP:
                assert s.set_ua <= pre.slew_up * dt // 1000 + 1 and cmd.ua <= allow_up
            # polarity only at zero
            if cmd.polarity != prev_pol and cmd.enable:
                assert prev_cmd_ua == 0 and meas_ua <= L.ZERO_TOL_UA and cmd.ua <= allow_up
            if cmd.enable:
                prev_pol = cmd.polarity
            # faults latch until STOP with the cause gone
            if in_fault:
                if st_ != S.FAULT:
                    assert b & S.BTN_STOP and st_ == S.IDLE and not s.sup.cause_present()
                    in_fault = False
                else:
                    assert s.sup.fault != 0 and s.fault == s.sup.fault
            if st_ == S.FAULT:
                in_fault = True
            prev_cmd_ua, prev_en, prev_state = cmd.ua, cmd.enable, st_
    small_ints(s, s.sup, s.ramp, s.reg, s.cmd, s.events)


@SETTINGS
@given(preset=st.integers(0, 3), fast=st.booleans(), steps=st.lists(STEP, min_size=1, max_size=40))
def test_invariants_over_random_buttons_loads_and_faults(preset, fast, steps):
    bench = Bench(fast_config() if fast else None, preset=preset)
    check_sequence(bench, steps)


# Sequences that reach treatment first, then get disturbed: more time in the running states.
@SETTINGS
@given(preset=st.integers(0, 3), steps=st.lists(STEP, min_size=1, max_size=25))
def test_invariants_from_treatment(preset, steps):
    bench = Bench(fast_config(), preset=preset, tick_ms=10)
    bench.start()
    for _ in range(4_000):
        bench.tick()
        if bench.s.state == S.TREAT:
            break
    assert bench.s.state == S.TREAT
    check_sequence(bench, steps)


@SETTINGS
@given(
    up=st.integers(1, 30_000), down=st.integers(1, 30_000),
    moves=st.lists(st.tuples(st.integers(0, 30_000), st.lists(st.integers(0, 1_000), min_size=1, max_size=30)), min_size=1, max_size=10),
)
def test_ramp_never_overshoots_nor_outruns_its_slew(up, down, moves):
    r = Ramp(up, down)
    for target, dts in moves:
        r.set_target(target)
        for dt in dts:
            before = r.value
            v = r.step(dt)
            if target >= before:
                assert before <= v <= target and v - before <= (up * dt + 999) // 1000
            else:
                assert target <= v <= before and before - v <= (down * dt + 999) // 1000
    # exactness: from rest, over a run without direction change, the carry loses nothing
    r.reset(r.value)
    r.set_target(r.value + 1_000)
    total = 0
    start = r.value
    for dt in [3] * 100:
        r.step(dt)
        total += dt
        assert r.value == min(start + 1_000, start + up * total // 1000)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10 ** 12), 10 ** 12) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)
FIELDS = list(config._PRESET_KEYS)


@SETTINGS
@given(junk=JSON)
def test_validate_never_raises_on_arbitrary_json(junk):
    ok, errors = config.validate(junk)
    assert isinstance(ok, bool) and isinstance(errors, list)
    assert ok == (not errors)


@SETTINGS
@given(
    edits=st.lists(
        st.tuples(st.integers(0, 3), st.sampled_from(FIELDS), st.one_of(st.integers(-5, 50_000), st.booleans(), st.none(), JSON)),
        min_size=1, max_size=6,
    )
)
def test_config_can_only_tighten_the_hard_limits(edits):
    cfg = config.defaults()
    for i, key, value in edits:
        cfg["presets"][i][key] = value
    ok, errors = config.validate(cfg)
    if not ok:
        assert all("allowed" in e for e in errors)
        return
    for p in cfg["presets"]:
        assert L.TARGET_MIN_UA <= p["target_ua"] <= p["ceiling_ua"] <= L.ABS_MAX_UA
        assert p["ceiling_ua"] <= p["electrode_area_cm2"] * L.DENSITY_MAX_UA_PER_CM2
        assert L.DURATION_MIN_S <= p["duration_s"] <= L.DURATION_MAX_S
        assert 1 <= p["dose_cap_mamin"] <= L.DOSE_MAX_MAMIN
        assert -(-p["target_ua"] // p["ramp_up_s"]) <= L.RAMP_UP_MAX_UA_S
        assert not (p["name"] == config.GLYCO and p["reverse"])
    for pr in config.compile_presets(cfg):
        assert pr.ceiling_ua <= L.ABS_MAX_UA and pr.dose_cap_uas <= L.DOSE_MAX_UAS
        assert pr.slew_up <= L.RAMP_UP_MAX_UA_S and pr.slew_down <= L.RAMP_DOWN_MAX_UA_S


# Whole sessions: long benign stretches (hands in and out, loads, nurse buttons) so the
# reversal, the final ramp-down and DONE are reached and checked too.
LONG = st.tuples(
    st.sampled_from([0, 0, 0, S.BTN_UP, S.BTN_DOWN, S.BTN_START, S.BTN_MODE]),
    st.sampled_from(_BENIGN + [("none", 0)] * 10),
    st.sampled_from([20, 50, 100]),
    st.integers(1, 4_000),
)


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(preset=st.integers(0, 3), steps=st.lists(LONG, min_size=1, max_size=20))
def test_invariants_over_whole_sessions(preset, steps):
    bench = Bench(fast_config(), preset=preset, tick_ms=20)
    bench.start()
    check_sequence(bench, steps + [(0, ("load", 3_000), 100, 16_000)])
    assert bench.s.state in (S.DONE, S.STOPPED, S.IDLE, S.CONFIRM)
