# Piezo sounder on a PWM pin: non-blocking patterns stepped by tick(now_ms).
#
#     bz = Buzzer(PWM(Pin(pins.PIN_BUZZER)))   # board.py makes the PWM
#     bz.play(buzzer.END, now_ms)              # start a pattern (replaces a lower-priority one)
#     bz.tick(now_ms)                          # every loop iteration; no allocation
#     bz.off()                                 # silence at once (safe paths)
#
# A pattern is a tuple of durations in ms, alternately sounding and silent, starting with
# sound; `_REPEAT` patterns start over until off() or another play(). FAULT outranks the
# others: while it sounds, only off() or another FAULT replaces it.
from micropython import const

try:
    from time import ticks_add as _ticks_add, ticks_diff as _ticks_diff
except ImportError:  # CPython host tests: rp2's 2**30 wrap
    def _ticks_diff(a, b):
        return ((a - b + (1 << 29)) & ((1 << 30) - 1)) - (1 << 29)

    def _ticks_add(a, d):
        return (a + d) & ((1 << 30) - 1)

FREQ_HZ = const(2_700)  # typical piezo resonance: loudest for the drive
_DUTY = const(32_768)  # square wave

CLICK = (12,)
START = (150,)
PAUSE = (80, 80, 80)
END = (200, 150, 200, 150, 200)
FAULT = (500, 150, 500, 150, 500, 700)  # repeats: an alarm that does not let up


class Buzzer:
    def __init__(self, pwm, freq=FREQ_HZ):
        self._pwm = pwm
        self._freq = freq
        self._pat = None
        self._i = 0
        self._t = 0  # when the current step began
        self._on = False
        self.played = 0  # patterns started (log, tests)
        try:
            pwm.freq(freq)
        except Exception:
            pass
        self._sound(False)

    def _sound(self, on):
        self._pwm.duty_u16(_DUTY if on else 0)
        self._on = on

    def busy(self):
        return self._pat is not None

    def play(self, pattern, now_ms):
        if self._pat is FAULT and pattern is not FAULT:
            return False
        self._pat = pattern
        self._i = 0
        self._t = now_ms
        self.played += 1
        self._sound(True)
        return True

    def tick(self, now_ms):
        p = self._pat
        if p is None:
            return
        # several steps may have passed if the loop was slow: catch up without drifting
        while _ticks_diff(now_ms, self._t) >= p[self._i]:
            self._t = _ticks_add(self._t, p[self._i])
            self._i += 1
            if self._i >= len(p):
                if p is FAULT:
                    self._i = 0
                else:
                    self._pat = None
                    if self._on:
                        self._sound(False)
                    return
            on = not (self._i & 1)
            if on != self._on:
                self._sound(on)

    def off(self):
        """Silence now and forget the pattern. Never raises."""
        self._pat = None
        try:
            self._sound(False)
        except Exception:
            self._on = False
