"""Safety supervisor: independent of the regulator, run every tick, with the last word.

    sup = Supervisor()
    sup.arm(ceiling_ua, area_cm2, dose_cap_uas)             # at the start of a session
    fault = sup.check(dt_ms, meas, reg_saturated)           # every tick, first
    ...the session computes a command...
    sup.veto(cmd)                                           # every tick, last
    if sup.ok_to_feed(): wdt.feed()

`check` judges the measurement against the command the supervisor let out on the previous
tick (the one the reading reflects). A fault latches in `fault` (a limits.F_* code); from then
on `veto` forces the output off, in the same tick. `clear()` unlatches it only when no rule's
condition holds any more (the cause is gone), and disarms.

The rules are data (limits.RULES: code and window); the conditions are computed below, one
line each, in the same order. Not faults, but reported for the session:
- `contact_lost`: open circuit (hand out of the water) for CONTACT_LOST_MS;
- `limited` with `limited_ua` and `limit_reason`: the target is out of reach (compliance);
- `load_ohm`: electrode voltage / current, -1 when unknown;
- `open_now`: the circuit is open in THIS period (the session drops the command at once;
  `contact_lost` is the debounced pause);
- `hi_ua`: the higher of the two current readings (regulation uses it);
- the adaptive compliance: `veto` sets `cmd.clamp_mv` from what `check` saw (limits.py).
Second channel: `Meas.ua2` (ADC1 on RS2) is cross-checked with the INA219 every period
(F_SENSE_MISMATCH, F_SENSE_FROZEN); a current rule that trips while the two disagree is
named as the sensing fault it is, and a hardware-limiter trip with the output on as a short.
It also integrates the dose (`dose_uas`, uA*s) and the time with current flowing (`active_ms`).

Watchdog: `ok_to_feed()` is True once per `check` and only if every check ran and the output
is in a state the checks allow: no fault, or a fault with the output forced off. A fault with
current still flowing while the output is commanded off (stuck switch) stops the feeding: a
watchdog reset, which releases every pin to its pulled-down reset state, is the last lever.

Pulsed DC: readings are averages over whole gate periods (the driver's job), so current,
voltage and setpoint are compared on average terms (setpoint and rail x duty). The peak
current is bounded by the command clamp (never above the ceiling) and the hardware limiter.

`Meas` is what the loop fills from the drivers each tick; `Cmd` is what the session returns.
No allocation, no floats, no exceptions in check/veto.
"""
from micropython import const

import limits as L
from regulator import ua_to_duty

