"""Regulator: feed-forward plus an integral trim, all integer, with anti-windup.

The output stage is a calibrated current source (duty 65535 = 40 mA), so the ramp's
setpoint fed forward gives nearly the right current; the integral only trims the few
percent of gain and offset error. Per tick::

    out_ua = reg.update(sp_ua, meas_ua, valid, dt_ms, max_ua, at_compliance)

- sp_ua: the ramp's setpoint; meas_ua: measured current; valid: the reading is fresh and
  error-free (otherwise the trim is held, not integrated).
- max_ua: highest command allowed (the session's ceiling); the output is clamped to 0..max_ua.
- at_compliance: electrode voltage at the rail; the trim stops integrating upward there.
- Anti-windup: the trim is clamped to +-TRIM_MAX_UA, and integration stops in the direction
  that pushes a saturated output further (at max_ua, at compliance, or at 0).
- `saturated` is True after an update that wanted more than it could give.
- `freeze` (attribute): True for pulsed DC, where a reading is not the peak current.
- `reset()` on pause, polarity change, stop and fault. `sp_ua == 0` also resets.

Trim rate: error clamped to TRIM_ERR_MAX_UA and integrated with TRIM_TI_MS, so the trim moves
at most 1 mA/s: slower than any ramp, never a step.

Deadband: the setpoint PWM has 125 MHz / SETPOINT_PWM_FREQ levels (2500 at 50 kHz), so the
source moves in steps of SETPOINT_FULL_SCALE_UA / 2500 = 16 uA. A target between two steps
cannot be reached; integrating an error smaller than half a step only makes the trim hop
between the two steps around it on every tick (a 50 Hz square ripple of one step on the
patient). So once the error has changed sign within one step (both errors inside it: the
output straddles the target, and the reading's own noise of a few uA is no reason to move),
the trim holds until the error leaves that band: the current stays on one step, at most a
step from the target. An error that stays on one side (a source short by a uA or two) is
still trimmed away.
"""
from micropython import const

import limits as L
from output import ua_to_duty  # noqa: F401  (one conversion, from the pin map's full scale)

_TI = const(1_000)  # = limits.TRIM_TI_MS; local const so it is inlined
_ERR_MAX = const(1_000)  # = limits.TRIM_ERR_MAX_UA
_LIMITED_TOL_UA = const(150)  # = limits.LIMITED_TOL_UA
# One setpoint PWM step, uA: 40_000 x 50_000 / 125 MHz = 16 (pins.SETPOINT_FULL_SCALE_UA x
# pins.SETPOINT_PWM_FREQ // 125_000_000; a const so it is inlined, tests/test_limits_config.py
# checks it against the pin map).
_DEAD = const(16)


class Regulator:
    def __init__(self, trim_max=L.TRIM_MAX_UA):
        self.trim_max = trim_max
        self._acc_max = trim_max * _TI  # uA*ms
        self._acc = 0  # integral of the error, uA*ms; trim = acc // TI
        self.trim = 0
        self.out = 0
        self.saturated = False
        self.freeze = False
        self._err = 0  # the last error integrated or held, for the deadband's sign test
        self._hold = False

    def reset(self):
        self._err = 0
        self._hold = False
        self._acc = 0
        self.trim = 0
        self.out = 0
        self.saturated = False

    def update(self, sp_ua, meas_ua, valid, dt_ms, max_ua, at_compliance):
        if sp_ua <= 0:
            self.reset()
            return 0
        out = sp_ua + self.trim
        hi = out >= max_ua or at_compliance
        lo = out <= 0
        if valid and not self.freeze:
            err = sp_ua - meas_ua
            if err > _ERR_MAX:
                err = _ERR_MAX
            elif err < -_ERR_MAX:
                err = -_ERR_MAX
            if -_DEAD <= err <= _DEAD:
                # Within a PWM step: a sign change means the steps straddle the target,
                # and the actuator can do no better (module doc).
                e = self._err
                if (err > 0 and -_DEAD <= e < 0) or (err < 0 and 0 < e <= _DEAD):
                    self._hold = True
            else:
                self._hold = False
            if err:
                self._err = err
            # Held, or anti-windup: never integrate further into a saturated direction.
            if not self._hold and ((err > 0 and not hi) or (err < 0 and not lo)):
                acc = self._acc + err * dt_ms
                if acc > self._acc_max:
                    acc = self._acc_max
                elif acc < -self._acc_max:
                    acc = -self._acc_max
                self._acc = acc
                self.trim = acc // _TI
            self.saturated = err > 0 and (hi or self.trim >= self.trim_max) and meas_ua + _LIMITED_TOL_UA < sp_ua
        else:
            self.saturated = False
        out = sp_ua + self.trim
        if out > max_ua:
            out = max_ua
        if out < 0:
            out = 0
        self.out = out
        return out
