"""Ramp generator and regulator (firmware/ramp.py, regulator.py)."""
import limits as L
import pins
from ramp import Ramp
from regulator import Regulator, ua_to_duty


def test_slow_ramp_is_exact_with_remainder_carry():
    r = Ramp(250, 500)  # 15 mA over 60 s at a 2 ms tick: 0.5 uA per tick
    r.set_target(15_000)
    t = 0
    while t < 60_000:
        r.step(2)
        t += 2
        assert r.value == 250 * t // 1000
    assert r.value == 15_000 and r.at_target()
    r.step(2)
    assert r.value == 15_000


def test_ramp_exact_over_irregular_ticks():
    r = Ramp(7, 7)  # 7 uA/s: far below one uA per tick
    r.set_target(1_000)
    total = 0
    for dt in [1, 3, 2, 7, 0, 13, 2, 2, 999, 1, 1000] * 5:
        r.step(dt)
        total += dt
        assert r.value == min(1_000, 7 * total // 1000)


def test_ramp_down_and_no_overshoot():
    r = Ramp(1_000, 2_000)
    r.reset(5_000)
    r.set_target(1_234)
    prev = 5_000
    for _ in range(5_000):
        v = r.step(2)
        assert 0 <= prev - v <= 4 and v >= 1_234
        prev = v
    assert r.value == 1_234
    r.set_target(1_300)  # small step up: exact, no overshoot, even with a big dt
    r.step(1_000)
    assert r.value == 1_300


def test_direction_change_drops_the_carry():
    r = Ramp(300, 300)
    r.set_target(10_000)
    r.step(3)  # 0.9 uA carried
    assert r.value == 0
    r.set_target(0)  # now going down: the carry was for going up
    r.set_target(10_000)
    r.step(1)
    assert r.value == 0  # 0.3 uA, not 1.2


def test_hold_below_clamps_value_not_target_and_climbs_again_at_the_slew():
    r = Ramp(1_000, 1_000)
    r.reset(8_000)
    r.set_target(12_000)
    r.hold_below(5_000)
    assert r.value == 5_000 and r.target == 12_000
    r.hold_below(9_000)  # never raises
    assert r.value == 5_000
    r.step(10)
    assert r.value == 5_010
    r.hold_below(-5)
    assert r.value == 0
    r.set_slew(0, -3)  # nonsense slews become 1 uA/s, never 0 (a ramp that never ends)
    assert r.slew_up == 1 and r.slew_down == 1


def test_ua_to_duty():
    assert ua_to_duty(0) == 0 and ua_to_duty(-5) == 0
    assert ua_to_duty(40_000) == 65535 and ua_to_duty(50_000) == 65535
    assert ua_to_duty(20_000) == 32767
    assert ua_to_duty(30_000) == 30_000 * 65535 // 40_000


def _loop(reg, sp, gain_pct, n, max_ua=30_000, compliance_ua=None, dt=2):
    meas = 0
    out = 0
    for _ in range(n):
        out = reg.update(sp, meas, True, dt, max_ua, compliance_ua is not None and meas >= compliance_ua)
        meas = out * gain_pct // 100
        if compliance_ua is not None and meas > compliance_ua:
            meas = compliance_ua
    return out, meas


def test_feed_forward_exact_source_needs_no_trim():
    reg = Regulator()
    out, meas = _loop(reg, 10_000, 100, 1_000)
    assert out == 10_000 and meas == 10_000 and reg.trim == 0 and not reg.saturated


def test_integral_trims_a_weak_source_to_the_target():
    reg = Regulator()
    out, meas = _loop(reg, 10_000, 95, 5_000)  # 10 s
    assert abs(meas - 10_000) <= 20
    assert 400 <= reg.trim <= 600 and not reg.saturated


def test_trim_is_clamped_and_saturation_reported():
    reg = Regulator()
    out, meas = _loop(reg, 10_000, 50, 10_000)  # a source at half gain cannot be trimmed up
    assert reg.trim == L.TRIM_MAX_UA and out == 10_000 + L.TRIM_MAX_UA
    assert reg.saturated


def test_anti_windup_at_compliance_and_recovery_without_overshoot():
    reg = Regulator()
    out, meas = _loop(reg, 15_000, 95, 5_000, compliance_ua=8_000)
    assert meas == 8_000 and reg.trim <= 0 + 2  # no upward integration at the rail
    assert reg.saturated
    # skin resistance falls: the target becomes reachable; no wound-up trim to overshoot
    out, meas = _loop(reg, 15_000, 95, 1)
    assert meas <= 15_000


def test_anti_windup_at_max_ua():
    reg = Regulator()
    _loop(reg, 12_000, 90, 10_000, max_ua=12_000)
    assert reg.trim == 0 and reg.out == 12_000 and reg.saturated


def test_trim_moves_at_most_one_ma_per_second():
    reg = Regulator()
    prev = reg.update(10_000, 0, True, 2, 30_000, False)
    for _ in range(500):
        o = reg.update(10_000, 0, True, 2, 30_000, False)
        assert 0 <= o - prev <= 2
        prev = o


def test_invalid_reading_and_freeze_hold_the_trim():
    reg = Regulator()
    _loop(reg, 10_000, 95, 2_000)
    t = reg.trim
    for _ in range(100):
        reg.update(10_000, 0, False, 2, 30_000, False)
    assert reg.trim == t and not reg.saturated
    reg.freeze = True
    for _ in range(100):
        reg.update(10_000, 0, True, 2, 30_000, False)
    assert reg.trim == t


def test_reset_and_zero_setpoint():
    reg = Regulator()
    _loop(reg, 10_000, 95, 2_000)
    assert reg.trim > 0
    assert reg.update(0, 9_000, True, 2, 30_000, False) == 0 and reg.trim == 0
    _loop(reg, 10_000, 95, 2_000)
    reg.reset()
    assert reg.trim == 0 and reg.out == 0 and not reg.saturated
    assert reg.update(5_000, 0, True, 2, 3_000, False) == 3_000  # clamp to max_ua


def test_an_error_within_a_pwm_step_is_held_not_dithered():
    # The source moves in steps of one setpoint PWM level (40 mA / 2500 = 16 uA at 50 kHz).
    # A target between two steps: integrating the leftover error would hop the output
    # between the two steps every tick; the trim holds instead, on a step at most one step
    # away, and a reading's noise of a few uA does not move it.
    step = pins.SETPOINT_FULL_SCALE_UA * pins.SETPOINT_PWM_FREQ // 125_000_000
    assert step == 16
    reg = Regulator()
    sp = 15_000  # 15_000 / 16 = 937.5 steps: exactly between two
    meas = 0
    outs = []
    for _ in range(3_000):  # 30 s at 10 ms
        out = reg.update(sp, meas, True, 10, 30_000, False)
        meas = (out * 98 // 100) // step * step  # a weak source, quantized by the PWM
        meas += (-2, 0, 1, 2, -1)[len(outs) % 5]  # the reading's noise
        outs.append(out)
    assert abs(meas - sp) <= step + 2
    assert len(set(outs[-500:])) == 1  # the last 5 s: one output, no hopping
