"""INA219 current/power monitor at register level (TI SBOS448), as an I2C device model.

    ina = INA219(source)        # source(now_us) -> (shunt_uv, bus_mv): the TRUE analog inputs
    bus.attach(0x40, ina)       # machine.sim_i2c_bus(id): the bus calls i2c_write / i2c_read

Registers (16 bit, big-endian on the wire; a read without a new pointer write reads the
register pointed last, as the chip keeps its pointer):
  0 config   RST(15) BRNG(13) PG(12:11) BADC(10:7) SADC(6:3) MODE(2:0); POR 0x399F.
             RST resets every register (and the pointer) and self-clears.
  1 shunt    two's complement, LSB 10 uV, clipped at the PGA range (+-4000/8000/16000/32000:
             the sign is extended over the bits the range does not use).
  2 bus      BD in bits 15..3 (LSB 4 mV, full scale 4000 at 16 V, 8000 at 32 V), CNVR bit 1,
             OVF bit 0.
  3 power    current * bus / 5000 (datasheet eq. 5), unsigned (|current| is used).
  4 current  shunt * cal / 4096 (eq. 4), truncated toward zero; 0 while cal is 0.
  5 cal      bit 0 reads 0.
Flags: CNVR is set when a conversion cycle (all conversions, averaging and maths) ends, and
cleared by reading the power register or writing the config with a mode other than
power-down/ADC off (as the datasheet says; a TI E2E thread reports the silicon also clears it
on a bus-register read, which is not modelled). OVF is set by a cycle whose shunt input lay
outside the PGA range or whose current/power did not fit the register (which then
saturates); the next cycle recomputes it.

Timing: ADC settings 0..15 as SBOS448 table 5 (9/10/11/12 bit: 84/148/276/532 us; 2..128
samples: 1.06..68.10 ms). Shunt-and-bus modes convert shunt then bus, so a cycle is
t_shunt + t_bus; shunt-only or bus-only modes convert just one (half the cycle at equal
settings). The shunt register updates when its conversion ends, bus, current, power and the
flags when the cycle ends. Any config write restarts conversion at the write; triggered modes
convert one cycle and stop; power-down and ADC off keep the registers as they were. An
N-bit conversion keeps the 10 uV / 4 mV LSB but steps in 2**(12-N) LSBs.

Laziness (the control loop reads at 500 Hz under MicroPython): nothing runs between
transactions. A read works out the latest conversion that has ended by `now`; if none has
ended since the last read it only compares two ints. Sampling comes in two kinds:
- default (exact=False), for stateful sources such as plant.Plant that must never be asked
  about the past at an instant: the source is asked once per read that finds a new shunt
  conversion, with the WINDOW of the latest one, `source((t0, t1))` (t1 <= now, t1 - t0 the
  conversion time, all n samples), and must return the mean inputs over it, as the chip's
  ADC integrates its input (a gated current, pulsed DC, reads its average; an instant would
  alias with the gate). That value stands for every conversion that ended since the last
  read. A source that takes only instants (TypeError/ValueError on the tuple) is asked at the
  read instant from then on, as before. Averaging of n samples is exact for a constant
  input; its noise is one draw scaled by 1/sqrt(n).
- exact=True, for sources that are pure functions of time: every sample is taken at its own
  instant (the end of each of the n sub-conversions) and averaged, each with its own noise.

Imperfections: `offset_uv` (fixed, added to the shunt input), `noise_uv` (uniform +-amplitude
per sample, from a seeded xorshift, so runs repeat) and `bus_noise_mv`. With offset and
noise 0 a reading is exactly the input, rounded to the LSB. Fault: `stuck_shunt_reg` (None
or a raw 16-bit value the shunt register reads and the current is computed from).

API: INA219(source, addr=0x40, clock=vclock.now_us, exact=False, offset_uv=0, noise_uv=10,
bus_noise_mv=0, seed=...); i2c_write(data) / i2c_read(n) (1 byte written sets the pointer,
3 bytes write a register; a read returns the pointed register, then 0xFF), i2c_read_into(buf)
(the same read into a buffer, allocating nothing; it goes through i2c_read when that has been
replaced on the instance); read_reg(reg) /
write_reg(reg, value) (the same without the wire, read side effects included); peek(reg)
(no side effects); reset() (power-on); cycle_us; source, offset_uv, noise_uv, bus_noise_mv,
stuck_shunt_reg (settable). Module: REG_* numbers, CONFIG_POR, adc_time_us(), adc_samples().
A read costs about 1 us on the unix port, 4-5 us when a conversion has ended since the last.

Runs on CPython and the MicroPython unix port.
"""
try:
    from micropython import const
