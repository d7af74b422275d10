"""Output stage and load of the reference board (hw/README.md), integrated lazily.

Topology modelled (units: uA, mV, ohm, nF, us; 1 uA / 1 nF = 1 mV/us):

  setpoint PWM -> 2-pole RC (tau 1.6 ms each) -> current-source loop (tau 0.2 ms) = x
  source --enable switch (AND gate)--> node V: C_out || divider R_d --> polarity bridge
     --> R_s (water + electrodes) --> R_p || C_p (skin, voltage Vp) --> shunt --> limiter switch

- The source regulates the load current it senses in the return path, so in regulation the
  load gets x and the divider's small current comes on top. It cannot lift V above
  COMPLIANCE_MV: on a high-resistance load V sits at compliance and the current falls short.
- With the load open and the source on, C_out charges at x toward compliance (the loop sees
  no current and pushes). Back in the water, C_out dumps V/R_s through the skin: a spike far
  above the setpoint for tens of us. That is the shock users feel on re-immersion, and the
  firmware prevents it by zeroing its setpoint when contact is lost: the divider then bleeds
  C_out (tau = C_out * R_d, about 1 ms with the 10 nF of C3); the adaptive clamp, lowered to
  the floor when the firmware sees the circuit open, sinks it at once.
- Swapping polarity under current turns the charged skin capacitance around against the
  source: another real spike, unless the firmware ramps to zero and waits first.
- The hardware limiter compares the shunt current with HW_LIMIT_UA and opens the return path
  (current 0) until enable goes low; PIN_HW_LIMIT reads low meanwhile. Its comparator is
  filtered (LIMIT_RESPONSE_US): a spike that stays above the limit for less (the few-us
  discharge of C_out on re-contact) does not trip it; anything sustained does.
- Adaptive compliance: a shunt clamp on the node holds V at or below `clamp_mv`, set by the
  firmware (PIN_CLAMP_PWM, duty x CLAMP_FULL_SCALE_MV / 65535) to what the present load needs
  plus headroom; lowered, it sinks the excess charge of C_out at once (its sink is far faster
  than any other time constant here). Unset (a bare plant), it is the 60 V rail.
- Second current channel: `sense_ua(now)` is what the RP2040's ADC reads on RS2, in series
  with the shunt in the return path: the load current through an anti-alias RC, modelled as
  the mean over the last SENSE_WINDOW_US.
- electrode_mv is V at the bridge input, what the divider sees, whatever the polarity.
- A gate PWM is modelled on average: the dynamics run as if the gate were on; the
  instantaneous current is the on-current in the PWM's high phase and 0 in its low phase
  (a welded switch, output_stuck_on, conducts in both).
- Averaging sensors need the current's mean over a past window: the plant integrates the
  shunt current as it advances (the gate's phase exactly) and keeps the last _HN segments of
  that charge, so `current_ua((t0, t1))` / `mean_ua(t0, t1)` answer for the recent past.

Between input changes the reference cascade has a closed form; the node and the skin are
advanced by exponential steps (exact for each part with the other held) of at most 1 ms.
Once everything has settled a query only moves time on, so a 500 Hz read costs ~1 us.
"""
import math
from micropython import const

import pins
import scenario as _scn

_TAU_F = 1600.0  # us, each pole of the setpoint RC filter
_TAU_L = 200.0  # us, the current source's own loop
_K = _TAU_F / (_TAU_F - _TAU_L)
_R_DIV = float(pins.DIVIDER_TOP_OHM + pins.DIVIDER_BOTTOM_OHM)
_VC = float(pins.COMPLIANCE_MV)
_FS = float(pins.SETPOINT_FULL_SCALE_UA)
_LIMIT = pins.HW_LIMIT_UA
_H_MAX = const(1000)  # us, longest integration step while anything moves
_H_QUIET = const(20_000)  # us, longest step when the state is within _Q of its equilibrium
_Q = 1.0  # uA: "quiet" (see _quiet): nothing is left to move by more (the INA219 LSB)
_HYD_STEP = const(100_000)  # us of hydration between updates of R_p
_HN = const(128)  # segments of charge history kept for windowed means (>= 100 ms moving)
_EPS = 0.01  # uA or mV: below this per step, the state is settled
LIMIT_RESPONSE_US = 20  # the limiter's comparator filter
SENSE_WINDOW_US = 100  # anti-alias RC of the second current channel (RS2 -> ADC1)

