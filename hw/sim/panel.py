"""Nurse panel: buttons with contact bounce, buzzer and LED recorders.

Buttons are active low (the firmware enables pull-ups): a press drives the pad low through
a few bounces, a release lets it go high again. Edges are scheduled as hardware events on
the virtual clock (`vclock.at`), so they land at their exact virtual time and fire the
firmware's pin IRQs there. Bounce is seeded: the same press bounces the same way every run.
"""
from micropython import const

import pins

BUTTONS = {
    "START": pins.PIN_BTN_START,
    "STOP": pins.PIN_BTN_STOP,
    "UP": pins.PIN_BTN_UP,
    "DOWN": pins.PIN_BTN_DOWN,
    "MODE": pins.PIN_BTN_MODE,
}
_KEEP = const(256)  # recorded buzzer/LED changes kept (a 40-minute session stays bounded)


class _Ring:
    # Last _KEEP items, oldest first on read.
    def __init__(self, n=_KEEP):
        self._b = [None] * n
        self._n = 0

    def add(self, item):
        self._b[self._n % len(self._b)] = item
        self._n += 1

    def last(self, n=None):
        size = len(self._b)
        have = self._n if self._n < size else size
        if n is None or n > have:
            n = have
        return [self._b[i % size] for i in range(self._n - n, self._n)]

    def __len__(self):
        return self._n


class Panel:
    def __init__(self, machine=None, vclock=None, seed=1):
        if machine is None:
            import machine
        if vclock is None:
            import vclock
        self._m = machine
        self._vc = vclock
        self._rng = (seed * 2654435761 + 12345) & 0xFFFFFFFF or 1
        self._down = {}
        self.buzzer_log = _Ring()
        self.led_log = _Ring()
        self.led = 0
        self.buzzer = (0, 0)  # (freq, duty_u16) now; duty 0 = silent
        self.presses = 0
        self.closed = False
        machine.sim_pin(pins.PIN_LED).on_change(self._led_pin)
        machine.sim_pwm(pins.PIN_LED).on_change(self._led_pwm)
        machine.sim_pwm(pins.PIN_BUZZER).on_change(self._buzz)
        self.release_all()

    # --- buttons -------------------------------------------------------------------------
    def _rand(self, n):
        # xorshift32: same sequence on CPython and MicroPython
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x % n

    def _pin(self, name):
        try:
            return BUTTONS[name.upper()]
        except (KeyError, AttributeError):
            raise ValueError("unknown button %r (buttons: %s)" % (name, ", ".join(sorted(BUTTONS))))

    def _bounce(self, pid, level, t0):
        # 2-5 chatter pulses over about 1-5 ms, then the final level; returns its time.
        t = t0
        n = 2 + self._rand(4)
        span = 1000 + self._rand(4001)
        lvl = level
        for k in range(2 * n):
            self._vc.at(t, _drive, (self._m.sim_pin(pid), lvl))
            lvl ^= 1
            t += 1 + (span * (k + 1)) // (n * (2 * n + 1)) + self._rand(60)
        self._vc.at(t, _drive, (self._m.sim_pin(pid), level))
        return t

    def press(self, name, hold_ms=120, at_us=None):
        """Press (bouncing) now or at at_us, hold for hold_ms, release (bouncing)."""
        pid = self._pin(name)
        t0 = self._vc.now_us() if at_us is None else at_us
        self._bounce(pid, 0, t0)
        self._bounce(pid, 1, t0 + int(hold_ms * 1000))
        self.presses += 1
        return t0 + int(hold_ms * 1000)

    def hold(self, name):
        pid = self._pin(name)
        self._down[pid] = True
        self.presses += 1
        return self._bounce(pid, 0, self._vc.now_us())

    def release(self, name):
        pid = self._pin(name)
        self._down.pop(pid, None)
        return self._bounce(pid, 1, self._vc.now_us())

    def release_all(self):
        """Every button up, no bounce (power-on): the pads read high through the pull-up."""
        self._down = {}
        for pid in BUTTONS.values():
            self._m.sim_pin(pid).drive(1)

    def is_down(self, name):
        return self._m.sim_pin(self._pin(name)).value == 0

    # --- buzzer and LED --------------------------------------------------------------------
    def _buzz(self, pid, mean):
        if self.closed:
            return
        v = self._m.sim_pwm(pid)
        if v.enabled:
            f, d = v.freq, v.duty_u16
            if v.invert:
                d = 65535 - d
        else:  # a plain level or a stopped slice: a DC level makes no sound
            f, d = 0, 0
        if (f, d) != self.buzzer:
            self.buzzer = (f, d)
            self.buzzer_log.add((self._vc.now_us(), f, d))

    def _led_pin(self, pid, level):
        self._led_set(1 if level else 0)

    def _led_pwm(self, pid, mean):
        self._led_set(1 if mean >= 32768 else 0)

    def _led_set(self, level):
        if self.closed:
            return
        if level != self.led:
            self.led = level
            self.led_log.add((self._vc.now_us(), level))

    def buzzer_events(self, n=None):
        """Last n buzzer changes as (t_us, freq, duty_u16), oldest first."""
        return self.buzzer_log.last(n)

    def led_events(self, n=None):
        """Last n LED changes as (t_us, level), oldest first."""
        return self.led_log.last(n)

    def buzzing(self):
        return self.buzzer[0] > 0 and self.buzzer[1] > 0


def _drive(a):
    a[0].drive(a[1])
