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

How the circuit moves between input changes (closed forms, steps): plant_circuit.py; the
charge history behind windowed means: plant_history.py. Plant is both, plus what this file
holds: the inputs, the outputs, the load and the scenario.
"""
import math
from micropython import const

import pins
import scenario as _scn
from plant_circuit import Circuit, OPEN, IMMERSED, SHORT, _LIMIT  # noqa: F401
from plant_history import ChargeHistory

_VC = float(pins.COMPLIANCE_MV)
_HYD_STEP = const(100_000)  # us of hydration between updates of R_p
LIMIT_RESPONSE_US = 20  # the limiter's comparator filter
SENSE_WINDOW_US = 100  # anti-alias RC of the second current channel (RS2 -> ADC1)
_NEVER = 1 << 60  # us: a time no run reaches (no scenario event or hydration mark ahead; a small int)



def _hash32(seed, k):
    # Deterministic per (seed, period): the noise does not depend on when it is queried.
    x = (seed * 0x9E3779B1 + k * 0x85EBCA77 + 0x165667B1) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def _default_clock():
    import vclock

    return vclock.now_us


class Plant(Circuit, ChargeHistory):
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
        self._quiet_end = 0  # a settled plant only books time before this (_advance, _run)
        self._quiet_hyd = False
        self._open = None  # closed-form regulated segment in force (plant_circuit._regulate_exact)
        self._open_t0 = self._open_end = 0
        self._open_q0 = 0.0
        self._hend = None
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
        e = self._h[self._hi]
        if e[3] == 0 and e[0] <= t0 and t1 <= self._he:
            # The whole window inside the newest history segment, a constant current (the
            # common case: a settled treatment): its mean is that current.
            m = e[2]
        else:
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
        self._quiet_end = 0
        self._open = None  # the inputs change: a closed-form segment ends here

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
        self._quiet_end = 0
        self._open = None
        self._hist_reset(now)

    def _sync(self):
        # Inputs apply at the present time; inside a scenario event, at the event's time.
        if not self._busy:
            self._advance(self._clock())

    def _advance(self, now):
        t = self._t
        if now == t or self._busy:
            return None  # nothing to run (a query at the time of the last: the common case)
        if self._settled and t < now < self._quiet_end:
            # Settled, before the next hydration mark or scenario event and without noise (as
            # _run found it, see there): all _run would do is book the time, extending the
            # newest charge-history segment (its _acc, written out), and count hydration.
            e = self._h[self._hi]
            self._he = now
            self._qe = e[1] + e[2] * (now - e[0])
            if self._quiet_hyd:
                self._hyd += now - t
            self._t = now
            return None
        if self._open is not None and t < now and not self.hw_limit_tripped:
            end = self._open_end
            if end is None or now < end:
                # In regulation, in closed form: the state at `now`, nothing to step.
                if self._start is not None and self.contact == IMMERSED:
                    self._hyd += now - t
                self._open_eval(now - self._open_t0)
                self._t = now
                return None
        self._open = None
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
            self._open = None  # only the interval ending at `now` may leave one open
            end = now
            ev = self._ev_at
            if ev is not None and ev < end:
                end = ev
            hydrating = self._start is not None and self.contact == IMMERSED
            self._hend = None
            if hydrating:
                hend = self._hend = t + (self._hyd_mark - self._hyd)
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
        # Until what a settled plant only books time (_advance's shortcut): the next hydration
        # mark or scenario event, if nothing else moves (no contact noise) and the newest
        # history segment is the one _acc would extend (DC, this current, ending now).
        q = 0
        if self._settled and self._r_noise == 1.0 and not self._drop and (
                self.noise_frac <= 0.0 and self.noise_dropout <= 0.0 or self.contact != IMMERSED):
            e = self._h[self._hi]
            i = self._i
            if self._he == self._t and e[3] == 0 and e[2] == (i if i > 0.0 else 0.0) and (
                    self.output_stuck_on or not self._gate_freq):
                q = self._ev_at
                if q is None:
                    q = _NEVER
                self._quiet_hyd = self._start is not None and self.contact == IMMERSED
                if self._quiet_hyd:
                    hend = t + (self._hyd_mark - self._hyd)
                    if hend < q:
                        q = hend
        self._quiet_end = q