except ImportError:  # plain CPython without the test shims
    def const(x):
        return x

REG_CONFIG = const(0)
REG_SHUNT = const(1)
REG_BUS = const(2)
REG_POWER = const(3)
REG_CURRENT = const(4)
REG_CAL = const(5)

CONFIG_POR = const(0x399F)
_RST = const(0x8000)
_NEVER = const(1 << 60)

# ADC setting (BADC/SADC, 4 bits) -> conversion time in us, and samples averaged
_ADC_US = (84, 148, 276, 532, 84, 148, 276, 532, 532, 1060, 2130, 4260, 8510, 17020, 34050, 68100)
_ADC_N = (1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 4, 8, 16, 32, 64, 128)
# quantisation step in LSBs: 9..12 bit for settings 0X00..0X11, 12 bit when averaging
_ADC_STEP = (8, 4, 2, 1, 8, 4, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1)
# 1024 / sqrt(n), to scale one noise draw to the noise of an n-sample mean
_INV_SQRT = {1: 1024, 2: 724, 4: 512, 8: 362, 16: 256, 32: 181, 64: 128, 128: 91}
_PGA_FS = (4000, 8000, 16000, 32000)  # shunt full scale in 10 uV LSBs, PG = 0..3


def adc_time_us(setting):
    """Conversion time (us) of a BADC/SADC setting 0..15."""
    return _ADC_US[setting & 15]


def adc_samples(setting):
    return _ADC_N[setting & 15]


