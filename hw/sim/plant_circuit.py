"""How the plant's circuit moves between input changes (the Circuit half of plant.Plant).

Between input changes the reference cascade has a closed form. In regulation (the source on,
in the water, the node below the clamp and following the source within microseconds) the
load current IS the source's x, and the skin charges from it with C_p x R_p: a closed form
too, taken whole for as long as the inputs hold (_regulate_exact: one charge-history segment
whose charge is known at every instant; a query evaluates it at its time). Where its
conditions do not hold (a gated output, near zero or near the limit) it is stepped at 1 ms for
the charge history (at most 20 ms once within 1 uA of equilibrium) by _regulate. Otherwise (lifted, shorted, off, at the clamp, noisy contact) the node and the skin are
advanced by exponential steps (exact for each part with the other held) of at most 1 ms.
Once everything has settled a query only moves time on.

Plant's state (`_x`, `_f1`, `_f2`, `_v`, `_vp`, `_i`, inputs, load) is read and written here;
plant.py owns the inputs, outputs and the scenario.
"""
import math
from micropython import const

import pins

_TAU_F = 1600.0  # us, each pole of the setpoint RC filter
_TAU_L = 200.0  # us, the current source's own loop
_K = _TAU_F / (_TAU_F - _TAU_L)
_R_DIV = float(pins.DIVIDER_TOP_OHM + pins.DIVIDER_BOTTOM_OHM)
_FS = float(pins.SETPOINT_FULL_SCALE_UA)
_H_MAX = const(1000)  # us, longest integration step while anything moves
_H_QUIET = const(20_000)  # us, longest step when the state is within _Q of its equilibrium
_Q = 1.0  # uA: nothing is left to move by more than the INA219's LSB (see _regime)
_EPS = 0.01  # uA or mV: below this per step, the state is settled
_LIMIT = pins.HW_LIMIT_UA
_HN = const(128)  # = plant_history._HN, the segments of the charge history
# The cascade over a whole _H_MAX step, in deviations d1, d2, dx from the target (_cascade's
# closed form with constant h): d1 *= E_F1; d2 = E_F1 d2 + C0 d1; dx = E_L1 dx + C2 d2 + C1 d1.
_E_F1 = math.exp(-_H_MAX / _TAU_F)
_E_L1 = math.exp(-_H_MAX / _TAU_L)
_C0 = _H_MAX * _E_F1 / _TAU_F
_C2 = _K * (_E_F1 - _E_L1)
_C1 = _K * _H_MAX * _E_F1 / _TAU_F - _K * _TAU_L / _TAU_F * _C2

# The closed form of a whole regulated interval (_regulate_exact) is used while the source's
# states stay within this far of the limit's margin and above _EXACT_MIN_UA (the load current
# then is the source's, a little over zero), and the skin's tau is at least this share away
# from the cascade's (the closed form's coefficients divide by their difference).
_EXACT_MIN_UA = 100.0
_EXACT_MARGIN_UA = 1_000.0
_EXACT_TAU_GAP = 0.05

OPEN = "lifted"
IMMERSED = "immersed"
SHORT = "short"


def seg_charge(c, o, s):
    """Charge (uA*us) over the first s us of a closed-form regulated segment (_regulate_exact)
    whose seven numbers k0, u, p, r, q, d, taup are c[o:o + 7]: k0 + u s + p e^-s/tl +
    (r + q s) e^-s/tf + d e^-s/taup. (In an array of doubles the history allocates once.)"""
    return (c[o] + c[o + 1] * s + c[o + 2] * math.exp(-s / _TAU_L) + (c[o + 3] + c[o + 4] * s) * math.exp(-s / _TAU_F)
            + c[o + 5] * math.exp(-s / c[o + 6]))


