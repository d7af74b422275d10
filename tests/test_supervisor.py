"""Safety supervisor (firmware/supervisor.py): every rule, the veto, latching and clearing."""
import pytest

import limits as L
from supervisor import Cmd, Meas, Supervisor

P = L.LOOP_PERIOD_MS  # one loop period: what a tick's dt is


def armed(ceiling=25_000, area=120, dose_mamin=600):
    s = Supervisor()
    s.arm(ceiling, area, dose_mamin * L.UAS_PER_MAMIN)
    return s


def let(s, enable, ua, gate_hz=0, duty_u16=65535):
    """The command the supervisor lets out (what the next reading reflects)."""
    c = Cmd()
    c.enable = enable
    c.ua = ua
    c.gate = enable
    c.gate_hz = gate_hz
    c.gate_duty_u16 = duty_u16
    return s.veto(c)


def meas(ua=0, mv=None, **kw):
    m = Meas()
    m.ua = ua
    m.mv = ua * 3 if mv is None else mv  # a 3 kohm load unless told
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def run(s, m, ms, dt=P, sat=False):
    f = 0
    for _ in range(ms // dt):
        f = s.check(dt, m, sat)
    return f


def test_absolute_ceiling_trips_at_once():
    s = armed(ceiling=30_000)
    let(s, True, 20_000)
    assert s.check(P, meas(30_000), False) == 0
    assert s.check(P, meas(30_001), False) == L.F_OVER_ABS
    c = let(s, True, 20_000)
    assert not c.enable and c.ua == 0 and c.duty == 0 and not c.gate


def test_absolute_ceiling_also_when_disarmed_and_off():
    s = Supervisor()
    assert s.check(0, meas(30_001, mv=0), False) == L.F_OVER_ABS


def test_preset_ceiling_trips_at_once_beyond_its_tolerance():
    s = armed(ceiling=15_000)
    let(s, True, 15_000)
    assert s.check(P, meas(15_000 + L.CEILING_TOL_UA), False) == 0
    assert s.check(P, meas(15_001 + L.CEILING_TOL_UA), False) == L.F_OVER_CEIL


def test_over_setpoint_only_beyond_its_window():
    s = armed()
    let(s, True, 10_000)
    m = meas(12_001)
    assert run(s, m, 18) == 0
    assert run(s, m, P) == L.F_OVER_SET
    s = armed()
    let(s, True, 10_000)
    s.check(P, meas(10_000), False)  # in regulation: the clamp set above what the load needs
    let(s, True, 10_000)
    assert run(s, meas(12_000), 10_000) == 0
    # a brief spike (re-contact, filter settling) that ends in time does not trip
    s = armed()
    let(s, True, 10_000)
    assert run(s, meas(14_000), 16) == 0
    assert run(s, meas(10_000), P) == 0
    assert run(s, meas(14_000), 16) == 0


def test_density_limit_and_command_clamp():
    s = armed(ceiling=30_000, area=20)  # 20 cm2 x 500 uA/cm2 = 10 mA
    assert s.cmd_max == 10_000
    c = let(s, True, 20_000)
    assert c.ua == 10_000 and c.enable
    assert run(s, meas(10_001), 98) == 0
    assert run(s, meas(10_001), P) == L.F_DENSITY


def test_short_circuit():
    s = armed()
    let(s, True, 5_000)
    assert run(s, meas(5_000, mv=1_600), 1_000) == 0  # 320 ohm: not a short
    let(s, True, 350)
    assert run(s, meas(350, mv=0), 1_000) == 0  # too little current to judge
    let(s, True, 5_000)
    assert run(s, meas(5_000, mv=1_000), 18) == 0  # 200 ohm ...
    assert run(s, meas(5_000, mv=1_000), P) == L.F_SHORT  # ... for 20 ms


def test_i2c_error_tolerates_two_ticks_then_trips():
    s = armed()
    let(s, True, 5_000)
    m = meas(0, err=5, fresh=False, age_us=0)  # as ina219 reports a failed read
    assert run(s, m, 2 * P) == 0  # two failed reads in a row are tolerated
    assert run(s, meas(5_000), P) == 0  # a good reading resets the window
    assert run(s, m, 2 * P) == 0
    assert run(s, m, P) == L.F_I2C  # the third trips (I2C_ERROR_WINDOW_MS = 3 periods)
    assert L.I2C_ERROR_WINDOW_MS == 3 * P


def test_a_condition_first_seen_after_a_stall_counts_one_period_not_the_gap():
    # A flash erase with the output off stalls the loop for 45-400 ms: the first failed read
    # after it was observed once, not for the whole gap. Three failures in a row still trip.
    s = armed()
    let(s, True, 5_000)
    m = meas(0, err=5, fresh=False, age_us=0)  # as ina219 reports a failed read
    assert s.check(90, m, False) == 0
    assert s.check(P, m, False) == 0
    assert s.check(P, m, False) == L.F_I2C
    # The same for a windowed current rule: over the setpoint, first seen after a stall.
    s = armed()
    let(s, True, 5_000)
    over = meas(5_000 + L.OVER_SETPOINT_MARGIN_UA + 1_000)
    assert s.check(60, over, False) == 0  # counts one period, not 60 ms
    assert run(s, over, L.OVER_SETPOINT_WINDOW_MS - 2 * P) == 0
    assert run(s, over, P) == L.F_OVER_SET  # its full window of observed time


def test_error_readings_are_not_trusted_for_current_rules():
    s = armed()
    let(s, True, 5_000)
    assert s.check(P, meas(99_999, err=110), False) == 0  # the value is junk: I2C rule only


def test_overflow_trips_at_once():
    s = armed()
    let(s, True, 5_000)
    assert s.check(P, meas(5_000, ovf=True), False) == L.F_OVF


def test_stale_reading():
    s = armed()
    let(s, True, 5_000)
    m = meas(5_000, fresh=False)
    assert run(s, m, 18) == 0
    assert run(s, m, P) == L.F_STALE


def test_stale_is_timed_on_the_reads_not_the_ticks():
    # The driver's age (from the read that cleared CNVR to this read) decides, not dt: a read a
    # moment after the clear is not 400 ms stale because the loop stalled before that clear.
    for armed_ in (False, True):
        s = armed() if armed_ else Supervisor()
        let(s, False, 0)  # output off: IDLE, CONFIRM
        assert s.check(400, meas(0, mv=0, fresh=False, age_us=600), False) == 0
        assert s.check(P, meas(0, mv=0, fresh=True, age_us=0), False) == 0
        for age in (2_600, 10_000, 19_000):
            assert s.check(P, meas(0, mv=0, fresh=False, age_us=age), False) == 0
        # a chip that stopped: its age reaches the window at the reads
        assert s.check(P, meas(0, mv=0, fresh=False, age_us=20_000), False) == L.F_STALE
        assert s.fault == L.F_STALE and not s.clear()  # latched while it does not convert
        s.check(P, meas(0, mv=0, fresh=True, age_us=0), False)
        assert s.clear()
    # a stall with the chip stopped since before it counts in full, at the first read after it
    s = Supervisor()
    assert s.check(90, meas(0, mv=0, fresh=False, age_us=90_500), False) == L.F_STALE


def test_a_stall_with_the_output_on_is_the_overrun_rule():
    s = armed()
    let(s, True, 5_000)
    m = meas(5_000, fresh=False, age_us=300, loop_us=L.LOOP_OVERRUN_US + 1)
    assert s.check(90, m, False) == L.F_OVERRUN


def test_stuck_switch_with_output_disabled():
    s = Supervisor()  # idle: never enabled
    let(s, False, 0)
    m = meas(500, mv=0)
    assert run(s, m, 18) == 0
    assert run(s, m, P) == L.F_STUCK_ON
    assert s.start_block(meas(0), False) == L.F_STUCK_ON  # refuses to start while latched


def test_stuck_check_waits_for_the_output_to_settle_after_disabling():
    s = armed()
    let(s, True, 10_000)
    s.check(P, meas(10_000), False)
    let(s, False, 0)
    assert run(s, meas(3_000, mv=0), L.OFF_SETTLE_MS) == 0  # decaying
    assert run(s, meas(0, mv=0), 100) == 0
    assert run(s, meas(ZERO := L.ZERO_TOL_UA, mv=0), 1_000) == 0
    assert run(s, meas(ZERO + 1, mv=0), 20) == L.F_STUCK_ON


def test_hardware_limiter_flag():
    # Output on: the clamp keeps the voltage near what the load needs, so only a collapsed
    # load draws the limiter's current: the nurse reads SHORT CIRCUIT, in the same tick.
    s = armed()
    let(s, True, 5_000)
    assert s.check(P, meas(0, hw_limit=True), False) == L.F_SHORT
    # Output off (self-test, a stuck switch): the limiter's own name.
    s = armed()
    let(s, False, 0)
    assert s.check(P, meas(0, hw_limit=True), False) == L.F_HW_LIMIT


def test_max_session_time_counts_only_current_above_the_test_level():
    s = armed()
    let(s, True, L.CONTACT_TEST_UA)  # contact check / paused: not counted
    assert run(s, meas(L.CONTACT_TEST_UA), 3_000_000, dt=1_000) == 0 and s.active_ms == 0
    s = armed(dose_mamin=1_200)
    let(s, True, 10_000)
    m = meas(10_000)
    assert run(s, m, L.MAX_SESSION_MS, dt=1_000) == 0
    assert s.active_ms == L.MAX_SESSION_MS
    assert run(s, m, 1_000, dt=1_000) == L.F_MAX_TIME


def test_dose_is_integrated_exactly_and_capped():
    s = armed(dose_mamin=80)
    let(s, True, 333)
    run(s, meas(333, mv=1_000), 6_000)
    assert s.dose_uas == 333 * 6_000 // 1_000
    s = armed(dose_mamin=80)
    let(s, True, 8_000)
    limit = 80 * L.UAS_PER_MAMIN * 110 // 100 + L.DOSE_FAULT_EXTRA_UAS
    assert s.dose_limit_uas == limit
    f, t = 0, 0
    while not f:
        f = s.check(1_000, meas(8_000), False)
        t += 1
    assert f == L.F_DOSE_CAP and s.dose_uas == 8_000 * t and 8_000 * (t - 1) <= limit < 8_000 * t


def test_loop_overrun_only_matters_with_the_output_enabled():
    s = armed()
    let(s, False, 0)
    assert s.check(P, meas(0, loop_us=500_000), False) == 0
    let(s, True, 5_000)
    assert s.check(P, meas(5_000, loop_us=L.LOOP_OVERRUN_US), False) == 0
    assert s.check(P, meas(5_000, loop_us=L.LOOP_OVERRUN_US + 1), False) == L.F_OVERRUN


def test_output_dead():
    s = armed()
    let(s, True, 5_000)
    assert run(s, meas(0, mv=-1), 2_000) == 0  # no voltage reading: cannot tell
    assert run(s, meas(0, mv=100), 498) == 0
    assert run(s, meas(0, mv=100), P) == L.F_OUTPUT_DEAD


def test_sensor_reading_nothing_while_the_voltage_shows_current_is_implausible():
    # A shorted shunt or a sensor stuck at zero: 15 mA commanded, 45 V across a 3 kohm load,
    # the sensor says 0. Not a lifted hand (that drives the output to the rail), not a dead
    # output (that shows no voltage).
    s = armed()
    let(s, True, 15_000)
    assert run(s, meas(0, mv=45_000), L.IMPLAUSIBLE_WINDOW_MS - 2) == 0
    assert run(s, meas(0, mv=45_000), P) == L.F_IMPLAUSIBLE
    s = armed()
    let(s, True, 15_000)  # hand lifted: the output at the rail is an open circuit, not this
    assert run(s, meas(0, mv=L.COMPLIANCE_MV), 1_000) == 0 and s.contact_lost
    s = armed()
    let(s, True, 15_000, gate_hz=1_000, duty_u16=32_768)  # pulsed: judged by its average elsewhere
    s.check(P, meas(0, mv=45_000), False)
    assert run(s, meas(0, mv=45_000), 200) != L.F_IMPLAUSIBLE


def test_faults_latch_until_cleared_with_the_cause_gone():
    s = armed()
    let(s, True, 5_000)  # a limiter trip under current is named a short (see the flag test)
    assert run(s, meas(5_000, hw_limit=True), P) == L.F_SHORT
    assert run(s, meas(0, mv=0), 1_000) == L.F_SHORT  # latched
    assert not let(s, True, 5_000).enable
    s.check(P, meas(0, mv=0, hw_limit=True), False)
    assert s.cause_present() and s.clear() is False and s.fault == L.F_SHORT
    s.check(P, meas(0, mv=0), False)
    assert s.clear() is True and s.fault == 0 and not s.armed
    assert not let(s, True, 5_000).enable  # disarmed: still no output until armed again


def test_first_fault_wins():
    s = armed()
    let(s, True, 5_000)
    assert s.check(P, meas(31_000, ovf=True, hw_limit=True), False) == L.F_OVER_ABS
    assert s.fault_ua == 31_000


def test_time_and_dose_faults_clear_with_the_session():
    s = armed(dose_mamin=1)
    let(s, True, 10_000)
    while not s.check(1_000, meas(10_000), False):
        pass
    assert s.fault == L.F_DOSE_CAP
    let(s, False, 0)
    s.check(P, meas(0, mv=0), False)
    assert s.clear()


def test_watchdog_feeding():
    s = armed()
    assert not s.ok_to_feed()  # no check ran
    let(s, True, 5_000)
    s.check(P, meas(5_000), False)
    assert s.ok_to_feed() and not s.ok_to_feed()  # once per check
    s.check(P, meas(31_000), False)
    let(s, True, 5_000)  # vetoed off
    s.check(P, meas(0, mv=0), False)
    assert s.ok_to_feed()  # faulted, but the output is off and nothing flows
    s2 = Supervisor()
    let(s2, False, 0)
    run(s2, meas(2_000, mv=0), 40)
    assert s2.fault == L.F_STUCK_ON
    s2.check(P, meas(2_000, mv=0), False)
    assert not s2.ok_to_feed()  # current flows that the MCU cannot stop: let the watchdog bite


def test_contact_lost_is_not_a_fault():
    s = armed()
    let(s, True, 10_000)
    assert run(s, meas(0, mv=60_000), 28) == 0 and not s.contact_lost
    assert run(s, meas(0, mv=60_000), P) == 0 and s.contact_lost
    run(s, meas(10_000), P)
    assert not s.contact_lost
    run(s, meas(1_000, mv=59_000), 30)  # 59 kohm: above the open-load limit
    assert s.contact_lost and s.fault == 0
    s = armed()
    let(s, True, L.CONTACT_TEST_UA - 1)  # too little commanded to judge
    run(s, meas(0, mv=60_000), 1_000)
    assert not s.contact_lost


def test_limited_at_compliance_and_its_reason():
    s = armed()
    let(s, True, 15_000)
    m = meas(10_000, mv=59_000)
    run(s, m, L.LIMITED_SET_MS - 2)
    assert not s.limited
    run(s, m, P)
    assert s.limited and s.limited_ua == 10_000 and s.limit_reason == L.LIM_COMPLIANCE and s.fault == 0
    run(s, meas(15_000), L.LIMITED_CLEAR_MS - 2)
    assert s.limited
    run(s, meas(15_000), P)
    assert not s.limited and s.limit_reason == L.LIM_NONE
    run(s, meas(14_000, mv=14_000), L.LIMITED_SET_MS, sat=True)  # regulator at its limit, voltage low
    assert s.limited and s.limit_reason == L.LIM_REGULATOR


def test_open_circuit_at_a_small_current_is_seen_by_the_apparent_load():
    # Open, the node only rises to command x 105 kohm (the divider): far from the rail.
    s = armed()
    let(s, True, L.CONTACT_TEST_UA)
    run(s, meas(0, mv=L.CONTACT_TEST_UA * 105_100 // 1000), L.CONTACT_LOST_MS)
    assert s.contact_lost
    run(s, meas(L.CONTACT_TEST_UA, mv=L.CONTACT_TEST_UA * 5), P)  # 5 kohm of skin
    assert not s.contact_lost


def test_pulsed_readings_are_judged_as_averages():
    s = armed()
    let(s, True, 10_000, gate_hz=2_000, duty_u16=32768)
    assert s.duty_pct == 50
    run(s, meas(5_000, mv=15_000), 1_000)
    assert not s.contact_lost and not s.limited and s.fault == 0
    run(s, meas(1_000, mv=60_000), 30)
    assert s.contact_lost


def test_start_block():
    s = Supervisor()
    assert s.start_block(meas(0, vbus=True), False) == L.B_USB
    assert s.start_block(meas(0, vbus=True), True) == 0
    assert s.start_block(meas(0, err=19), False) == L.F_I2C
    assert s.start_block(meas(L.ZERO_TOL_UA + 1, mv=0), False) == L.F_STUCK_ON
    assert s.start_block(meas(0, hw_limit=True), False) == L.F_HW_LIMIT
    assert s.start_block(meas(0), False) == 0


@pytest.mark.parametrize("ceiling,area,expect", [(50_000, 600, 30_000), (0, 600, 30_000), (9_000, 600, 9_000), (20_000, 10, 5_000), (20_000, 0, 0)])
def test_arm_only_tightens(ceiling, area, expect):
    s = Supervisor()
    s.arm(ceiling, area, 10 ** 12)
    assert s.cmd_max == expect and s.dose_limit_uas <= L.DOSE_MAX_UAS


def test_disarmed_veto_is_off():
    s = Supervisor()
    c = let(s, True, 5_000)
    assert not c.enable and c.ua == 0


# --- the second current channel and the adaptive clamp ------------------------------------
def test_two_channels_that_disagree_fault_within_the_window():
    s = armed()
    let(s, True, 10_000)
    s.check(P, meas(10_000, ua2=10_000), False)  # in regulation: the clamp above the need
    let(s, True, 10_000)
    tol = L.SENSE_TOL_UA + 10_000 * L.SENSE_TOL_PCT // 100
    for i in range(500):  # within the tolerance (a live reading: it moves by a count)
        assert s.check(P, meas(10_000 + (i & 1), ua2=10_000 + tol - 10), False) == 0
    assert s.hi_ua == 10_000 + tol - 10  # regulation takes the higher reading
    s = armed()
    let(s, True, 10_000)
    m = meas(5_000, mv=30_000, ua2=10_000)  # the INA219 reads half the truth
    assert run(s, m, L.SENSE_WINDOW_MS - P) == 0
    assert s.hi_ua == 10_000
    assert run(s, m, P) == L.F_SENSE_MISMATCH
    assert L.periods(L.SENSE_WINDOW_MS) == L.SENSE_WINDOW_MS * 1000 // L.LOOP_PERIOD_US


def test_noisy_reading_that_disagrees_half_the_time_adds_up():
    s = armed()
    let(s, True, 10_000)
    good, bad = meas(10_000, ua2=10_000), meas(13_000, ua2=10_000)
    f = 0
    for i in range(200):
        f = s.check(P, bad if i % 2 == 0 else good, False)
        if f:
            break
    assert f == L.F_SENSE_MISMATCH
    s = armed()
    let(s, True, 10_000)
    for i in range(600):  # one in four: not enough to add up
        f = s.check(P, bad if i % 4 == 0 else good, False)
    assert f == 0


def test_frozen_reading_is_a_fault_while_current_flows():
    s = armed()
    let(s, True, 10_000)
    m = meas(10_000, ua2=10_010)
    assert run(s, m, L.FROZEN_WINDOW_MS - P) == 0
    assert run(s, m, 2 * P) == L.F_SENSE_FROZEN
    s = armed()  # a live reading moves: no fault
    let(s, True, 10_000)
    for i in range(1_000):
        assert s.check(P, meas(10_000 + (i & 1), ua2=10_000), False) == 0
    s = armed()  # without the second channel's current (< 1 mA) a steady reading is fine
    let(s, True, 500)
    assert run(s, meas(500, ua2=500), 2_000) == 0


def test_a_current_rule_tripping_on_one_channel_is_named_a_sensing_fault():
    s = armed(ceiling=8_000)
    let(s, True, 5_000)
    assert s.check(P, meas(20_000, mv=15_000, ua2=5_000), False) == L.F_SENSE_MISMATCH
    s = armed(ceiling=8_000)  # both agree: a real over-current
    let(s, True, 5_000)
    assert s.check(P, meas(20_000, mv=60_000, ua2=20_000), False) == L.F_OVER_CEIL
    s = armed()  # the second channel alone sees over 30 mA: cut at once
    let(s, True, 5_000)
    assert s.check(P, meas(5_000, ua2=31_000), False) != 0
    # A real over-current in a fast rise: the two sampled it at different moments and differ
    # by more than the tolerance, but both are well over the command: named for the current.
    s = armed(ceiling=8_000)
    let(s, True, 5_000)
    assert s.check(P, meas(9_500, mv=34_000, ua2=7_800), False) == L.F_OVER_CEIL


def test_open_circuit_seen_in_the_same_period_from_voltage_at_the_clamp():
    s = armed()
    let(s, True, 10_000)
    s.check(P, meas(10_000, mv=30_000, ua2=10_000), False)
    c = let(s, True, 10_000).clamp_mv
    assert c == 30_000 + L.CLAMP_HEADROOM_MV + (30_000 >> 4) * 3  # the need plus headroom
    # the hand is out: the voltage runs to the clamp, the fast channel sees nothing, while the
    # INA219's conversion still averages in the current from before the lift
    s.check(P, meas(6_000, mv=c, ua2=0), False)
    assert s.open_now and not s.contact_lost
    assert let(s, True, 10_000).clamp_mv == L.CLAMP_FLOOR_MV  # C3 bled at once
    assert run(s, meas(0, mv=L.CLAMP_FLOOR_MV, ua2=0), L.CONTACT_LOST_MS) == 0 and s.contact_lost
    s = armed()  # a sensor stuck at zero does not fake a lift (the cross-check names it)
    let(s, True, 10_000)
    s.check(P, meas(0, mv=30_000, ua2=10_000), False)
    assert not s.open_now


def test_clamp_follows_the_load_and_steps_up_when_it_needs_more():
    s = armed()
    let(s, True, 10_000)
    s.check(P, meas(10_000, mv=20_000, ua2=10_000), False)
    c = let(s, True, 10_000).clamp_mv
    assert c < 20_000 + 10_000
    # the skin's resistance rose: short of the command at the clamp, not open
    s.check(P, meas(7_000, mv=c, ua2=7_000), False)
    assert not s.open_now
    assert let(s, True, 10_000).clamp_mv == c + L.CLAMP_STEP_MV
    assert let(s, False, 0).clamp_mv == L.CLAMP_FLOOR_MV  # off: the floor
    s.check(P, meas(10_000, mv=59_000, ua2=10_000), False)
    assert let(s, True, 10_000, gate_hz=1_000, duty_u16=32_768).clamp_mv == L.COMPLIANCE_MV  # pulsed: the rail
