# Debounced panel buttons (active low, pull-ups): IRQ on both edges plus a poll.
#
#     btn = Buttons(Pin, (pins.PIN_BTN_START, pins.PIN_BTN_STOP, ...))   # bit i = 1 << i
#     ...every tick...
#     btn.poll(time.ticks_ms())
#     mask = btn.take()          # presses since the last take(): START | STOP | UP | DOWN | MODE
#     longs = btn.take_long()    # buttons held past long_ms (once per hold)
#
# The IRQ handler only records the edge time in a preallocated array and schedules the
# debouncer once (micropython.schedule; a flag keeps the queue of 8 from filling with bounce).
# It allocates nothing: the handler is a bound method made once in __init__, the schedule
# argument is preallocated. The debouncer (scheduled, and the loop's poll()) accepts a new
# level once the pin has read the same for `debounce_ms` since its last edge; a press is the
# accepted change to low. poll() also reads the pins itself, so a lost IRQ (queue full) or a
# bounce that ends at the same level costs nothing but a delay.
#
# A button held when Buttons was made (or whenever the loop asks) is reported by
# held_mask(); one held since start-up never produces a press until released (a stuck START
# must not start anything) and shows in stuck_mask() for the self-test.
from micropython import const, schedule

try:
    from time import ticks_ms as _ticks_ms, ticks_diff as _ticks_diff
except ImportError:  # CPython host tests: the caller passes clock=; rp2's 2**30 wrap
    _ticks_ms = None

    def _ticks_diff(a, b):
        return ((a - b + (1 << 29)) & ((1 << 30) - 1)) - (1 << 29)

# Bits in the order of pins.PIN_BTN_*; the same values as session.BTN_*.
START = const(1)
STOP = const(2)
UP = const(4)
DOWN = const(8)
MODE = const(16)
NAMES = ("START", "STOP", "UP", "DOWN", "MODE")

DEBOUNCE_MS = const(20)
LONG_MS = const(1_500)


class _Irq:
    # One per button, so the handler knows its index without a look-up.
    def __init__(self, owner, i):
        self._o = owner
        self._i = i
        self.handler = self._edge  # bound once: the IRQ allocates nothing

    def _edge(self, pin):
        o = self._o
        o._edge_ms[self._i] = o._clock()
        o._edged |= 1 << self._i
        o.edges += 1
        if not o._sched:
            o._sched = True
            try:
                schedule(o._service_ref, o._arg)
            except RuntimeError:  # queue full: poll() picks the edge up
                o._sched = False


class Buttons:
    def __init__(self, Pin, pin_ids, clock=None, debounce_ms=DEBOUNCE_MS, long_ms=LONG_MS):
        self._clock = clock if clock is not None else _ticks_ms
        if self._clock is None:
            raise ValueError("clock= needed off-board")
        n = len(pin_ids)
        self.n = n
        self.debounce_ms = debounce_ms
        self.long_ms = long_ms
        self._pins = [Pin(p, Pin.IN, Pin.PULL_UP) for p in pin_ids]
        self._edge_ms = [0] * n  # last edge per button (written by the IRQ)
        self._raw = bytearray(n)  # last level seen by the debouncer
        self._stable = bytearray(n)  # debounced level (1 = released)
        self._down_ms = [0] * n  # when the debounced press began
        self._edged = 0  # bit mask: edges since the last service
        self._sched = False
        self._arg = 0
        self._service_ref = self._service  # bound once
        self._presses = 0
        self._longs = 0
        self._long_sent = 0
        self.edges = 0  # edges seen (bounce included), for tests and the log
        now = self._clock()
        self._stuck = 0
        for i in range(n):
            v = self._pins[i].value()
            self._raw[i] = v
            self._stable[i] = v
            self._edge_ms[i] = now
            self._down_ms[i] = now
            if not v:
                self._stuck |= 1 << i  # held since start-up
        self._irqs = []
        for i in range(n):
            q = _Irq(self, i)
            self._irqs.append(q)
            self._pins[i].irq(q.handler, Pin.IRQ_FALLING | Pin.IRQ_RISING)

    def _service(self, _):
        self._sched = False
        self.poll(self._clock())

    def poll(self, now_ms):
        """Debounce: accept levels that have been stable long enough. No allocation."""
        e = self._edged
        self._edged = 0
        # every tick, five pins: the lists in locals (one look-up each, not one per pin)
        pins = self._pins
        raw = self._raw
        stable = self._stable
        edge_ms = self._edge_ms
        for i in range(self.n):
            bit = 1 << i
            v = pins[i].value()
            if v != raw[i]:
                raw[i] = v
                if not e & bit:  # a change no IRQ reported (or it was lost): start timing now
                    edge_ms[i] = now_ms
            if v != stable[i]:
                if _ticks_diff(now_ms, edge_ms[i]) >= self.debounce_ms:
                    stable[i] = v
                    if v:  # released
                        self._stuck &= ~bit
                        self._long_sent &= ~bit
                    else:
                        self._down_ms[i] = now_ms
                        if not self._stuck & bit:
                            self._presses |= bit
            elif not v and not self._stuck & bit and not self._long_sent & bit:
                if _ticks_diff(now_ms, self._down_ms[i]) >= self.long_ms:
                    self._long_sent |= bit
                    self._longs |= bit

    def take(self):
        """Presses since the last take(), as a bit mask; clears them."""
        m = self._presses
        self._presses = 0
        return m

    def take_long(self):
        m = self._longs
        self._longs = 0
        return m

    def held_mask(self):
        """Buttons debounced as down now."""
        m = 0
        for i in range(self.n):
            if not self._stable[i]:
                m |= 1 << i
        return m

    def stuck_mask(self):
        """Buttons down since start-up and never released: a stuck button (self-test)."""
        return self._stuck

    def raw_mask(self):
        """Buttons reading low right now (no debounce)."""
        m = 0
        for i in range(self.n):
            if not self._pins[i].value():
                m |= 1 << i
        return m

    def close(self):
        for p in self._pins:
            p.irq(None)