_N = const(17)  # len(limits.RULES)
_R_OVER_ABS = const(0)
_R_OVER_CEIL = const(1)
_R_OVER_SET = const(2)
_R_DENSITY = const(3)
_R_SHORT = const(4)
_R_I2C = const(5)
_R_OVF = const(6)
_R_STALE = const(7)
_R_STUCK = const(8)
_R_HW = const(9)
_R_TIME = const(10)
_R_DOSE = const(11)
_R_OVERRUN = const(12)
_R_DEAD = const(13)
_R_IMPL = const(14)
_R_MISMATCH = const(15)
_R_FROZEN = const(16)
# one loop period (limits.LOOP_PERIOD_MS): what a first-seen condition counts
_PERIOD_MS = const(10)
# The limits the tick reads, as consts of this module: mpy-cross inlines those, while each
# L.NAME is two look-ups (the module, then its attribute) at every use, some forty a tick in
# check() and veto(). Each _NAME is limits.NAME, the same value (tests/test_limits_config.py
# checks every one); limits.py stays where they are defined and explained.
_ABS_MAX_UA = const(30_000)
_B_USB = const(20)
_CEILING_TOL_UA = const(250)
_CLAMP_FLOOR_MV = const(3_000)
_CLAMP_HEADROOM_MV = const(5_000)
_CLAMP_NEAR_MV = const(1_500)
_CLAMP_STEP_MV = const(5_000)
_COMPLIANCE_MV = const(60_000)
_CONTACT_LOST_MS = const(30)
_CONTACT_TEST_UA = const(50)
_DEAD_MAX_MV = const(1_500)
_DEAD_MIN_UA = const(50)
_DENSITY_MAX_UA_PER_CM2 = const(500)
_DOSE_FAULT_EXTRA_UAS = const(60_000)
_DOSE_FAULT_PCT = const(110)
_DOSE_MAX_UAS = const(72_000_000)
_DT_MAX_MS = const(1_000)
_FROZEN_MIN_UA = const(1_000)
_F_HW_LIMIT = const(10)
_F_I2C = const(6)
_F_NONE = const(0)
_F_SENSE_MISMATCH = const(16)
_F_SHORT = const(5)
_F_STUCK_ON = const(9)
_IMPLAUSIBLE_MIN_UA = const(1_000)
_LIMITED_CLEAR_MS = const(5_000)
_LIMITED_NEAR_COMPLIANCE_MV = const(2_000)
_LIMITED_SET_MS = const(500)
_LIMITED_TOL_UA = const(150)
_LIM_COMPLIANCE = const(1)
_LIM_NONE = const(0)
_LIM_REGULATOR = const(2)
_LOOP_OVERRUN_US = const(25_000)
_MAX_SESSION_MS = const(2_700_000)
_OFF_SETTLE_MS = const(20)
_OPEN_FRACTION_PCT = const(25)
_OPEN_LOAD_OHM = const(50_000)
_OPEN_NEAR_COMPLIANCE_MV = const(3_000)
_OVER_SETPOINT_MARGIN_UA = const(2_000)
_SENSE_TOL_PCT = const(6)
_SENSE_TOL_UA = const(500)
_SHORT_LOAD_OHM = const(300)
_SHORT_MIN_UA = const(400)
_ZERO_TOL_UA = const(200)
_OFF_MS_MAX = const(1_000_000)


class Meas:
    """One tick's measurements, filled in place by the loop (preallocate one)."""

    def __init__(self):
        self.ua = 0  # current through the shunt, uA (>= 0)
        self.err = 0  # 0: the reading is good; else the sensor's error (an errno)
        self.ovf = False  # INA219 math overflow flag
        self.fresh = True  # a new conversion since the previous tick
        # How long the sensor has shown no new conversion, timed between its reads (the
        # driver's ina219.age_us; 0 when fresh). -1: not timed, the ticks' dt counts instead.
        self.age_us = -1
        self.mv = -1  # electrode voltage, mV; -1 when not known
        # The second current channel (ADC1 on the return-path sense resistor RS2), uA; -1 when
        # the board has none (the cross-check rules then do not apply).
        self.ua2 = -1
        self.hw_limit = False  # hardware limiter tripped (GP20 low)
        self.vbus = False  # a USB host powers the port (GP24)
        self.loop_us = 0  # duration of the previous loop iteration, us


class Cmd:
    """The output command: what output.py applies each tick.

    enable: close the output switch; ua: setpoint of the source (uA), duty: the same as PWM
    duty_u16 (65535 = 40 mA); polarity: 0 = electrode A is the anode; gate: pulse gate passes
    (held high for DC); gate_hz: 0 for DC, else the gate's PWM frequency; gate_duty_u16: its duty.
    """

    def __init__(self):
        self.enable = False
        self.ua = 0
        self.duty = 0
        self.polarity = 0
        self.gate = False
        self.gate_hz = 0
        self.gate_duty_u16 = 0
        # Adaptive compliance: the output clamp's voltage. The veto always sets it; a bare
        # command (driver tests) leaves the clamp at the rail, the stage as it was without one.
        self.clamp_mv = _COMPLIANCE_MV

    def off(self):
        self.enable = False
        self.ua = 0
        self.duty = 0
        self.gate = False
        self.gate_hz = 0
        self.gate_duty_u16 = 0


