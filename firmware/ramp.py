"""Slew-limited ramp generator, integer only, exact for slow ramps.

    r = Ramp()
    r.set_slew(up_ua_s, down_ua_s)   # uA per second, separately up and down
    r.set_target(ua)
    value = r.step(dt_ms)            # per tick: moves value toward target, returns it

The remainder below 1 uA (kept in uA*ms) carries from tick to tick, so 250 uA/s at a 2 ms
tick rises by exactly 250 uA per second rather than 0 (or 500) from rounding. `reset(v)`
jumps to v (only ever used to cut to zero or restart from zero). No allocation, no floats.
"""


class Ramp:
    def __init__(self, slew_up=1, slew_down=1):
        self.value = 0
        self.target = 0
        self.slew_up = slew_up
        self.slew_down = slew_down
        self._rem = 0  # uA*ms not yet turned into whole uA

    def set_slew(self, up, down):
        self.slew_up = up if up > 0 else 1
        self.slew_down = down if down > 0 else 1

    def set_target(self, ua):
        if ua < 0:
            ua = 0
        if (ua > self.value) != (self.target > self.value):
            self._rem = 0  # direction changed: the carry belonged to the other slope
        self.target = ua

    def reset(self, ua=0):
        self.value = ua
        self.target = ua
        self._rem = 0

    def hold_below(self, ua):
        """Clamp the value (not the target) down to ua; it then climbs again at the slew."""
        if self.value > ua:
            self.value = ua if ua > 0 else 0
            self._rem = 0

    def drop_to(self, ua):
        """Cut the value (not the target) down to ua at once; it then climbs at the slew."""
        if self.value > ua:
            self.value = ua if ua > 0 else 0
            self._rem = 0

    def at_target(self):
        return self.value == self.target

    def step(self, dt_ms):
        v = self.value
        t = self.target
        if v == t:
            self._rem = 0
            return v
        slew = self.slew_up if t > v else self.slew_down
        budget = self._rem + slew * dt_ms
        d = budget // 1000
        self._rem = budget - d * 1000
        if t > v:
            v += d
            if v >= t:
                v = t
                self._rem = 0
        else:
            v -= d
            if v <= t:
                v = t
                self._rem = 0
        self.value = v
        return v
