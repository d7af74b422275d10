# The `machine` mock: rp2's machine API over simulated peripherals, plus `sim_*` hooks.
#
# On the MicroPython unix port hw/sim on MICROPYPATH makes this replace the built-in
# `machine`; on CPython pytest imports it from hw/sim. Behaviour follows the rp2 port
# (ports/rp2/machine_*.c) where the firmware could notice a difference: pin singletons
# per GPIO, pulls reset by every init, PWM quantisation and slice sharing, I2C errnos,
# WDT limits, reset causes. Time comes from vclock: nothing here reads a real clock.
#
# Models worth knowing:
# - An input reads the externally driven level (`sim_pin(id).drive()`), else its pull,
#   else `float_level` (0 unless the board model says otherwise). Power-on pads have the
#   RP2040's default pull-down; Pin(id, mode) without pull= clears pulls, as rp2 does.
# - PWM deinit() stops the slice; the pin keeps the level the counter stopped at, modelled
#   as 1 if the duty was >= 50% (after invert) else 0. Nothing drives it low for you.
# - Pin IRQ handlers and Timer callbacks are soft IRQs delivered through vclock.post():
#   at the virtual time of the edge, deferred during disable_irq() and vclock.charge().
#   hard=True handlers are delivered the same way but run with the heap locked.
import vclock

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

PWRON_RESET = const(1)
WDT_RESET = const(3)

_EIO = const(5)
_ENODEV = const(19)
_ETIMEDOUT = const(110)
_NPINS = const(30)  # GP0..GP29 on the RP2040
_PIN_NAMES = {"LED": 25, "GP23": 23, "GP24": 24, "GP25": 25, "GP29": 29}
_WDT_MAX_MS = const(8388)  # RP2040: 0x7fffff us
_RTC_POWERON = (2021, 1, 1, 4, 0, 0, 0, 0)  # rp2 main.c sets this at boot (a Friday)

_cpu_hz = 125_000_000
_reset_cause = PWRON_RESET
_uid = b"\xe6\x60\x58\x38\x83\x3a\x2c\x21"


def _default_reset_handler(cause):
    raise SystemExit(cause)