class Supervisor:
    def __init__(self):
        self._codes = [r[0] for r in L.RULES]
        self._windows = [r[1] for r in L.RULES]
        self._cond = [False] * _N
        self._acc = [0] * _N
        self.fault = _F_NONE
        self.fault_ua = 0  # measured current when the fault tripped
        self.armed = False
        self.ceiling_ua = _ABS_MAX_UA
        self.density_ua = _ABS_MAX_UA
        self.cmd_max = _ABS_MAX_UA
        self.dose_limit_uas = _DOSE_MAX_UAS
        self.duty_pct = 100  # of the gate let out last tick: 100 for plain DC
        self.dose_uas = 0
        self._dose_rem = 0  # uA*ms below one uA*s
        self.active_ms = 0
        self._reset_conditions()  # contact_lost, limited and their timers
        self.load_ohm = -1
        self.at_compliance = False
        self.open_now = False  # the circuit is open in this period (the command drops now)
        self.hi_ua = 0  # the higher of the two current readings: what regulation uses
        self.clamp_mv = _CLAMP_FLOOR_MV  # the clamp let out on the previous tick
        self._clamp_next = _CLAMP_FLOOR_MV
        self._last_ua = -1  # INA219's last fresh reading (frozen rule)
        self._frozen = False
        # What was let out on the previous tick: the measurement reflects it.
        self._en = False
        self._cmd_ua = 0
        self._off_ms = _OFF_MS_MAX
        self._token = False
        self.enforce()

    def enforce(self):
        """Recompute cmd_max; kept separate so a test can see it is the minimum of all limits."""
        m = _ABS_MAX_UA
        if self.ceiling_ua < m:
            m = self.ceiling_ua
        if self.density_ua < m:
            m = self.density_ua
        self.cmd_max = m

    def arm(self, ceiling_ua, area_cm2, dose_cap_uas):
        """Start of a session: limits from the preset (only ever tighter than the hard ones)."""
        self.ceiling_ua = ceiling_ua if 0 < ceiling_ua < _ABS_MAX_UA else _ABS_MAX_UA
        d = area_cm2 * _DENSITY_MAX_UA_PER_CM2 if area_cm2 > 0 else 0
        self.density_ua = d if d < _ABS_MAX_UA else _ABS_MAX_UA
        cap = dose_cap_uas if 0 < dose_cap_uas < _DOSE_MAX_UAS else _DOSE_MAX_UAS
        lim = cap // 100 * _DOSE_FAULT_PCT + _DOSE_FAULT_EXTRA_UAS
        self.dose_limit_uas = lim if lim < _DOSE_MAX_UAS else _DOSE_MAX_UAS
        self.dose_uas = 0
        self._dose_rem = 0
        self.active_ms = 0
        self._reset_conditions()
        self.enforce()
        self.armed = True

    def disarm(self):
        self.armed = False
        self.ceiling_ua = _ABS_MAX_UA
        self.density_ua = _ABS_MAX_UA
        self._reset_conditions()
        self.enforce()

    def _reset_conditions(self):
        self.contact_lost = False
        self._open_ms = 0
        self.limited = False
        self.limited_ua = 0
        self.limit_reason = _LIM_NONE
        self._lim_set_ms = 0
        self._lim_clr_ms = 0

    def check(self, dt, meas, sat):
        """Judge one tick's measurement. Returns the latched fault code (0: none)."""
        cond = self._cond
        ua = meas.ua
        mv = meas.mv
        ok = meas.err == 0
        was_en = self._en  # (attributes read more than once: locals)
        armed = self.armed
        en = was_en and armed
        sp = self._cmd_ua if en else 0
        # Pulsed DC: the reading must be an average over whole gate periods (the driver's job:
        # an instantaneous sample aliases with the gate), so it is judged against sp x duty.
        duty = self.duty_pct
        sp_eff = sp * duty // 100
        if was_en:
            self._off_ms = 0
        elif self._off_ms < _OFF_MS_MAX:
            self._off_ms += dt
        # Two current channels: regulation and the over-current rules take the higher
        # (limits.py, "Second current channel" says why).
        ua2 = meas.ua2
        dc = duty == 100
        hi = ua
        if ua2 > hi and dc:
            hi = ua2
        self.hi_ua = hi if ok else ua2 if ua2 > 0 else 0
        load = -1
        if ok and mv >= 0 and hi > 0:
            load = mv * 1000 // hi
        self.load_ohm = load
        # Pulsed DC: an averaged voltage at the rail reads about rail x duty.
        near = mv >= (_COMPLIANCE_MV - _OPEN_NEAR_COMPLIANCE_MV) * duty // 100
        # Bookkeeping: dose and time with current flowing.
        if armed and ok:
            r = self._dose_rem + ua * dt
            q = r // 1000
            self.dose_uas += q
            self._dose_rem = r - q * 1000
            if en and sp > _CONTACT_TEST_UA:
                self.active_ms += dt

        # One condition per rule, in limits.RULES order.
        cond[_R_OVER_ABS] = ok and hi > _ABS_MAX_UA
        cond[_R_OVER_CEIL] = ok and ua > self.ceiling_ua + _CEILING_TOL_UA
        cond[_R_OVER_SET] = ok and en and hi > sp_eff + _OVER_SETPOINT_MARGIN_UA
        clamp = self.clamp_mv
        at_clamp = dc and mv >= clamp - _CLAMP_NEAR_MV
        cond[_R_DENSITY] = ok and hi > self.density_ua
        cond[_R_SHORT] = ok and en and ua >= _SHORT_MIN_UA and 0 <= load < _SHORT_LOAD_OHM
        cond[_R_I2C] = not ok
        cond[_R_OVF] = ok and meas.ovf
        cond[_R_STALE] = not meas.fresh
        cond[_R_STUCK] = ok and not was_en and self._off_ms >= _OFF_SETTLE_MS and ua > _ZERO_TOL_UA
        cond[_R_HW] = meas.hw_limit
        cond[_R_TIME] = armed and self.active_ms > _MAX_SESSION_MS
        cond[_R_DOSE] = armed and self.dose_uas > self.dose_limit_uas
        cond[_R_OVERRUN] = en and meas.loop_us > _LOOP_OVERRUN_US
        cond[_R_DEAD] = (
            ok and en and sp_eff >= _DEAD_MIN_UA and hi * 10 < sp_eff and 0 <= mv < _DEAD_MAX_MV
        )
        cond[_R_IMPL] = (
            ok and en and duty == 100 and sp >= _IMPLAUSIBLE_MIN_UA and ua * 10 < sp
            and mv >= _DEAD_MAX_MV and not near and mv * 1000 // sp < _OPEN_LOAD_OHM
        )
        # Cross-check (plain DC, both readings good): they differ beyond the tolerance.
        d = ua - ua2
        if d < 0:
            d = -d
        cond[_R_MISMATCH] = (
            ok and dc and ua2 >= 0 and d > _SENSE_TOL_UA + hi * _SENSE_TOL_PCT // 100
        )
        # Frozen: fresh INA219 readings that do not move while current flows (held between
        # fresh reads: a reading not yet renewed is the stale rule's).
        if ok and meas.fresh:
            self._frozen = dc and ua2 >= _FROZEN_MIN_UA and ua == self._last_ua
            self._last_ua = ua
        elif not ok:
            self._frozen = False
        cond[_R_FROZEN] = self._frozen

        # Both readings above the command by the over-setpoint margin: the current really is
        # too high, whatever the two say in detail. In a fast rise (the skin's capacitance
        # charging) they differ by when each sampled it: the INA219's conversion ends up to a
        # conversion time before the ADC reads at the tick, so they may disagree while both
        # are right. Then the current rule is named, not the sensing fault.
        lo = ua2 if ua2 < ua else ua
        both_over = ok and en and dc and lo > sp_eff + _OVER_SETPOINT_MARGIN_UA

        acc = self._acc
        win = self._windows
        # Staleness is judged on the reads: the driver's age runs from the read that last
        # cleared CNVR to this one. The ticks' dt would count a loop stall before that clearing
        # read (a flash erase, 45-400 ms) as time without a conversion, and trip F_STALE on a
        # healthy sensor read a moment later; a stall with the output on is the overrun rule's.
        age = meas.age_us
        # Most ticks no rule's condition holds and no rule has time counted: then the loop
        # below would only write zeros over zeros, and any() (C, no allocation) skips it.
        if any(cond) or any(acc):
            for i in range(_N):
                if cond[i]:
                    if i == _R_STALE and age >= 0:
                        # rounded up: the stamps sit just inside the reads, a little short of
                        # the truth
                        a = (age + 999) // 1000
                    elif acc[i]:
                        a = acc[i] + dt
                    else:
                        # A condition first seen now has been observed for one period, not for
                        # the whole gap since the last tick: after a stall (a flash erase with the
                        # output off) one failed read must not count as 50 ms of failures.
                        a = dt if dt < _PERIOD_MS else _PERIOD_MS
                    if a > _DT_MAX_MS:
                        a = _DT_MAX_MS
                    acc[i] = a
                    if a >= win[i] and self.fault == 0:
                        code = self._codes[i]
                        if i <= _R_SHORT and cond[_R_MISMATCH] and not both_over:
                            # A current or load rule tripped while the channels disagree and
                            # the lower one shows nothing wrong: the sensing chain is at fault
                            # (the output is cut either way).
                            code = _F_SENSE_MISMATCH
                        elif i == _R_HW and was_en:
                            # With the clamp holding the voltage near what the load needs, no
                            # skin can draw the limiter's 35 mA: a trip under current is a short.
                            code = _F_SHORT
                        self.fault = code
                        self.fault_ua = hi
                elif acc[i]:  # (nothing to do for a rule with no time counted)
                    if i == _R_MISMATCH:
                        # leaky: readings that disagree more than a third of the time add up
                        a = acc[i] - (dt >> 1)
                        acc[i] = a if a > 0 else 0
                    else:
                        acc[i] = 0

        # Open circuit: little flows while the voltage says no skin is there (near the rail, or
        # an apparent load, voltage over the commanded current, beyond any skin), or the
        # measured load itself is huge. An unknown voltage with no current counts as open.
        open_now = False
        if ok and en and sp_eff >= _CONTACT_TEST_UA:
            # The voltage ran to the clamp and the fast channel (ADC1, read at the tick) sees
            # no current: open in this very period, even while the INA219's conversion still
            # averages in the current from before the lift. Otherwise on the higher reading,
            # so one sensor reading low (a fault the cross-check names) cannot fake a lift.
            open_now = load > _OPEN_LOAD_OHM or (
                at_clamp and 0 <= ua2 and ua2 * 100 < sp_eff * _OPEN_FRACTION_PCT)
            if not open_now and hi * 100 < sp_eff * _OPEN_FRACTION_PCT:
                open_now = mv < 0 or near or at_clamp or mv * 1000 // sp_eff > _OPEN_LOAD_OHM
        self.open_now = open_now
        if open_now:
            self._open_ms += dt
            if self._open_ms >= _CONTACT_LOST_MS:
                self.contact_lost = True
        else:
            self._open_ms = 0
            self.contact_lost = False

        # Compliance: short of the target at the rail (or the trim at its limit): "limited".
        comp = mv >= (_COMPLIANCE_MV - _LIMITED_NEAR_COMPLIANCE_MV) * duty // 100
        self.at_compliance = comp or at_clamp
        # The clamp for the next period (adaptive compliance, limits.py): open -> floor; short
        # of the command with the load present -> a step up; else the need plus headroom.
        if not dc or mv < 0:
            c = _COMPLIANCE_MV
        elif open_now or not en:
            c = _CLAMP_FLOOR_MV
        elif ok and hi + _LIMITED_TOL_UA < sp_eff and at_clamp:
            c = clamp + _CLAMP_STEP_MV
        else:
            c = mv + _CLAMP_HEADROOM_MV + (mv >> 4) * 3
        if c < _CLAMP_FLOOR_MV:
            c = _CLAMP_FLOOR_MV
        elif c > _COMPLIANCE_MV:
            c = _COMPLIANCE_MV
        self._clamp_next = c
        lim_now = (
            ok and en and not open_now and sp_eff >= _CONTACT_TEST_UA
            and hi + _LIMITED_TOL_UA < sp_eff and (comp or sat)
        )
        if lim_now:
            self._lim_clr_ms = 0
            if not self.limited:
                self._lim_set_ms += dt
                if self._lim_set_ms >= _LIMITED_SET_MS:
                    self.limited = True
            if self.limited:
                self.limited_ua = hi
                self.limit_reason = _LIM_COMPLIANCE if comp else _LIM_REGULATOR
        else:
            self._lim_set_ms = 0
            if self.limited:
                self._lim_clr_ms += dt
                if self._lim_clr_ms >= _LIMITED_CLEAR_MS or not en:
                    self.limited = False
                    self.limit_reason = _LIM_NONE
                    self._lim_clr_ms = 0
        self._token = True
        return self.fault

    def veto(self, cmd):
        """Last word on the command: off on any fault or when not armed; clamp to the limits."""
        if self.fault or not self.armed or not cmd.enable:
            cmd.off()
        else:
            u = cmd.ua
            if u > self.cmd_max:
                u = self.cmd_max
            if u < 0:
                u = 0
            cmd.ua = u
            cmd.duty = ua_to_duty(u)
        self._en = cmd.enable
        self._cmd_ua = cmd.ua
        # The clamp: what check() worked out, the floor while off (a welded switch then
        # pushes at most the floor into the patient), the rail for pulsed DC.
        if not cmd.enable:
            c = _CLAMP_FLOOR_MV
        elif cmd.gate_hz:
            c = _COMPLIANCE_MV
        else:
            c = self._clamp_next
        cmd.clamp_mv = c
        self.clamp_mv = c
        if cmd.gate_hz and cmd.enable:
            self.duty_pct = (cmd.gate_duty_u16 * 100 + 32767) // 65535
        else:
            self.duty_pct = 100
        return cmd

    def ok_to_feed(self):
        t = self._token
        self._token = False
        if not t:
            return False
        if self.fault == 0:
            return True
        # Faulted: feed only while the output is off and no current flows regardless.
        return not self._en and not self._cond[_R_STUCK]

    def cause_present(self):
        """True while any rule's condition holds (time and dose end with the session)."""
        c = self._cond
        for i in range(_N):
            if c[i] and i != _R_TIME and i != _R_DOSE:
                return True
        return False

    def clear(self):
        """Nurse's STOP in FAULT: unlatch if the cause is gone. Returns True when cleared."""
        if self.cause_present():
            return False
        self.fault = _F_NONE
        self.fault_ua = 0
        for i in range(_N):
            self._acc[i] = 0
        self.disarm()
        return True

    def start_block(self, meas, isolated_usb):
        """0 if a session may start now, else the blocking code (limits.B_* or F_*)."""
        if self.fault:
            return self.fault
        if meas.vbus and not isolated_usb:
            return _B_USB
        if meas.err != 0:
            return _F_I2C
        if meas.ua > _ZERO_TOL_UA:
            return _F_STUCK_ON
        if meas.hw_limit:
            return _F_HW_LIMIT
        return 0
