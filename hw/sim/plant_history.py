"""The plant's charge history (the ChargeHistory half of plant.Plant): the integral of the
shunt current as the plant advances, so the mean over a recent window can be asked for (an
averaging ADC such as the INA219 reads the mean over its conversion, a gated current's too).

A ring of _HN segments [start, q at start, on-current, gate freq, gate duty, gate t0]; over a
segment the on-current is constant and the charge grows by it x the gate's on-time. A segment
with gate freq -1 is a regulated interval in closed form (plant_circuit._regulate_exact): its
charge s us after its start is seg_charge(_hc, segment[4], s), its seven numbers kept in _hc.
"""
from array import array
from micropython import const

from plant_circuit import seg_charge

_HN = const(128)  # segments of charge history kept for windowed means (>= 100 ms moving)


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


class ChargeHistory:
    def _hist_reset(self, t):
        self._h = [[t, 0.0, 0.0, 0, 0, 0] for _ in range(_HN)]
        self._hc = array("d", bytes(8 * 7 * _HN))  # closed-form segments' numbers, 7 a segment
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
                f = e[3]
                if f < 0:
                    return e[1] + seg_charge(self._hc, e[4], t - e[0])
                if not f:  # DC: _on_time is all of it
                    return e[1] + e[2] * (t - e[0])
                return e[1] + e[2] * _on_time(e, e[0], t)
            i = (i - 1) % _HN
        return h[(self._hi + 1) % _HN][1]  # older than the history: its oldest point