_reset_handler = _default_reset_handler


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
        s.cc[self._ch] = (d * (s.top + 1) + 65535 // 2) // 65535
        s.duty[self._ch] = d
        s.duty_type[self._ch] = 1
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


# --- ADC ------------------------------------------------------------------------------------
_adc_src = {}


def sim_adc(pin_id, fn):
    """fn() -> u16 supplies readings for ADC pin 26..29, or 4 for the temperature sensor."""
    _adc_src[pin_id] = fn


class ADC:
    CORE_TEMP = const(4)

    def __init__(self, id):
        if isinstance(id, Pin):
            id = id._id
        if not isinstance(id, int):
            raise ValueError("invalid ADC source")
        if 0 <= id <= 3:
            id += 26
        elif id != 4 and not 26 <= id <= 29:
            raise ValueError("invalid pin")
        self._key = id
        if id != 4:
            st = sim_pin(id)
            st.mode = 3
            st.alt = 31  # analog: digital input disabled
            st.pull = None

    def read_u16(self):
        fn = _adc_src.get(self._key)
        if fn is None:
            # Temperature sensor at 27 C reads 0.706 V
            v = 14020 if self._key == 4 else 0
        else:
            d = vclock.sim_unlock()
            try:
                v = int(fn())
            finally:
                vclock.sim_relock(d)
        if v < 0:
            v = 0
        elif v > 65535:
            v = 65535
        raw = v >> 4  # 12-bit converter, scaled to 16 bits as rp2 does
        return (raw << 4) | (raw >> 8)


# --- I2C ------------------------------------------------------------------------------------
class _Bus:
    """Simulated I2C wires (`sim_i2c_bus(id)`)."""

    def __init__(self, id):
        self.id = id
        self.devices = {}
        self.fault = None  # None, "nack" or "stuck"
        self.fault_addr = None  # None: the fault hits every address; else only this one
        self.pins = None  # (scl, sda) the devices hang on; None: any pins of this bus
        self.transactions = 0

    def attach(self, addr, device):
        self.devices[addr] = device

    def detach(self, addr):
        self.devices.pop(addr, None)


_buses = {}


def sim_i2c_bus(id):
    b = _buses.get(id)
    if b is None:
        b = _buses[id] = _Bus(id)
    return b


def _i2c_bus_of(scl, sda):
    # The wires decide: GP0/1, 4/5, 8/9... are I2C0 pads, GP2/3, 6/7... I2C1.
    if sda % 4 == 0 and scl == sda + 1:
        return 0
    if sda % 4 == 2 and scl == sda + 1:
        return 1
    return None


class I2C:
    _ERR_NACK = _EIO  # rp2 hardware I2C maps every non-timeout failure to EIO
    _WHOLE_TIMEOUT = True

    def __init__(self, id=0, *, scl=None, sda=None, freq=400_000, timeout=50_000):
        if id not in (0, 1):
            raise ValueError("I2C(%s) doesn't exist" % (id,))
        dscl, dsda = (9, 8) if id == 0 else (7, 6)  # Pico defaults
        if scl is not None:
            scl = _pin_id(scl)
            if (scl & 3) != (1 if id == 0 else 3):
                raise ValueError("bad SCL pin")
        if sda is not None:
            sda = _pin_id(sda)
            if (sda & 3) != (0 if id == 0 else 2):
                raise ValueError("bad SDA pin")
        self._setup(id, dscl if scl is None else scl, dsda if sda is None else sda, freq, timeout)

    def _setup(self, bus_id, scl, sda, freq, timeout):
        if freq <= 0:
            raise ValueError("freq must be > 0")
        self._bus = sim_i2c_bus(bus_id)
        self._scl = scl
        self._sda = sda
        self._freq = freq
        self._timeout = timeout
        self._ptr = bytearray(2)
        self._ptr1 = memoryview(self._ptr)[:1]
        for p in (scl, sda):
            st = sim_pin(p)
            st.mode = 3
            st.alt = 3
            st.pull = 1

    def __repr__(self):
        return "I2C(%d, freq=%d, scl=%d, sda=%d, timeout=%d)" % (
            self._bus.id, self._freq, self._scl, self._sda, self._timeout)

    # one addressed transaction of `nbytes` data bytes: returns the device or raises
    def _begin(self, addr, nbytes):
        bus = self._bus
        bus.transactions += 1
        f = bus.fault
        if f is not None and (bus.fault_addr is None or bus.fault_addr == addr):
            if f == "stuck":
                vclock.charge(self._timeout)
                raise OSError(_ETIMEDOUT)
            vclock.charge(9_000_000 // self._freq)
            raise OSError(self._ERR_NACK)
        dev = bus.devices.get(addr)
        if dev is None or (bus.pins is not None and bus.pins != (self._scl, self._sda)):
            vclock.charge(9_000_000 // self._freq)
            raise OSError(self._ERR_NACK)
        return dev

    def _wire(self, nbytes):
        vclock.charge((nbytes + 1) * 9_000_000 // self._freq)

    def _fits(self, nbytes):
        # rp2's hardware I2C gives a whole transfer `timeout` us (pico-sdk's
        # i2c_write/read_timeout_us: one deadline, not per byte): a longer one is cut there
        # with ETIMEDOUT. -> how many data bytes go out before it (all of them if it fits).
        if not self._WHOLE_TIMEOUT or (nbytes + 1) * 9_000_000 // self._freq <= self._timeout:
            return nbytes
        k = self._timeout * self._freq // 9_000_000 - 1
        return 0 if k < 0 else k

    def _write(self, addr, data, more=None):
        n = len(data) + (0 if more is None else len(more))
        dev = self._begin(addr, n)
        k = self._fits(n)
        d = vclock.sim_unlock()
        try:
            if more is not None:
                data = bytes(data) + bytes(more)  # unlocked: rp2 does this without allocating
            dev.i2c_write(data if k == n else bytes(data)[:k])
        finally:
            vclock.sim_relock(d)
        if k < n:
            vclock.charge(self._timeout)
            raise OSError(_ETIMEDOUT)
        self._wire(n)

    def _read_into(self, addr, buf):
        n = len(buf)
        dev = self._begin(addr, n)
        if self._fits(n) < n:
            vclock.charge(self._timeout)
            raise OSError(_ETIMEDOUT)
        d = vclock.sim_unlock()
        try:
            data = dev.i2c_read(n)
            buf[:] = data[:n] if len(data) >= n else data + b"\xff" * (n - len(data))
        finally:
            vclock.sim_relock(d)
        self._wire(n)

    def _memaddr(self, memaddr, addrsize):
        if addrsize == 8:
            self._ptr[0] = memaddr & 0xFF
            return self._ptr1
        if addrsize == 16:
            self._ptr[0] = (memaddr >> 8) & 0xFF
            self._ptr[1] = memaddr & 0xFF
            return self._ptr
        raise ValueError("addrsize must be 8 or 16")

    def scan(self):
        found = []
        for addr in range(0x08, 0x78):
            try:
                self._begin(addr, 0)
            except OSError:
                continue
            self._wire(0)
            found.append(addr)
        return found

    def writeto(self, addr, buf, stop=True):
        self._write(addr, buf)
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        data = b"".join(bytes(v) for v in vector)
        self._write(addr, data)
        return len(data)

    def readfrom_into(self, addr, buf, stop=True):
        self._read_into(addr, buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self._read_into(addr, buf)
        return bytes(buf)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        # pointer write, repeated start, read: two transactions on the wire
        bus = self._bus
        dev = bus.devices.get(addr)
        n = len(buf)
        if (bus.fault is not None or dev is None or bus.pins is not None or addrsize != 8
                or (n + 1) * 9_000_000 // self._freq > self._timeout):
            self._write(addr, self._memaddr(memaddr, addrsize))
            self._read_into(addr, buf)
            return
        # The control loop's path (a register read every tick): what _write and _read_into
        # do for a healthy device, without their layers.
        bus.transactions += 2
        p = self._ptr1
        p[0] = memaddr & 0xFF
        d = vclock.sim_unlock()
        try:
            dev.i2c_write(p)
        finally:
            vclock.sim_relock(d)
        vclock.charge(18_000_000 // self._freq)
        d = vclock.sim_unlock()
        try:
            data = dev.i2c_read(n)
            buf[:] = data[:n] if len(data) >= n else data + b"\xff" * (n - len(data))
        finally:
            vclock.sim_relock(d)
        vclock.charge((n + 1) * 9_000_000 // self._freq)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize=addrsize)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._write(addr, self._memaddr(memaddr, addrsize), buf)


class SoftI2C(I2C):
    _ERR_NACK = _ENODEV  # extmod soft I2C reports an address NACK as ENODEV
    _WHOLE_TIMEOUT = False  # its timeout bounds each clock stretch, not the transfer

    def __init__(self, scl, sda, *, freq=400_000, timeout=50_000):
        scl = _pin_id(scl)
        sda = _pin_id(sda)
        bus_id = None
        for b in _buses.values():
            if b.pins == (scl, sda):
                bus_id = b.id
        if bus_id is None:
            bus_id = _i2c_bus_of(scl, sda)
        if bus_id is None:
            bus_id = ("soft", scl, sda)  # wires no model is attached to
        self._setup(bus_id, scl, sda, freq, timeout)


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


# --- WDT ------------------------------------------------------------------------------------
def _wdt_bite():
    _reset_handler(WDT_RESET)


class WDT:
    def __init__(self, *, id=0, timeout=5000):
        if id != 0:
            raise ValueError("WDT(%s) doesn't exist" % (id,))
        if timeout < 1:
            raise ValueError("timeout too short")
        if timeout > _WDT_MAX_MS:
            raise ValueError("timeout exceeds %d" % _WDT_MAX_MS)
        # rp2 calls watchdog_enable() again: a second WDT re-arms with the new timeout
        vclock.wdt_start(timeout * 1000, _wdt_bite)

    def feed(self):
        vclock.wdt_feed()


# --- RTC ------------------------------------------------------------------------------------
def _days_from_civil(y, m, d):
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _mktime(y, mo, d, h, mi, s):
    """Seconds since 1970-01-01 (rp2's epoch); fields may overflow like C mktime."""
    y += (mo - 1) // 12
    mo = (mo - 1) % 12 + 1
    return _days_from_civil(y, mo, 1) * 86400 + (d - 1) * 86400 + h * 3600 + mi * 60 + s


def _gmtime(secs):
    """(year, month, mday, hour, minute, second, weekday Mon=0, yearday 1..366)."""
    days, rem = divmod(secs, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    yd = days - _days_from_civil(y, 1, 1) + 1
    wd = (days + 3) % 7  # 1970-01-01 was a Thursday
    return (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, wd, yd)


_rtc_secs = 0  # RTC seconds (epoch 1970) at virtual time _rtc_at
_rtc_at = 0


def _rtc_power_on():
    global _rtc_secs, _rtc_at
    t = _RTC_POWERON
    _rtc_secs = _mktime(t[0], t[1], t[2], t[4], t[5], t[6])
    _rtc_at = vclock.now_us()


def sim_rtc_us():
    """RTC time in microseconds since 1970 (for time.time()/time_ns())."""
    return _rtc_secs * 1_000_000 + (vclock.now_us() - _rtc_at)


class RTC:
    def __init__(self, id=0, *, datetime=None):
        if datetime is not None:
            self.datetime(datetime)

    def datetime(self, datetimetuple=None):
        global _rtc_secs, _rtc_at
        if datetimetuple is None:
            t = _gmtime(sim_rtc_us() // 1_000_000)
            return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)
        t = datetimetuple
        if len(t) < 7:
            raise ValueError("requires an 8-tuple")
        if not (1 <= t[1] <= 12 and 1 <= t[2] <= 31 and 0 <= t[4] <= 23 and 0 <= t[5] <= 59 and 0 <= t[6] <= 59):
            raise ValueError("invalid datetime")
        _rtc_secs = _mktime(t[0], t[1], t[2], t[4], t[5], t[6])
        _rtc_at = vclock.now_us()


# --- module functions -----------------------------------------------------------------------
def unique_id():
    return _uid


def reset_cause():
    return _reset_cause


def reset():
    # rp2 resets through the watchdog: the next boot reports WDT_RESET
    _reset_handler(WDT_RESET)


def soft_reset():
    raise SystemExit


# rp2's machine.mem_backup() (MicroPython af47daf3): watchdog scratch[0..3] as 4 unsigned
# 32-bit words (region 0) and scratch[5..7] (region 1). They survive a watchdog reset,
# machine.reset() and a soft reset; a power-on reset clears them (sim_power_on; the virtual
# unit carries them across its restarts with sim_mem_backup_words / sim_set_mem_backup).
from array import array as _array  # noqa: E402

_backup = (_array("I", [0, 0, 0, 0]), _array("I", [0, 0, 0]))
_backup_mv = (memoryview(_backup[0]), memoryview(_backup[1]))


def mem_backup(region=0):
    if region == -1:
        return _backup_mv
    if not 0 <= region < len(_backup_mv):
        raise ValueError("invalid region")
    return _backup_mv[region]


def sim_mem_backup_words():
    """Region 0 and 1 words, for the virtual unit to carry across a watchdog restart."""
    return list(_backup[0]) + list(_backup[1])


def sim_set_mem_backup(words):
    for i in range(len(_backup[0]) + len(_backup[1])):
        v = words[i] if i < len(words) else 0
        if i < 4:
            _backup[0][i] = v
        else:
            _backup[1][i - 4] = v


def bootloader(value=None):
    _reset_handler(0)  # 0: rebooted into BOOTSEL; the unit stops


def freq(hz=None):
    global _cpu_hz
    if hz is None:
        return _cpu_hz
    if not 10_000_000 <= hz <= 250_000_000:
        raise ValueError("cannot change frequency")
    _cpu_hz = hz


def idle():
    # Wait for an interrupt: jump to the next scheduled event (at most 1 ms)
    now = vclock.now_us()
    dt = vclock.next_due() - now
    vclock.advance(dt if 0 < dt < 1000 else 1000)


def lightsleep(time_ms=None):
    if time_ms is None:
        idle()
    else:
        vclock.advance(time_ms * 1000)


def disable_irq():
    return vclock.irq_disable()


def enable_irq(state):
    vclock.irq_restore(state)


def time_pulse_us(pin, pulse_level, timeout_us=1_000_000):
    st = sim_pin(pin)

    def wait(level, left):
        while st.value != level:
            if left <= 0:
                return -1
            dt = vclock.next_due() - vclock.now_us()
            dt = dt if 0 < dt < 100 else 100
            if dt > left:
                dt = left
            vclock.advance(dt)
            left -= dt
        return left

    t0 = vclock.now_us()
    if wait(pulse_level, timeout_us) < 0:
        return -2
    t1 = vclock.now_us()
    if wait(1 - pulse_level, timeout_us - (t1 - t0)) < 0:
        return -1
    return vclock.now_us() - t1


# --- sim_* hooks ----------------------------------------------------------------------------
def sim_set_reset_cause(c):
    global _reset_cause
    _reset_cause = c


def sim_set_unique_id(b):
    global _uid
    _uid = bytes(b)


def sim_set_reset_handler(fn):
    """fn(cause) runs on machine.reset() (WDT_RESET), a watchdog bite (WDT_RESET) and
    machine.bootloader() (0). None restores the default, which raises SystemExit."""
    global _reset_handler
    _reset_handler = fn if fn is not None else _default_reset_handler


def sim_soft_reset():
    """What rp2's soft reboot does: PWM slices stop (pins keep their levels), pin IRQs are
    removed, Timers stop. GPIO levels, I2C devices and the watchdog carry on."""
    for s in _slices:
        _stop_slice(s)
        s.freq_set = False
    for st in _pins.values():
        st.handler = None
        st.trigger = 0
    for t in list(_timers):
        t.deinit()
    vclock.clear_pending()


def sim_power_on(cause=PWRON_RESET):
    """Every peripheral to its reset state and virtual time to 0, as a new process would
    start. Device models stay attached to their buses (they are the board, not the MCU);
    bus faults and listeners are kept too."""
    global _cpu_hz, _defer
    vclock.reset()
    for t in list(_timers):
        t.deinit()
    del _timers[:]
    for s in _slices:
        s.power_on()
    _defer = False
    for st in _pins.values():
        st.power_on()
    _cpu_hz = 125_000_000
    sim_set_reset_cause(cause)
    _rtc_power_on()
    if cause != WDT_RESET:
        sim_set_mem_backup(())  # the scratch registers survive only a watchdog reset


_rtc_power_on()
