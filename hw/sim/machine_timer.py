# The `machine` mock's Timer: soft-IRQ callbacks at virtual times (vclock). Re-exported by machine.py.
import vclock

try:
    from micropython import const
except ImportError:
    def const(x):
        return x


# --- Timer ----------------------------------------------------------------------------------
_timers = []


def _timer_expire(t):
    t._pending = True
    if t._mode == 1 and t._armed:
        due = t._entry[0] + t._delta
        now = vclock.now_us()
        if due <= now:  # late (blackout): skip missed periods, keep the phase
            due += ((now - due) // t._delta + 1) * t._delta
        vclock.at(due, _timer_expire, t, t._entry)
    else:
        t._armed = False
    if not t._queued:
        t._queued = True
        vclock.post(_timer_fire, t, False)


def _timer_fire(t):
    t._queued = False
    if t._pending:
        t._pending = False
        cb = t._cb
        if cb is not None:
            cb(t)


class Timer:
    ONE_SHOT = const(0)
    PERIODIC = const(1)

    def __init__(self, id=-1, *, mode=1, period=-1, freq=-1, tick_hz=1000, callback=None, hard=False):
        self._id = id
        self._armed = False
        self._queued = False
        self._pending = False
        self._entry = None
        self._cb = None
        self._mode = 1
        self._delta = 0
        if callback is not None or period != -1 or freq != -1:
            self.init(mode=mode, period=period, freq=freq, tick_hz=tick_hz, callback=callback, hard=hard)

    def init(self, *, mode=1, period=-1, freq=-1, tick_hz=1000, callback=None, hard=False):
        self.deinit()
        if freq != -1:
            if freq <= 0:
                raise ValueError("freq must be > 0")
            delta = int(1_000_000 / freq)
        elif period != -1:
            if period < 0:
                raise ValueError("period must be >= 0")
            delta = period * 1_000_000 // tick_hz
        else:
            delta = 0xFFFFFFFF  # rp2 default period
        self._delta = delta if delta > 0 else 1
        self._mode = mode
        self._cb = callback
        self._hard = hard
        self._armed = True
        self._entry = vclock.at(vclock.now_us() + self._delta, _timer_expire, self, self._entry)
        if self not in _timers:
            _timers.append(self)

    def deinit(self):
        self._armed = False
        self._pending = False
        if self._entry is not None:
            vclock.cancel(self._entry)
        if self in _timers:
            _timers.remove(self)

    def __repr__(self):
        return "Timer(mode=%s, period=%dus)" % ("PERIODIC" if self._mode else "ONE_SHOT", self._delta)