OPEN = "lifted"
IMMERSED = "immersed"
SHORT = "short"


def _hash32(seed, k):
    # Deterministic per (seed, period): the noise does not depend on when it is queried.
    x = (seed * 0x9E3779B1 + k * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def _on_time(e, a, b):
    # us the gate of history segment e let through in [a, b] (all of it without a gate PWM)
    f = e[3]
    if not f:
        return b - a
    p = 1_000_000 // f
    if p <= 0:
        return b - a
    on = p * e[4] // 65536
    da = a - e[5]
    db = b - e[5]
    return (db // p - da // p) * on + min(db % p, on) - min(da % p, on)


def _default_clock():
    import vclock

    return vclock.now_us


class Plant:
    def __init__(self, scenario=None, clock=None):
        self._clock = clock if clock is not None else _default_clock()
        self.on_trip = None  # fn(tripped) when the limiter flag changes
        self.output_stuck_on = False
        self.output_dead = False
        self._busy = False
        self.peak_ua = 0.0  # highest on-current seen (spikes included); reset at will
        self.clamp_mv = _VC  # adaptive compliance (set_clamp); the rail until set
        self.spike_nc = 0.0  # largest charge of a contact/polarity jump above the source's current
        self._hist_reset(self._clock())
        self.load(scenario)

    # --- scenario and load -------------------------------------------------------------
    def load(self, scenario=None):
        """(Re)start with a scenario: name, file path, dict or None (palms). Keeps inputs."""
        sc = _scn.load(scenario if scenario is not None else "palms")
        t = self._clock()
        if hasattr(self, "scenario"):
            self._advance(t)  # the circuit keeps its charge across a change of patient
        self.scenario = sc
        self._t = t
        if not hasattr(self, "duty"):
            self.duty = 0
            self.enable = 0
            self.polarity = 0
            self._gate = 0
            self._gate_freq = 0
            self._gate_duty = 0
            self._gate_t0 = 0
            self.hw_limit_tripped = False
            self._f1 = self._f2 = self._x = 0.0
            self._v = 0.0
            self._vp = 0.0
        self._i = 0.0
        self._start = None  # time of the first enable: the scenario clock
        self._next_ev = 0
        self._ev_at = None
        self._hyd = 0  # us of hydration so far
        self._hyd_mark = _HYD_STEP
        for k, v in sc["load"].items():
            setattr(self, k, v)
        if self.enable and not self.hw_limit_tripped:
            self._start_clock(t)
        self._update_rp()
        self._e_h = self._e_f = self._e_l = None
        self._n_key = self._s_key = self._q_key = None
        self._settled = False
        self._noise_k = None
        self._r_noise = 1.0
        self._drop = False

    def set_load(self, **kw):
        """Change load parameters now (scenario 'set' events); r_skin_ohm restarts hydration."""
        self._sync()
        for k, v in kw.items():
            if k not in _scn.LOAD_KEYS:
                raise ValueError("unknown load parameter %r" % k)
            setattr(self, k, v)
        if "r_skin_ohm" in kw or "r_skin_final_ohm" in kw or "hydration_tau_s" in kw:
            if "r_skin_ohm" in kw:
                self._hyd = 0
                self._hyd_mark = _HYD_STEP
            else:  # keep the present skin resistance as the new starting point
                self.r_skin_ohm = self._rp
                self._hyd = 0
                self._hyd_mark = _HYD_STEP
        self._update_rp()
        self._noise_k = None
        self._unsettle()

    def set_contact(self, contact):
        """'immersed', 'lifted' or 'short', now. Re-immersion checks the limiter at once."""
        if contact not in (OPEN, IMMERSED, SHORT):
            raise ValueError("contact must be immersed, lifted or short")
        self._sync()
        self.contact = contact
        self._noise_k = None
        self._refresh_noise(self._t)
        self._i = self._load_current()
        self._check_limit(jump=True)
        self._unsettle()

    def lift(self):
        self.set_contact(OPEN)

    def immerse(self):
        self.set_contact(IMMERSED)

    def short(self):
        self.set_contact(SHORT)

    # --- inputs --------------------------------------------------------------------------
    def set_duty(self, u16):
        u16 = max(0, min(65535, int(u16)))
        if u16 != self.duty:
            self._sync()
            self.duty = u16
            self._unsettle()

    def set_enable(self, b):
        b = 1 if b else 0
        if b == self.enable:
            return
        self._sync()
        t = self._t
        self.enable = b
        if not b and self.hw_limit_tripped:
            self.hw_limit_tripped = False  # the limiter latch resets with enable low
            if self.on_trip:
                self.on_trip(False)
        if b and self._start is None:
            self._start_clock(t)
        self._unsettle()

    def set_gate(self, b):
        """Plain level on the pulse gate (held high for DC)."""
        self._sync()
        self._gate = 1 if b else 0
        self._gate_freq = 0
        self._unsettle()

    def set_gate_pwm(self, freq, duty_u16):
        """Gate driven by a PWM (pulsed DC). freq 0 or duty 0/65535 fall back to a level."""
        self._sync()
        t = self._t
        duty_u16 = max(0, min(65535, int(duty_u16)))
        if freq <= 0 or duty_u16 in (0, 65535):
            self._gate = 1 if duty_u16 == 65535 else 0
            self._gate_freq = 0
        else:
            self._gate = 1
            self._gate_freq = int(freq)
            self._gate_duty = duty_u16
            self._gate_t0 = t
        self._unsettle()

    def set_clamp(self, mv):
        """Adaptive compliance: the node is held at or below mv (capped at the rail)."""
        mv = float(mv)
        if mv > _VC:
            mv = _VC
        if mv < 0.0:
            mv = 0.0
        if mv != self.clamp_mv:
            self._sync()
            self.clamp_mv = mv
            if self._v > mv:
                self._v = mv  # the clamp sinks the excess charge of C_out
                self._i = self._load_current()
            self._unsettle()

    def sense_ua(self, now_us=None):
        """The second current channel: mean shunt current over the last SENSE_WINDOW_US."""
        if now_us is None:
            now_us = self._clock()
        return self.mean_ua(now_us - SENSE_WINDOW_US, now_us)

    def set_polarity(self, b):
        b = 1 if b else 0
        if b == self.polarity:
            return
        self._sync()
        self.polarity = b
        # The bridge turns the charged skin around: it now adds to the drive.
        self._vp = -self._vp
        self._i = self._load_current()
        self._check_limit(jump=True)
        self._unsettle()

    @property
    def gate(self):
        return self._gate

    def set_faults(self, stuck_on=None, dead=None):
        self._sync()
        if stuck_on is not None:
            self.output_stuck_on = bool(stuck_on)
        if dead is not None:
            self.output_dead = bool(dead)
        self._unsettle()

    def trip_limiter(self):
        """A spurious trip of the hardware limiter (interference, a failing comparator): the
        return path opens as on an over-current, until enable goes low (training panel)."""
        self._sync()
        if not self.hw_limit_tripped:
            self.hw_limit_tripped = True
            self._i = 0.0
            if self.on_trip:
                self.on_trip(True)
        self._unsettle()

    # --- outputs -------------------------------------------------------------------------
    def current_ua(self, now_us=None):
        """True current through the shunt, uA (>= 0 whatever the polarity).

        Given a window `(t0, t1)` instead of an instant: the mean current over it (what an
        averaging ADC such as the INA219 reads; the gate's phase is integrated exactly).
        """
        if now_us is None:
            now_us = self._clock()
        if type(now_us) is tuple:
            return self.mean_ua(now_us[0], now_us[1])
        self._advance(now_us)
        i = self._i
        if i <= 0.0:
            return 0
        if self._gate_freq and not self.output_stuck_on and not self._gate_high(now_us):
            return 0  # (a welded switch conducts whatever the gate says)
        return int(i + 0.5)

    def mean_ua(self, t0, t1):
        """Mean shunt current over [t0, t1], uA, rounded. t1 may lie in the recent past
        (the last _HN integration segments, at least ~100 ms): that is not a power-on."""
        if t1 > self._t:
            self._advance(t1)
        if t1 <= t0:
            return self.current_ua(t1) if t1 >= self._t else 0
        m = (self._charge(t1) - self._charge(t0)) / (t1 - t0)
        return int(m + 0.5) if m > 0.0 else 0

    def electrode_mv(self, now_us=None):
        if now_us is None:
            now_us = self._clock()
        self._advance(now_us)
        v = self._v
        return int(v + 0.5) if v > 0.0 else 0

    def load_ohm(self):
        """Present DC load resistance, None when open."""
        c = self.contact
        if c == SHORT:
            return int(self.r_short_ohm)
        if c == OPEN or self._drop:
            return None
        return int(self.r_series_ohm * self._r_noise + self._rp)

    def scenario_time_s(self):
        if self._start is None:
            return None
        return (self._t - self._start) / 1e6

    def state(self, now_us=None):
        if now_us is None:
            now_us = self._clock()
        i = self.current_ua(now_us)
        return {
            "now_us": now_us,
            "true_ua": i,
            "electrode_mv": self.electrode_mv(now_us),
            "setpoint_duty": self.duty,
            "enable": self.enable,
            "polarity": self.polarity,
            "gate": self._gate if not self._gate_freq else [self._gate_freq, self._gate_duty],
            "hw_limit": self.hw_limit_tripped,
            "contact": self.contact,
            "load_ohm": self.load_ohm(),
            "r_skin_ohm": int(self._rp),
            "scenario": self.scenario["name"],
            "scenario_t_s": self.scenario_time_s(),
            "faults": [n for n, f in (("output_stuck_on", self.output_stuck_on), ("output_dead", self.output_dead)) if f],
        }

    # --- internals -----------------------------------------------------------------------
    def _start_clock(self, t):
        self._start = t
        self._next_ev = 0
        self._set_ev_at()

    def _set_ev_at(self):
        evs = self.scenario["events"]
        if self._start is None or self._next_ev >= len(evs):
            self._ev_at = None
        else:
            self._ev_at = self._start + int(evs[self._next_ev]["t_s"] * 1_000_000)

    def _unsettle(self):
        self._settled = False

    def _update_rp(self):
        r0 = self.r_skin_ohm
        rf = self.r_skin_final_ohm
        self._rp = rf + (r0 - rf) * math.exp(-self._hyd / (self.hydration_tau_s * 1e6))
        if self._rp < 1.0:
            self._rp = 1.0

    def _gate_high(self, t):
        period = 1_000_000 // self._gate_freq
        if period <= 0:
            return True
        return (t - self._gate_t0) % period < period * self._gate_duty // 65536

    def _active(self):
        if self.output_dead or self.hw_limit_tripped:
            return False
        return self.output_stuck_on or (self.enable and self._gate)

    def _connected(self):
        # The load is in circuit: in contact and the limiter has not opened the return.
        return self.contact != OPEN and not self._drop and not self.hw_limit_tripped

    def _rl(self):
        if self.contact == SHORT:
            return self.r_short_ohm
        return self.r_series_ohm * self._r_noise

    def _load_current(self):
        if not self._connected():
            return 0.0
        if self.contact == SHORT:
            return self._v * 1000.0 / self.r_short_ohm
        return (self._v - self._vp) * 1000.0 / self._rl()

    def _spike_us(self):
        # How long a jump of the load current (re-contact, a short, polarity) stays above the
        # limit: C_out discharges through the load's series part, tau = C_out x R.
        i = self._i
        if i <= _LIMIT:
            return 0.0
        tau = self.c_out_nf * self._rl() / 1000.0
        return tau * math.log(i / _LIMIT)

    def _check_limit(self, jump=False):
        if self._i > self.peak_ua:
            self.peak_ua = self._i
        if jump and self._active() and self._i > self._x > 0.0:
            # The jump decays with C_out through the series resistance: its charge above the
            # source's own current is (i0 - x) x tau.
            q = (self._i - self._x) * self.c_out_nf * self._rl() / 1e6
            if q > self.spike_nc:
                self.spike_nc = q
        if jump and self._i > _LIMIT and self._spike_us() < LIMIT_RESPONSE_US and self._active():
            return  # shorter than the comparator's filter: the source's own current follows
        if self._i > _LIMIT and not self.hw_limit_tripped:
            self.hw_limit_tripped = True
            self._i = 0.0
            if self.on_trip:
                self.on_trip(True)

    def _refresh_noise(self, t):
        if self.noise_frac <= 0.0 and self.noise_dropout <= 0.0 or self.contact != IMMERSED:
            self._r_noise = 1.0
            self._drop = False
            return None
        p = int(self.noise_period_ms * 1000)
        k = t // p
        if k != self._noise_k:
            self._noise_k = k
            h = _hash32(self.seed, k)
            self._r_noise = 1.0 + self.noise_frac * ((h & 0xFFFF) / 32767.5 - 1.0)
            self._drop = ((h >> 16) & 0xFFFF) < self.noise_dropout * 65536
        return (k + 1) * p

    # --- charge history: the integral of the shunt current, for windowed means -----------
    # A ring of segments [start, q at start, on-current, gate freq, gate duty, gate t0]; over a
    # segment the on-current is constant and the charge grows by it x the gate's on-time.
    def _hist_reset(self, t):
        self._h = [[t, 0.0, 0.0, 0, 0, 0] for _ in range(_HN)]
        self._hi = 0  # newest segment
        self._he = t  # end of the newest segment
        self._qe = 0.0  # charge at _he, uA*us

    def _acc(self, a, b, r):
        # The shunt carried on-current r (uA) over [a, b] (gated if the gate is a PWM).
        if b <= a:
            return
        if r < 0.0:
            r = 0.0
        f = 0 if self.output_stuck_on else self._gate_freq
        e = self._h[self._hi]
        if not (a == self._he and e[2] == r and e[3] == f and (not f or (e[4] == self._gate_duty and e[5] == self._gate_t0))):
            self._hi = (self._hi + 1) % _HN
            e = self._h[self._hi]
            e[0] = a
            e[1] = self._qe
            e[2] = r
            e[3] = f
            e[4] = self._gate_duty
            e[5] = self._gate_t0
        self._he = b
        self._qe = e[1] + r * _on_time(e, e[0], b)

    def _charge(self, t):
        # Charge (uA*us) delivered up to t, from the history; clamped to what it holds.
        if t >= self._he:
            return self._qe
        h = self._h
        i = self._hi
        for _ in range(_HN):
            e = h[i]
            if e[0] <= t:
                return e[1] + e[2] * _on_time(e, e[0], t)
            i = (i - 1) % _HN
        return h[(self._hi + 1) % _HN][1]  # older than the history: its oldest point

    def power_on(self, now_us=None):
        """The board lost power and came back (virtual time may restart at 0): the filter,
        the source and C_out are discharged, the limiter latch is clear; the patient's skin
        and the scenario clock carry on from where they were."""
        now = self._clock() if now_us is None else now_us
        if self._start is not None:
            self._start += now - self._t
            self._set_ev_at()
        self._t = now
        self._f1 = self._f2 = self._x = 0.0
        self._v = 0.0
        self._i = 0.0
        self.duty = 0
        self.enable = 0
        self._gate = 0
        self._gate_freq = 0
        self.hw_limit_tripped = False
        self._settled = False
        self._hist_reset(now)

    def _sync(self):
        # Inputs apply at the present time; inside a scenario event, at the event's time.
        if not self._busy:
            self._advance(self._clock())

    def _advance(self, now):
        if now == self._t or self._busy:
            return None  # nothing to run (a query at the time of the last: the common case)
        if now < self._t:  # virtual time restarted: a power-on nobody announced
            self.power_on(now)
        self._busy = True
        try:
            self._run(now)
        finally:
            self._busy = False

    def _run(self, now):
        t = self._t
        while t < now:
            end = now
            ev = self._ev_at
            if ev is not None and ev < end:
                end = ev
            hydrating = self._start is not None and self.contact == IMMERSED
            if hydrating:
                hend = t + (self._hyd_mark - self._hyd)
                if hend < end:
                    end = hend
            if self._r_noise != 1.0 or self._drop or self.noise_frac > 0.0 or self.noise_dropout > 0.0:
                nb = self._refresh_noise(t)
            else:
                nb = None  # no noise: what _refresh_noise would say, without the call
            if nb is not None and nb < end:
                end = nb
            if self._settled and nb is None:
                self._acc(t, end, self._i)  # nothing moves: time passes
            else:
                self._integrate(t, end)
            if hydrating:
                self._hyd += end - t
                if self._hyd >= self._hyd_mark:
                    self._hyd_mark += _HYD_STEP
                    self._update_rp()
                    if not (self._settled and self._snap()):
                        self._settled = False
            t = end
            self._t = t
            if ev is not None and t == ev:
                self._next_ev += 1
                self._set_ev_at()
                _scn.apply_event(self, self.scenario["events"][self._next_ev - 1])
                t = self._t
        if t > self._t:
            self._t = t

    def _snap(self):
        # Hydration is minutes slow against the skin's milliseconds: a settled state
        # moves straight to the new equilibrium instead of integrating towards it.
        if not self._connected() or self.contact != IMMERSED or self._r_noise != 1.0:
            return False
        rs = self._rl()
        rp = self._rp
        i = self._x if self._active() else 0.0
        if i < 0.0:
            i = 0.0
        v = i * (rs + rp) / 1000.0
        if v > self.clamp_mv:
            v = self.clamp_mv
            i = v * 1000.0 / (rs + rp)
        self._v = v
        self._vp = i * rp / 1000.0
        self._i = i
        self._check_limit()
        return True

    def _regime(self):
        # 0: step the whole circuit (_step). 1: in regulation: active, in the water, the node
        # below the clamp and following the source within microseconds (C_out x R_s), the
        # load current within _Q of the source's x: _quiet_step at _H_MAX. 2: besides, within
        # _Q of the equilibrium the present input leads to (nothing left to move by more than
        # the INA219's LSB): _quiet_step up to _H_QUIET.
        if not (self.contact == IMMERSED and self._r_noise == 1.0 and self._connected() and self._active()):
            return 0
        x = self._x
        d = self._i - x
        if d > _Q or d < -_Q or x < 0.0:
            return 0
        rs = self._rl()
        if self.c_out_nf * rs > 50_000.0:  # the node's tau (us x 1000) far below a step
            return 0
        u = self.duty * _FS / 65535.0
        hi = u if u > x else x
        if self._f1 > hi:
            hi = self._f1
        if self._f2 > hi:
            hi = self._f2
        # the node stays below the clamp on the way (x moves monotonically between these)
        if (hi + _Q) * (rs + self._rp) / 1000.0 >= self.clamp_mv - 1.0:
            return 0
        d = u - x
        if d > _Q or d < -_Q:
            return 1
        d = u - self._f2
        if d > _Q or d < -_Q:
            return 1
        d = u - self._f1
        if d > _Q or d < -_Q:
            return 1
        return 2

    def _cascade(self, h):
        # Reference cascade: closed form for a constant target u over h. -> (u, x0, x1)
        if h != self._e_h:
            self._e_h = h
            self._e_f = math.exp(-h / _TAU_F)
            self._e_l = math.exp(-h / _TAU_L)
        e = self._e_f
        el = self._e_l
        u = self.duty * _FS / 65535.0
        a2 = self._f2 - u
        b2 = (self._f1 - u) / _TAU_F
        b = b2 * _K
        a = (a2 - b * _TAU_L) * _K
        x0 = self._x
        x1 = u + (x0 - u - a) * el + a * e + b * h * e
        self._f1 = u + (self._f1 - u) * e
        self._f2 = u + a2 * e + b2 * h * e
        self._x = x1
        return u, x0, x1

    def _quiet_step(self, h):
        # In regulation the node follows the source within microseconds (C_out x R_s), so
        # over a long step V = x R_s + Vp at every instant and the load current is x; the skin
        # charges from x with its own tau C_p x R_p. Exact to first order in what x moves
        # (< _Q uA, see _regime).
        u, x0, x1 = self._cascade(h)
        rp = self._rp
        xm = (x0 + x1) * 0.5
        taup = self.c_skin_nf * rp / 1000.0
        key = h * 1e9 + taup
        if key != self._q_key:
            self._q_key = key
            self._q_e = math.exp(-h / taup)
        vp0 = self._vp
        eq = xm * rp / 1000.0
        vp1 = eq + (vp0 - eq) * self._q_e
        v0 = self._v
        v1 = x1 * self._rl() / 1000.0 + vp1
        self._vp = vp1
        self._v = v1
        self._iavg = xm - self.c_out_nf * (v1 - v0) / h
        self._i = self._load_current()
        self._check_limit()
        self._settle_check(u, x0, x1, v0, v1, vp0, vp1)

    def _integrate(self, t, end):
        while t < end:
            h = end - t
            rg = self._regime()
            if rg == 2:
                if h > _H_QUIET:
                    h = _H_QUIET
            elif h > _H_MAX:
                h = _H_MAX
            tripped = self.hw_limit_tripped
            i0 = self._i if self._i > 0.0 else 0.0
            if rg:
                self._quiet_step(h)
            else:
                self._step(h)
            ia = self._iavg
            if ia is None:
                i1 = self._i if self._i > 0.0 else 0.0
                ia = (i0 + i1) * 0.5  # trapezoid over the step
            if tripped or self.hw_limit_tripped:
                ia = 0.0
            self._acc(t, t + h, ia if ia > 0.0 else 0.0)
            t += h
            if self._settled:
                self._acc(t, end, self._i)
                return None

    def _step(self, h):
        u, x0, x1 = self._cascade(h)
        if x0 < 0.0:
            x0 = 0.0
        if x1 < 0.0:
            x1 = 0.0
        # Node V with Vp held: C dV/dt = I - G V, input ramping x0 -> x1 (first-order hold).
        active = self._active()
        conn = self._connected()
        vp = self._vp if self.contact == IMMERSED else 0.0
        v0 = self._v
        if conn:
            g = 1000.0 / self._rl()
            i_p = vp * g
            if not active:
                g += 1000.0 / _R_DIV
        else:
            g = 1000.0 / _R_DIV
            i_p = 0.0
        if active:
            vi0 = (x0 + i_p) / g
            vi1 = (x1 + i_p) / g
        else:
            vi0 = vi1 = i_p / g
        tau = self.c_out_nf / g
        key = h * 1e9 + tau
        if key != self._n_key:
            self._n_key = key
            self._n_e = math.exp(-h / tau)
            self._n_r = tau / h * (1.0 - self._n_e)
        ne = self._n_e
        nr = self._n_r
        v1 = vi1 + (v0 - vi0) * ne - (vi1 - vi0) * nr
        vavg = (vi0 + vi1) * 0.5 + (v0 - vi0) * nr - (vi1 - vi0) * tau / h * (1.0 - nr)
        vc = self.clamp_mv  # adaptive compliance (the rail at most)
        if active and v1 > vc:
            v1 = vc
            if v0 >= vc or vi1 <= vc:
                vavg = vc
            else:  # reached compliance within the step
                tc = tau * math.log((vi1 - v0) / (vi1 - vc))
                vavg = (vi1 * tc - (vi1 - v0) * tau * (1.0 - (vi1 - vc) / (vi1 - v0)) + vc * (h - tc)) / h
        self._v = v1
        # Skin capacitance: fed by V through R_s when in the water, else it discharges in R_p.
        rp = self._rp
        vp0 = self._vp
        if conn and self.contact == IMMERSED:
            rs = self._rl()
            target = vavg * rp / (rs + rp)
            taup = self.c_skin_nf * (rs * rp / (rs + rp)) / 1000.0
        else:
            target = 0.0
            taup = self.c_skin_nf * rp / 1000.0
        key = h * 1e9 + taup
        if key != self._s_key:
            self._s_key = key
            self._s_e = math.exp(-h / taup)
        vp1 = target + (vp0 - target) * self._s_e
        self._vp = vp1
        if conn and self.contact == IMMERSED and not (active and v1 >= vc):
            # Second pass: the node follows Vp as it ramps vp0 -> vp1 over the step.
            if active:
                vi1 = (x1 + vp1 * 1000.0 / self._rl()) / g
            else:
                vi1 = vp1 * 1000.0 / self._rl() / g
            v1 = vi1 + (v0 - vi0) * ne - (vi1 - vi0) * nr
            if active and v1 > vc:
                v1 = vc
            self._v = v1
        # Mean load current over the step by charge balance at the node (what the source put
        # in, less what C_out kept, less the divider's share while off): exact for the fast
        # discharge of C_out on re-contact, where a trapezoid of the end points is not. At the
        # clamp the sink takes an unknown share: the trapezoid then (the node is held still).
        if not conn:
            self._iavg = 0.0
        elif active and self._v >= vc:
            self._iavg = None
        elif active:
            self._iavg = (x0 + x1) * 0.5 - self.c_out_nf * (self._v - v0) / h
        else:
            self._iavg = -self.c_out_nf * (self._v - v0) / h - vavg * 1000.0 / _R_DIV
        self._i = self._load_current()
        self._check_limit()
        self._settle_check(u, x0, x1, v0, v1, vp0, vp1)

    def _settle_check(self, u, x0, x1, v0, v1, vp0, vp1):
        if (
            abs(x1 - x0) < _EPS
            and abs(x1 - u) < _EPS
            and abs(self._f2 - u) < _EPS
            and abs(self._f1 - u) < _EPS
            and abs(v1 - v0) < _EPS
            and abs(vp1 - vp0) < _EPS
        ):
            self._f1 = self._f2 = u
            self._x = u
            self._settled = True