class Circuit:
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
        # load current within _Q of the source's x: _regulate, steps of _H_MAX. 2: besides,
        # within _Q of the equilibrium the present input leads to (nothing left to move by more
        # than the INA219's LSB): steps up to _H_QUIET. Holds until an input changes.
        if not (self.contact == IMMERSED and self._r_noise == 1.0 and self._connected() and self._active()):
            return 0
        x = self._x
        if x < 0.0:
            return 0
        # The load current is x less what C_out gives as the node follows the skin:
        # C_out x dVp/dt = C_out / C_p x (x - Vp / R_p). Far from that (a step of R_p, a
        # contact change) the node is not quasi-static: the general stepper.
        d = self.c_out_nf / self.c_skin_nf * (x - self._vp * 1000.0 / self._rp)
        if d > _Q or d < -_Q:
            return 0
        d = self._i - x
        if d > 200.0 * _Q or d < -200.0 * _Q:  # a jump the stepper must take (contact, polarity)
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
        # The node (x R_s + Vp) stays below the clamp over any interval without input changes:
        # x stays within the cascade's values and u, Vp between its own and x R_p.
        rp = self._rp
        vp = hi * rp / 1000.0
        if self._vp > vp:
            vp = self._vp
        if (hi + _Q) * rs / 1000.0 + vp >= self.clamp_mv - 1.0:
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

    def _regulate(self, t, end):
        # In regulation the node follows the source within microseconds (C_out x R_s), so over
        # a step V = x R_s + Vp at every instant and the load current is x (closed form, the
        # cascade's); the skin charges from x with its own tau C_p x R_p. Exact to first order
        # in what x moves within a step. Steps of _H_MAX (_H_QUIET once within _Q of the
        # equilibrium), each one charge-history segment. One tight loop with the state in
        # locals, as deviations from the target u (the cascade is then linear with constant
        # factors for a whole _H_MAX step: _C1, _C2): this runs ~100 times per virtual second.
        # -> the time reached: `end`, or earlier if the limiter tripped (the caller goes on).
        u = self.duty * _FS / 65535.0
        rs = self._rl() / 1000.0
        rp = self._rp / 1000.0
        c_out = self.c_out_nf
        kc = c_out / self.c_skin_nf
        taup = self.c_skin_nf * rp
        if not (self._gate_freq and not self.output_stuck_on) and self._regulate_exact(t, end, u, rs, rp, kc, taup):
            return end
        if taup != self._q_key:
            self._q_key = taup
            self._q_e = math.exp(-_H_MAX / taup)
        es1 = self._q_e
        d1 = self._f1 - u
        d2 = self._f2 - u
        dx = self._x - u
        vp = self._vp
        v = self._v
        peak = self.peak_ua
        gated = self._gate_freq and not self.output_stuck_on
        hist = self._h
        hi = self._hi
        qe = self._qe
        he = self._he
        h = 0
        ia = 0.0
        i = self._i
        while t < end:
            h = end - t
            if h >= _H_MAX and not (-_Q < dx < _Q and -_Q < d2 < _Q and -_Q < d1 < _Q):
                h = _H_MAX
                dx0 = dx
                dx = _E_L1 * dx + _C2 * d2 + _C1 * d1
                d2 = _E_F1 * d2 + _C0 * d1
                d1 = _E_F1 * d1
                es = es1
            else:  # the last part of the interval, or a long quiet step: factors for this h
                if h > _H_QUIET:
                    h = _H_QUIET
                e = math.exp(-h / _TAU_F)
                el = math.exp(-h / _TAU_L)
                es = math.exp(-h / taup)
                k = _K * (e - el)
                dx0 = dx
                dx = el * dx + k * d2 + (_K * h * e / _TAU_F - _K * _TAU_L / _TAU_F * k) * d1
                d2 = e * d2 + h * e / _TAU_F * d1
                d1 = e * d1
            xm = u + (dx0 + dx) * 0.5
            eq = xm * rp
            vp0 = vp
            vp = eq + (vp0 - eq) * es
            v0 = v
            x = u + dx
            v = x * rs + vp
            ia = xm - c_out * (v - v0) / h
            i = x - kc * (x - vp / rp)  # the load current at the step's end (see _regime)
            if i > peak:
                peak = i
            if i > _LIMIT:
                break  # let _check_limit see it, and the general path take over
            r = ia if ia > 0.0 else 0.0
            if gated:
                self._hi = hi
                self._he = he
                self._qe = qe
                self._acc(t, t + h, r)
                hi = self._hi
                he = self._he
                qe = self._qe
            else:  # _acc, inline: a new segment unless the current is the same
                seg = hist[hi]
                if not (t == he and seg[2] == r and seg[3] == 0):
                    hi = (hi + 1) % _HN
                    seg = hist[hi]
                    seg[0] = t
                    seg[1] = qe
                    seg[2] = r
                    seg[3] = 0
                    seg[4] = self._gate_duty
                    seg[5] = self._gate_t0
                he = t + h
                qe = seg[1] + r * (he - seg[0])
            t += h
            if (-_EPS < dx - dx0 < _EPS and -_EPS < dx < _EPS and -_EPS < d2 < _EPS and -_EPS < d1 < _EPS
                    and -_EPS < v - v0 < _EPS and -_EPS < vp - vp0 < _EPS):
                d1 = d2 = dx = 0.0
                self._settled = True
                break
        self._hi = hi
        self._he = he
        self._qe = qe
        self._f1 = u + d1
        self._f2 = u + d2
        x = u + dx
        self._x = x
        self._vp = vp
        self._v = v
        i = x - kc * (x - vp / rp)
        self._i = i
        self.peak_ua = peak
        if i > _LIMIT:
            self._check_limit()  # trips: the step is booked as the stepper books one that tripped
            self._acc(t, t + h, 0.0 if self.hw_limit_tripped else (ia if ia > 0.0 else 0.0))
            t += h
        elif self._settled:
            self._acc(t, end, i)
            t = end
        return t

    def _regulate_exact(self, t, end, u, rs, rp, kc, taup):
        # Regulation in closed form from t for as long as the inputs hold: the cascade's x(s)
        # (see _cascade), the skin's Vp driven by it exactly (Vp' = (x R_p - Vp) / tau_p, the
        # ODE _regulate steps), the node V = x R_s + Vp and the load current x - C_out V'
        # (charge: the integral of x less C_out times what V gained). The interval is one
        # "open" charge-history segment whose charge is known at every instant
        # (plant_history._charge), so a windowed mean is exact, and a later query up to
        # _open_end (the next hydration mark or scenario event; an input change closes it
        # first) only evaluates the closed form at its time (Plant._advance): no stepping and
        # no history segment per millisecond while the firmware dithers its setpoint.
        # Taken when nothing calls for the stepper: the states lie between _EXACT_MIN_UA and
        # the limit's margin (no trip, no clipping at zero), the node starts where regulation
        # puts it, the skin's tau is apart from the cascade's, and x stays within _Q of the
        # higher of its start and its target (the peak is then what the queries see, as the
        # stepper's is what its steps see). -> False: the stepper takes the interval.
        f1 = self._f1
        f2 = self._f2
        x0 = self._x
        lo = hi = u
        for v in (f1, f2, x0):
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        if lo < _EXACT_MIN_UA or hi + _EXACT_MARGIN_UA >= _LIMIT or hi - (x0 if x0 > u else u) > _Q:
            return False
        tf = _TAU_F
        tl = _TAU_L
        if abs(taup - tf) < _EXACT_TAU_GAP * tf or abs(taup - tl) < _EXACT_TAU_GAP * tl:
            return False
        vp0 = self._vp
        v0 = self._v
        if abs(x0 * rs + vp0 - v0) > 1.0:  # the node is not where regulation holds it (mV)
            return False
        d1 = f1 - u
        d2 = f2 - u
        b = _K * d1 / tf
        a = (d2 - b * tl) * _K
        ca = x0 - u - a  # x = u + ca e^-s/tl + (a + b s) e^-s/tf
        al = rp * ca * tl / (tl - taup)  # Vp = rp u + al e^-s/tl + (be + ga s) e^-s/tf + de e^-s/taup
        ga = rp * b * tf / (tf - taup)
        be = (rp * a - ga * taup) * tf / (tf - taup)
        vpu = rp * u
        de = vp0 - vpu - al - be
        c_out = self.c_out_nf
        # The charge since t, grouped by exponential (see seg_charge): the integral of x less
        # C_out times what V = x R_s + Vp gained since v0.
        k = (self._hi + 1) % _HN
        c = self._hc
        o = k * 7
        c[o] = ca * tl + a * tf + b * tf * tf - c_out * (rs * u + vpu - v0)
        c[o + 1] = u
        c[o + 2] = -ca * tl - c_out * (rs * ca + al)
        c[o + 3] = -a * tf - b * tf * tf - c_out * (rs * a + be)
        c[o + 4] = -b * tf - c_out * (rs * b + ga)
        c[o + 5] = -c_out * de
        c[o + 6] = taup
        g = self._h[k]
        g[0] = t
        g[1] = self._qe
        g[2] = 0.0
        g[3] = -1  # a closed-form segment: its charge is seg_charge(self._hc, g[4], s)
        g[4] = o
        g[5] = 0
        self._hi = k
        self._open = (u, ca, a, b, vpu, al, be, ga, de, rs, taup, d1, d2, rp, kc, o)
        self._open_t0 = t
        self._open_q0 = g[1]
        ev = self._ev_at
        he = self._hend
        self._open_end = ev if ev is not None and (he is None or ev < he) else he
        self._open_eval(end - t)
        return True

    def _open_eval(self, s):
        # The state s us into the open closed-form segment (_regulate_exact), and the charge.
        u, ca, a, b, vpu, al, be, ga, de, rs, taup, d1, d2, rp, kc, o = self._open
        tf = _TAU_F
        exp = math.exp
        el = exp(-s / _TAU_L)
        e = exp(-s / tf)
        ep = exp(-s / taup)
        dx = ca * el + (a + b * s) * e
        vp = vpu + al * el + (be + ga * s) * e + de * ep
        d2 = (d2 + d1 * s / tf) * e
        d1 = d1 * e
        eps = _EPS
        if -eps < d1 < eps and -eps < d2 < eps and -eps < dx < eps:
            # Settled as the stepper judges it (every deviation, and what each moves in a
            # millisecond, below _EPS): from here the plant only books time (Plant._run).
            dxd = (-ca * el / _TAU_L + (b - (a + b * s) / tf) * e) * _H_MAX
            vpd = ((u + dx) * rp - vp) / taup * _H_MAX
            if -eps < dxd < eps and -eps < vpd < eps and -eps < dxd * rs + vpd < eps:
                d1 = d2 = dx = 0.0
                self._settled = True
                self._open = None
        x = u + dx
        v = x * rs + vp
        i = x - kc * (x - vp / rp)
        self._f1 = u + d1
        self._f2 = u + d2
        self._x = x
        self._vp = vp
        self._v = v
        self._i = i
        if i > self.peak_ua:
            self.peak_ua = i
        self._he = self._open_t0 + s
        c = self._hc  # seg_charge(c, o, s), with the exponentials already at hand
        self._qe = self._open_q0 + c[o] + u * s + c[o + 2] * el + (c[o + 3] + c[o + 4] * s) * e + c[o + 5] * ep

    def _integrate(self, t, end):
        while t < end:
            if self._regime():
                t = self._regulate(t, end)
                if self._settled:
                    return None
                continue
            h = end - t
            if h > _H_MAX:
                h = _H_MAX
            tripped = self.hw_limit_tripped
            i0 = self._i if self._i > 0.0 else 0.0
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