class INA219:
    def __init__(self, source, addr=0x40, clock=None, exact=False, offset_uv=0, noise_uv=10,
                 bus_noise_mv=0, seed=0x1A219):
        if clock is None:
            import vclock

            clock = vclock.now_us
        self.source = source
        self.addr = addr
        self.clock = clock
        self.exact = exact
        self.offset_uv = offset_uv
        self.noise_uv = noise_uv
        self.bus_noise_mv = bus_noise_mv
        self.stuck_shunt_reg = None
        self._win = True  # the source takes (t0, t1) windows (see _update); cleared if not
        self._seed = seed
        # i2c_read bound once on the instance, so that i2c_read_into can tell when something
        # has been put in its place (tests wrap it to act at a read) and go through that (a
        # subclass's own i2c_read is always gone through).
        self._i2c_read = None
        if type(self).i2c_read is INA219.i2c_read:
            self.i2c_read = self._i2c_read = self.i2c_read
        self.reset()

    # --- state ---------------------------------------------------------------------------
    def reset(self, now=None):
        """Power-on reset (also what the RST bit does)."""
        if now is None:
            now = self.clock()
        self._rng = (self._seed & 0xFFFFFFFF) or 1
        self._ptr = REG_CONFIG
        self._cal = 0
        self._shunt = 0  # signed, 10 uV LSBs
        self._bd = 0  # bus, 4 mV LSBs
        self._current = 0  # signed
        self._power = 0
        self._cnvr = 0
        self._ovf = 0
        self._sovf = 0  # the shunt input of the last shunt conversion was out of range
        self._cfg = CONFIG_POR
        self._seen = now
        self._start(now)

    def _start(self, now):
        # (Re)start conversion per the config, at `now`.
        cfg = self._cfg
        mode = cfg & 7
        self._t0 = now
        self._ks = -1  # index of the last shunt conversion taken into the registers
        self._kc = -1  # index of the last cycle completed
        self._one = mode < 4  # triggered: one cycle only
        if mode == 0 or mode == 4:
            self._ts = self._tb = 0
            self._cycle = self.cycle_us = 0
            self._next = _NEVER
            return
        sa = (cfg >> 3) & 15
        ba = (cfg >> 7) & 15
        # per-config constants, so a conversion does no table look-ups
        self._s_n = _ADC_N[sa]
        self._s_q = _ADC_STEP[sa]
        self._s_fs = _PGA_FS[(cfg >> 11) & 3]
        self._b_n = _ADC_N[ba]
        self._b_q = _ADC_STEP[ba]
        self._b_fs = 8000 if cfg & 0x2000 else 4000
        self._ts = _ADC_US[sa] if mode & 1 else 0
        self._tb = _ADC_US[ba] if mode & 2 else 0
        # (a plain attribute: a property on the class slows every attribute store on MicroPython)
        self._cycle = self.cycle_us = self._ts + self._tb
        self._next = now + (self._ts if self._ts else self._cycle)

    # --- conversions -------------------------------------------------------------------------
    def _update(self, now):
        if now < self._seen:  # virtual time restarted: a power cycle nobody announced
            self.reset(now)
        self._seen = now
        if now < self._next:
            return
        t0 = self._t0
        T = self._cycle
        ts = self._ts
        e = now - t0
        kc = e // T - 1  # the last cycle that has ended
        ks = (e - ts) // T if ts else -1  # the last shunt conversion that has ended
        if self._one:
            if kc > 0:
                kc = 0
            if ks > 0:
                ks = 0
        newc = kc >= 0 and kc != self._kc
        if not self.exact:
            # One query stands for every conversion that ended since the last read: the mean
            # over the latest shunt conversion's window (the chip's ADC integrates its input:
            # a gated current reads its average), or, from a source that takes only instants,
            # the value at `now`.
            sh = None
            if ks > self._ks and self._win:
                e1 = t0 + ks * T + ts
                try:
                    sh, bus = self.source((e1 - ts, e1))
                    sh + 0
                    bus + 0
                except (TypeError, ValueError):
                    self._win = False  # instants only: do not ask again
                    sh = None
            if sh is None:
                sh, bus = self.source(now)
            if ks > self._ks:
                self._shunt = self._shunt_conv(0, sh)
                self._ks = ks
            if newc:
                if self._tb:
                    self._bd = self._bus_conv(0, bus)
                self._end_cycle(kc)
        else:
            if newc:
                if ts and self._ks != kc:  # that cycle's shunt is not in yet
                    self._shunt = self._shunt_conv(t0 + kc * T, None)
                    self._ks = kc
                if self._tb:
                    self._bd = self._bus_conv(t0 + kc * T + ts, None)
                self._end_cycle(kc)
            if ks > self._ks:  # the next cycle's shunt has also ended
                self._shunt = self._shunt_conv(t0 + ks * T, None)
                self._ks = ks
        # the next event: the next shunt end or cycle end, whichever comes first
        if self._one and self._kc == 0:
            self._next = _NEVER
        else:
            nc = t0 + (self._kc + 2) * T
            if ts:
                ns = t0 + (self._ks + 1) * T + ts
                if ns < nc:
                    nc = ns
            self._next = nc

    def _end_cycle(self, kc):
        # datasheet eq. 4 and 5, done at the end of a cycle with the calibration of then
        self._kc = kc
        self._cnvr = 1
        ovf = self._sovf
        sh = self._shunt
        cal = self._cal
        c = sh * cal // 4096 if sh >= 0 else -((-sh * cal) // 4096)
        if c > 32767:
            c, ovf = 32767, 1
        elif c < -32768:
            c, ovf = -32768, 1
        p = (c if c >= 0 else -c) * self._bd // 5000
        if p > 0xFFFF:
            p, ovf = 0xFFFF, 1
        self._current = c
        self._power = p
        self._ovf = ovf

    def _noise(self, amp):
        x = self._rng
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rng = x
        return x % (2 * amp + 1) - amp

    def _shunt_conv(self, start, v):
        # -> the register value of one shunt conversion (with its averaging); sets _sovf
        stuck = self.stuck_shunt_reg
        if stuck is not None:
            self._sovf = 0
            r = stuck & 0xFFFF
            return r - 0x10000 if r & 0x8000 else r
        n = self._s_n
        amp = self.noise_uv
        if v is None:  # exact: n samples, each at the end of its sub-conversion
            t = self._ts
            acc = 0
            for i in range(1, n + 1):
                acc += self.source(start + t * i // n)[0]
                if amp:
                    acc += self._noise(amp)
            v = acc / n if n > 1 else acc
        elif amp:
            v += self._noise(amp) if n == 1 else self._noise(amp) * _INV_SQRT[n] / 1024
        q = self._s_q
        step = q * 10
        r = int((v + self.offset_uv + (step >> 1)) // step) * q
        fs = self._s_fs
        if r > fs:
            r, self._sovf = fs, 1
        elif r < -fs:
            r, self._sovf = -fs, 1
        else:
            self._sovf = 0
        return r

    def _bus_conv(self, start, v):
        n = self._b_n
        amp = self.bus_noise_mv
        if v is None:
            t = self._tb
            acc = 0
            for i in range(1, n + 1):
                acc += self.source(start + t * i // n)[1]
                if amp:
                    acc += self._noise(amp)
            v = acc / n if n > 1 else acc
        elif amp:
            v += self._noise(amp) if n == 1 else self._noise(amp) * _INV_SQRT[n] / 1024
        q = self._b_q
        step = q * 4
        r = int((v + (step >> 1)) // step) * q
        fs = self._b_fs
        if r > fs:
            return fs
        if r < 0:
            return 0
        return r

    # --- registers ---------------------------------------------------------------------------
    def _reg(self, r):
        if r == REG_SHUNT:
            stuck = self.stuck_shunt_reg
            return (stuck if stuck is not None else self._shunt) & 0xFFFF
        if r == REG_BUS:
            return (self._bd << 3) | (self._cnvr << 1) | self._ovf
        if r == REG_CURRENT:
            return self._current & 0xFFFF
        if r == REG_POWER:
            return self._power
        if r == REG_CONFIG:
            return self._cfg
        if r == REG_CAL:
            return self._cal
        return 0  # no such register

    def peek(self, reg):
        """Register value as a read would return it now, without a read's side effects."""
        self._update(self.clock())
        return self._reg(reg)

    def write_reg(self, reg, value, now=None):
        if now is None:
            now = self.clock()
        self._update(now)  # what converted so far used the old settings
        value &= 0xFFFF
        if reg == REG_CONFIG:
            if value & _RST:
                self.reset(now)
                return
            self._cfg = value
            mode = value & 7
            if mode != 0 and mode != 4:
                self._cnvr = 0
            self._start(now)
        elif reg == REG_CAL:
            self._cal = value & 0xFFFE
        # the data registers are read-only: writes are ignored

    def read_reg(self, reg, now=None):
        if now is None:
            now = self.clock()
        self._update(now)
        v = self._reg(reg)
        if reg == REG_POWER:
            self._cnvr = 0
        return v

    # --- I2C device interface (hw/sim/README.md) ---------------------------------------------
    def i2c_write(self, data):
        n = len(data)
        if n == 0:
            return  # address probe
        now = self.clock()
        if now < self._seen:  # powered off and on since the last transaction
            self.reset(now)
        self._ptr = data[0]
        if n >= 3:  # pointer + MSB + LSB; the chip does not auto-increment
            self.write_reg(data[0], (data[1] << 8) | data[2])

    def i2c_read(self, n):
        b = bytearray(n)
        self._answer(b)
        return bytes(b)

    def i2c_read_into(self, buf):
        """i2c_read(len(buf)) written into buf (the bus's register-read path: no allocation)."""
        if self.i2c_read is self._i2c_read:
            self._answer(buf)
            return
        data = self.i2c_read(len(buf))  # wrapped on this instance: the read goes through it
        for i in range(len(buf)):
            buf[i] = data[i] if i < len(data) else 0xFF

    def _answer(self, buf):
        # the control loop's path (a shunt read, 500 Hz): kept to a few look-ups
        now = self.clock()
        if now >= self._next or now < self._seen:
            self._update(now)
        self._seen = now
        r = self._ptr
        if r == REG_SHUNT and self.stuck_shunt_reg is None:
            v = self._shunt & 0xFFFF
        else:
            v = self._reg(r)
            if r == REG_POWER:
                self._cnvr = 0
        if len(buf) == 2:
            buf[0] = v >> 8
            buf[1] = v & 0xFF
        else:
            _put(buf, v)


def _put(buf, v):
    # a 16-bit register into a read of any length: past it the master clocks in idle-high SDA
    for i in range(len(buf)):
        buf[i] = (v >> 8 if i == 0 else v & 0xFF) if i < 2 else 0xFF
