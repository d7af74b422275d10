# The `machine` mock's GPIO pads and PWM slices (machine.Pin, machine.PWM; sim_pin, sim_pwm).
#
# One module, a little over 500 lines: a pad and the PWM slice that may drive it share one
# state (a PWM channel sets its pad's level and mean, a pad's mode decides whether the slice
# reaches it), so splitting them would only trade lines for a cycle of imports. The public
# names are re-exported by machine.py; see its header for the models.
import vclock

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_NPINS = const(30)  # GP0..GP29 on the RP2040
_cpu_hz = 125_000_000  # machine.freq(): the PWM slices count from it
_PIN_NAMES = {"LED": 25, "GP23": 23, "GP24": 24, "GP25": 25, "GP29": 29}


def _call_sim(fn, a, b):
    # Simulator code called from inside a firmware call: free of the firmware's heap lock.
    d = vclock.sim_unlock()
    try:
        fn(a, b)
    finally:
        vclock.sim_relock(d)



# --- Pin ------------------------------------------------------------------------------------
class _PinState:
    """Simulated GPIO pad (`sim_pin(id)`). `.value` is the level on the wire."""

    def __init__(self, pid):
        self.id = pid
        self._listeners = []
        self._pwm_listeners = []
        self.float_level = 0
        self.pin = None  # the Pin singleton
        self.power_on()

    def power_on(self):
        self.mode = None  # not yet configured: pad is an input
        self.pull = 2  # RP2040 pad default: pull-down
        self.out = 0
        self.ext = None
        self.alt = None
        self.handler = None
        self.trigger = 0
        self.hard = False
        self.flags = 0
        self.value = self._level()
        self.mean = self._mean()

    def _level(self):
        m = self.mode
        if m == 1:  # OUT
            return self.out
        if m == 2 and not self.out:  # OPEN_DRAIN driving low
            return 0
        if m == 3 and self.alt == 4:  # ALT PWM
            return _pwm_pin_level(self.id)
        if self.ext is not None:
            return self.ext
        if self.pull == 1:
            return 1
        if self.pull == 2:
            return 0
        return self.float_level

    def _mean(self):
        if self.mode == 3 and self.alt == 4:
            return _pwm_pin_mean(self.id)
        return 65535 if self.value else 0

    def _refresh(self, notify=True):
        old = self.value
        lvl = self._level()
        self.value = lvl
        if lvl != old:
            if notify:
                for fn in self._listeners:
                    _call_sim(fn, self.id, lvl)
            trig = 8 if lvl else 4  # IRQ_RISING / IRQ_FALLING
            if self.handler is not None and self.trigger & trig:
                self.flags = trig
                if self.hard:
                    vclock.post(_pin_irq_hard, self, False)
                else:
                    vclock.post(_pin_irq_soft, self, True)
        m = self._mean()
        if m != self.mean:
            self.mean = m
            for fn in self._pwm_listeners:
                _call_sim(fn, self.id, m)

    # simulator side
    def drive(self, level):
        """Drive the pad from outside (None releases it); edges fire IRQs."""
        self.ext = None if level is None else (1 if level else 0)
        self._refresh(False)

    def release(self):
        self.drive(None)

    def on_change(self, fn):
        """fn(pin_id, level) whenever the firmware side changes the pad level."""
        self._listeners.append(fn)

    def bounce(self, final_level, edges=6, span_us=2000):
        """Chatter: `edges` level changes spread over span_us, settling at final_level.

        One edge is added if the count cannot end at final_level from the current level.
        Spacing is deterministic and uneven (short then longer), like a contact settling.
        """
        lvl = self.value if self.ext is None else self.ext
        final_level = 1 if final_level else 0
        if (lvl ^ (edges & 1)) != final_level:
            edges += 1
        t0 = vclock.now_us()
        tot = edges * (edges + 1) // 2
        acc = 0
        for k in range(edges):
            acc += k + 1
            lvl ^= 1
            vclock.at(t0 + span_us * acc // tot, _drive_event, (self, lvl))
        return edges


def _drive_event(a):
    a[0].drive(a[1])


def _pin_irq_soft(st):
    h = st.handler
    if h is not None:
        h(st.pin)


def _pin_irq_hard(st):
    h = st.handler
    if h is not None:
        if vclock._heap_lock is not None:
            vclock._heap_lock()
            try:
                h(st.pin)
            finally:
                vclock._heap_unlock()
        else:
            h(st.pin)


_pins = {}


def _pin_id(id):
    if isinstance(id, Pin):
        return id._id
    if isinstance(id, str):
        if id in _PIN_NAMES:
            return _PIN_NAMES[id]
        if id.startswith("GPIO") and id[4:].isdigit():
            id = int(id[4:])
        elif id.startswith("GP") and id[2:].isdigit():
            id = int(id[2:])
        else:
            raise ValueError("unknown named pin")
    if not isinstance(id, int) or not 0 <= id < _NPINS:
        raise ValueError("invalid pin")
    return id


def sim_pin(id):
    pid = _pin_id(id)
    st = _pins.get(pid)
    if st is None:
        st = _pins[pid] = _PinState(pid)
    return st


class _PinIRQ:
    def __init__(self, st):
        self._st = st

    def flags(self):
        return self._st.flags

    def trigger(self, trigger=None):
        if trigger is not None:
            self._st.trigger = trigger
        return self._st.trigger


class Pin:
    IN = const(0)
    OUT = const(1)
    OPEN_DRAIN = const(2)
    ALT = const(3)
    PULL_UP = const(1)
    PULL_DOWN = const(2)
    IRQ_FALLING = const(4)
    IRQ_RISING = const(8)
    ALT_SPI = const(1)
    ALT_UART = const(2)
    ALT_I2C = const(3)
    ALT_PWM = const(4)
    ALT_SIO = const(5)
    ALT_PIO0 = const(6)
    ALT_PIO1 = const(7)
    ALT_GPCK = const(8)
    ALT_USB = const(9)

    def __new__(cls, id, *args, **kw):
        # rp2 returns one static object per GPIO
        st = sim_pin(id)
        if st.pin is None:
            p = object.__new__(cls)
            p._id = st.id
            p._st = st
            p._irq = None
            st.pin = p
        return st.pin

    def __init__(self, id, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        if mode != -1 or pull != -1 or value is not None or alt is not None:
            self.init(mode, pull, value=value, alt=alt)

    def init(self, mode=-1, pull=-1, *, value=None, drive=None, alt=None):
        st = self._st
        if value is not None:
            st.out = 1 if value else 0
        if mode is not None and mode != -1:
            if mode not in (0, 1, 2, 3):
                raise ValueError("invalid pin mode")
            if mode == 2 and value is None and st.mode != 2:
                st.out = 1  # rp2: open drain starts released
            st.mode = mode
            st.alt = (alt if alt is not None else 31) if mode == 3 else None
        # rp2 sets pulls unconditionally: None (and the -1 default) means no pull
        st.pull = pull if pull in (1, 2, 3) else None
        st._refresh()

    def value(self, x=None):
        st = self._st
        if x is None:
            return st.value
        st.out = 1 if x else 0
        st._refresh()

    def __call__(self, x=None):
        return self.value(x)

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def high(self):
        self.value(1)

    def low(self):
        self.value(0)

    def toggle(self):
        st = self._st
        st.out ^= 1
        st._refresh()

    def mode(self, mode=None):
        if mode is None:
            m = self._st.mode
            return 0 if m is None else m
        self.init(mode, self._st.pull)

    def pull(self, pull=None):
        if pull is None:
            return self._st.pull
        self._st.pull = pull
        self._st._refresh()

    def irq(self, handler=None, trigger=12, *, priority=1, wake=None, hard=False):
        st = self._st
        st.handler = handler
        st.trigger = trigger if handler is not None else 0
        st.hard = bool(hard)
        if self._irq is None:
            self._irq = _PinIRQ(st)
        return self._irq

    def __repr__(self):
        return "Pin(GPIO%d)" % self._id


# --- PWM ------------------------------------------------------------------------------------
class _Slice:
    def __init__(self, n):
        self.n = n
        self.power_on()

    def power_on(self):
        self.div16 = 16
        self.top = 0xFFFF
        self.enabled = False
        self.freq_set = False
        self.cc = [0, 0]
        self.invert = [0, 0]
        self.duty_type = [0, 0]  # 0 unset, 1 u16, 2 ns
        self.duty = [0, 0]
        self.stopped_level = [0, 0]

    def hz(self, offset, div16):
        return (16 * _cpu_hz + offset) // div16

    def freq(self):
        d = self.div16 * (self.top + 1)
        return self.hz(d // 2, d)

    def running_level(self, ch):
        # level of the output if the counter stopped now (the documented model)
        hi = 1 if self.cc[ch] * 2 >= self.top + 1 else 0
        return hi ^ self.invert[ch]

    def mean(self, ch):
        if not self.enabled:
            return 65535 if self.stopped_level[ch] else 0
        cc = self.cc[ch]
        m = 65535 if cc > self.top else cc * 65535 // (self.top + 1)
        return 65535 - m if self.invert[ch] else m

    def refresh_pins(self):
        # Simulator bookkeeping: on rp2 a duty change allocates nothing, so neither may this
        # under the firmware's heap_lock.
        d = vclock.sim_unlock()
        try:
            for st in _pins.values():
                if st.mode == 3 and st.alt == 4 and (st.id >> 1) & 7 == self.n:
                    st._refresh()
        finally:
            vclock.sim_relock(d)

    def refresh_channel(self, ch):
        # refresh_pins() for a change of one channel's compare level: only the pads that
        # channel drives (GPn and GPn+16 of this slice) can see it.
        d = vclock.sim_unlock()
        try:
            pid = 2 * self.n + ch
            for st in (_pins.get(pid), _pins.get(pid + 16)):
                if st is not None and st.mode == 3 and st.alt == 4:
                    st._refresh()
        finally:
            vclock.sim_relock(d)


_slices = [_Slice(n) for n in range(8)]


def _pwm_pin_level(pid):
    s = _slices[(pid >> 1) & 7]
    ch = pid & 1
    if s.enabled:
        return 1 if s.mean(ch) >= 32768 else 0
    return s.stopped_level[ch]


def _pwm_pin_mean(pid):
    return _slices[(pid >> 1) & 7].mean(pid & 1)


class _PWMView:
    """`sim_pwm(pin_id)`: what the PWM channel behind a pin is doing."""

    def __init__(self, pid):
        self.pin_id = pid
        self._s = _slices[(pid >> 1) & 7]
        self._ch = pid & 1

    @property
    def freq(self):
        return self._s.freq()

    @property
    def duty_u16(self):
        s = self._s
        return (s.cc[self._ch] * 65535 + (s.top + 1) // 2) // (s.top + 1)

    @property
    def enabled(self):
        st = _pins.get(self.pin_id)
        return self._s.enabled and st is not None and st.mode == 3 and st.alt == 4

    @property
    def invert(self):
        return self._s.invert[self._ch]

    @property
    def mean_u16(self):
        """Average level on the pin, 0..65535, whatever drives it (PWM or GPIO)."""
        return sim_pin(self.pin_id).mean

    def on_change(self, fn):
        """fn(pin_id, mean_u16) whenever the pin's average level changes."""
        sim_pin(self.pin_id)._pwm_listeners.append(fn)


def sim_pwm(pin_id):
    return _PWMView(_pin_id(pin_id))


class PWM:
    def __init__(self, dest, *, freq=-1, duty_u16=-1, duty_ns=-1, invert=-1):
        pid = _pin_id(dest)
        self._pid = pid
        self._s = _slices[(pid >> 1) & 7]
        self._ch = pid & 1
        self._s.invert[self._ch] = 0
        self._s.duty_type[self._ch] = 0
        st = sim_pin(pid)
        st.mode = 3
        st.alt = 4
        self.init(freq=freq, duty_u16=duty_u16, duty_ns=duty_ns, invert=invert)

    def init(self, *, freq=-1, duty_u16=-1, duty_ns=-1, invert=-1):
        global _defer
        _defer = True
        try:
            if freq != -1:
                self._freq_set(freq)
            if duty_u16 != -1:
                self._duty_u16_set(duty_u16)
            if duty_ns != -1:
                self._duty_ns_set(duty_ns)
            if invert != -1:
                self._s.invert[self._ch] = 1 if invert else 0
        finally:
            _defer = False
        self._start()

    def _start(self):
        s = self._s
        if not _defer and s.freq_set and s.duty_type[self._ch]:
            s.enabled = True
        s.refresh_pins()
        sim_pin(self._pid)._refresh()

    def _freq_set(self, freq):
        # ports/rp2/machine_pwm.c: largest TOP for resolution, DIV in 1/16 steps
        s = self._s
        if freq <= 0:
            raise ValueError("freq too small")
        if (_cpu_hz + freq // 2) // freq < 65534:
            div16 = 16
            top = (_cpu_hz + freq // 2) // freq - 1
        else:
            div16 = s.hz(65534 * freq - 1, 65534 * freq)
            top = s.hz(div16 * freq // 2, div16 * freq) - 1
        if div16 < 16 or top < 0:
            raise ValueError("freq too large")
        if div16 >= 256 * 16:
            raise ValueError("freq too small")
        s.div16 = div16
        s.top = top
        s.freq_set = True
        for ch in (0, 1):
            if s.duty_type[ch] == 1:
                s.cc[ch] = (s.duty[ch] * (top + 1) + 65535 // 2) // 65535
            elif s.duty_type[ch] == 2:
                s.cc[ch] = self._ns_to_cc(s.duty[ch])

    def _ns_to_cc(self, ns):
        s = self._s
        hz = s.hz(s.div16 // 2, s.div16)
        return (ns * hz + 500_000_000) // 1_000_000_000

    def _duty_u16_set(self, d):
        if not 0 <= d <= 65535:
            raise ValueError("duty_u16 must be from 0 to 65535")
        s = self._s
        ch = self._ch
        cc = (d * (s.top + 1) + 65535 // 2) // 65535
        if s.enabled and not _defer and s.duty_type[ch] == 1:
            # A running channel's new duty (the control loop's setpoint, every tick): what
            # _start() would do, for the pads of this channel only, and nothing when the
            # compare level stays (the pads' levels and means cannot change then).
            s.duty[ch] = d
            if cc != s.cc[ch]:
                s.cc[ch] = cc
                s.refresh_channel(ch)
            return
        s.cc[ch] = cc
        s.duty[ch] = d
        s.duty_type[ch] = 1
        self._start()

    def _duty_ns_set(self, ns):
        cc = self._ns_to_cc(ns)
        if cc > 65535:
            raise ValueError("duty larger than period")
        s = self._s
        s.cc[self._ch] = cc
        s.duty[self._ch] = ns
        s.duty_type[self._ch] = 2
        self._start()

    def freq(self, value=None):
        if value is None:
            return self._s.freq()
        self._freq_set(value)
        self._start()

    def duty_u16(self, value=None):
        if value is None:
            s = self._s
            return (s.cc[self._ch] * 65535 + (s.top + 1) // 2) // (s.top + 1)
        self._duty_u16_set(value)

    def duty_ns(self, value=None):
        if value is None:
            s = self._s
            hz = s.hz(s.div16 // 2, s.div16)
            return (s.cc[self._ch] * 1_000_000_000 + hz // 2) // hz
        self._duty_ns_set(value)

    def deinit(self):
        # rp2 disables the whole slice; both outputs freeze where the counter stopped
        _stop_slice(self._s)

    def __repr__(self):
        return "<PWM slice=%d channel=%d invert=%d>" % (self._s.n, self._ch, self._s.invert[self._ch])


_defer = False


def _stop_slice(s):
    if s.enabled:
        s.stopped_level[0] = s.running_level(0)
        s.stopped_level[1] = s.running_level(1)
    s.enabled = False
    s.refresh_pins()
