# INA219 current monitor (TI SBOS448) for the control loop: shunt-only, integer, no allocation.
#
#     ina = INA219(i2c, pins.INA219_ADDR, pins.SHUNT_MILLIOHM, max_ua=30_000)
#     ina.calibrate()            # reset-free setup: calibration + config, read back; bool
#     ua = ina.read_shunt_ua()   # every tick; never raises
#     if ina.error: ...          # errno of the failed transaction (0: the reading is good)
#     ina.fresh, ina.stale, ina.age_us, ina.ovf
#
# Errors are reported, never swallowed and never raised on the hot path: read_shunt_ua()
# returns INVALID and sets `error` (an errno: EIO on a NACK, ETIMEDOUT on a stuck bus;
# `errors` counts them). `fresh` is False and `stale` counts the consecutive reads that saw
# no new conversion (CNVR clear); `ovf` is the chip's OVF flag OR a shunt reading at the
# PGA's full scale (a clipped reading: OVF covers only the current/power maths, see
# hw/calibration.md section 1).
#
# Staleness is timed on the reads, not on the loop's ticks: `age_us` is how long the chip has
# shown no new conversion, from the power read that last cleared CNVR to the start of this
# bus read (0 when fresh or when the read failed: a failed read shows nothing). A converting
# chip sets CNVR again within one conversion (1.06 ms) of any clear, so only a chip that
# stopped reaches the supervisor's STALE_MS. The tick's own time stamp would not do: a loop
# stall (a flash erase, 45-400 ms) between the tick's start and the clearing read, followed
# by the next tick at once, looks like a whole stall without a conversion when the chip
# cleared CNVR only a few hundred us before. The clock is time.ticks_us (CPython host tests
# pass clock=, e.g. vclock.ticks_us; without one age_us stays -1: untimed).
#
# Conversion and I2C budget (control loop period limits.LOOP_PERIOD_US, 400 kHz bus; on the
# rp2 port a register read, pointer write + 2-byte read, is ~127 us on the wire and ~210 us
# with the driver):
#   - shunt-only continuous mode, 12 bit with 2-sample averaging: one conversion per
#     1.06 ms, so every tick sees a value at most ~1 ms old (hw/calibration.md 5);
#   - ONE read per tick: the shunt register. The status (bus register: CNVR, OVF) and the
#     power read that clears CNVR are read only every `flags_every` calls (board.py sets
#     every limits.SENSOR_FLAGS_MS): 3 reads on those ticks, 1 on the others. In between,
#     `fresh` and `ovf` are those of the last status read and `age_us` keeps growing from the
#     last clear while that read said "no new conversion", so a sensor that stopped is
#     still seen within STALE_MS of its last conversion plus one status interval;
#   - the shunt register, not the current register: a brown-out of the INA219 zeroes the
#     calibration, and the current register then reads 0 A while current flows; the shunt
#     voltage needs no calibration (the self-test and `calibrated()` check the rest).
# The bus voltage is not converted in this mode: the shunt sits on the low side, so the bus
# input is at ground and reads ~0 V anyway (the electrode voltage has its own ADC). The bus
# register keeps its last conversion; read_bus_mv() reads it at whatever rate the caller
# likes (it costs one read and converts nothing).
from micropython import const

try:
    from time import ticks_us as _ticks_us, ticks_diff as _ticks_diff, ticks_add as _ticks_add
except ImportError:  # CPython host tests: clock= or untimed; rp2's 2**30 wrap
    _ticks_us = None

    def _ticks_diff(a, b):
        return ((a - b + (1 << 29)) & ((1 << 30) - 1)) - (1 << 29)

    def _ticks_add(a, d):
        return (a + d) & ((1 << 30) - 1)

_REG_CONFIG = const(0x00)
_REG_SHUNT = const(0x01)
_REG_BUS = const(0x02)
_REG_POWER = const(0x03)
_REG_CURRENT = const(0x04)
_REG_CAL = const(0x05)

_RST = const(0x8000)
_BRNG_16V = const(0x0000)
_ADC_12BIT_2S = const(0b1001)  # 12 bit, 2 samples averaged: 1.06 ms
_ADC_12BIT = const(0b0011)  # 12 bit, 532 us
_MODE_SHUNT_CONT = const(0b101)
_CNVR = const(0x02)  # bus register bit 1
_OVF = const(0x01)  # bus register bit 0
_STALE_MAX = const(1_000_000)  # the count stops here (stays a small int)
# The age stops at 1 s (limits.DT_MAX_MS, far past STALE_MS): the clear's time stamp is pulled
# along so ticks_diff stays inside its 2**29 us range however long the reads pause.
_AGE_MAX_US = const(1_000_000)

INVALID = const(-1_000_000)  # read_shunt_ua() on an I2C error: -1 A, never a real reading

# PGA: shunt full scale in 10 uV register counts for PG = 0..3 (/1 /2 /4 /8: 40..320 mV)
_PGA_FS = (4000, 8000, 16000, 32000)
# "Convenient" current LSBs in nA (1-2-5 steps), the first that is >= the minimum is taken
_LSB_STEPS_NA = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000,
                 50_000, 100_000, 200_000, 500_000, 1_000_000)


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


def calibration(shunt_milliohm, max_ua):
    """(pga, full-scale counts, current LSB nA, cal, power LSB nW) for a shunt and max current.

    Integers only (run once at init; intermediate values may exceed 2**30 there).
    """
    if shunt_milliohm <= 0 or max_ua <= 0:
        raise ValueError("shunt and max current must be > 0")
    # 1. PGA: the largest shunt voltage expected, in 10 uV register counts,
    #    V = I x R = max_ua [uA] x shunt [mOhm] = max_ua x shunt / 1000 uV -> / 10 for counts.
    #    Take the most sensitive range that still holds it (10 Ohm x 32 mA = 320 mV -> /8).
    v_counts = (max_ua * shunt_milliohm + 9_999) // 10_000
    pga = 0
    while pga < 3 and _PGA_FS[pga] < v_counts:
        pga += 1
    if _PGA_FS[pga] < v_counts:
        raise ValueError("max current x shunt above 320 mV")
    # 2. Minimum current LSB = max expected current / 2**15 (the current register is signed
    #    16 bit): in nA, max_ua x 1000 / 32768, rounded up (32 mA -> 977 nA).
    min_lsb_na = (max_ua * 1000 + 32_767) // 32_768
    # 3. Round up to a convenient value (1-2-5 steps): 977 nA -> 1000 nA = 1 uA.
    lsb_na = 0
    for s in _LSB_STEPS_NA:
        if s >= min_lsb_na:
            lsb_na = s
            break
    if not lsb_na:
        raise ValueError("max current too large")
    # 4. Cal = trunc(0.04096 / (Current_LSB [A] x R_shunt [Ohm]))
    #        = trunc(0.04096 / (lsb_na x 1e-9 x shunt_milliohm x 1e-3))
    #        = trunc(40_960_000_000 / (lsb_na x shunt_milliohm))
    #    10 Ohm, 1 uA: 40_960_000_000 / (1000 x 10_000) = 4096 = 0x1000.
    cal = 40_960_000_000 // (lsb_na * shunt_milliohm)
    if not 2 <= cal <= 0xFFFF:
        raise ValueError("calibration out of the register's range")
    cal &= 0xFFFE  # bit 0 of the register is read-only zero
    # 5. Power LSB = 20 x Current_LSB (datasheet eq. 3): 20 uW = 20_000 nW for 1 uA.
    return pga, _PGA_FS[pga], lsb_na, cal, 20 * lsb_na


def _errno(e):
    # e.args[0], not e.errno: CPython leaves .errno None for OSError(n); no allocation
    a = e.args
    return a[0] if a else -1


class INA219:
    def __init__(self, i2c, addr=0x40, shunt_milliohm=10_000, max_ua=32_000, fast=False, clock=None,
                 flags_every=1):
        self._i2c = i2c
        # status (CNVR, OVF) read on one call in flags_every; 1: on every call
        self._flags_every = flags_every if flags_every > 1 else 1
        self._flags_n = 0  # calls until the next status read (0: this one)
        self._ovf_flag = False  # the chip's OVF bit at the last status read
        self.flag_reads = 0  # status reads so far (tests, bench)
        self._clock = clock if clock is not None else _ticks_us  # None: untimed (age_us -1)
        self._addr = addr
        self._buf = bytearray(2)
        pga, fs, lsb_na, cal, plsb = calibration(shunt_milliohm, max_ua)
        self.pga = pga
        self._fs = fs
        self.current_lsb_na = lsb_na
        self.cal_value = cal
        self.power_lsb_nw = plsb
        sadc = _ADC_12BIT if fast else _ADC_12BIT_2S
        # BRNG 16 V | PG | BADC 12 bit (unused in shunt-only mode) | SADC | shunt continuous
        self.config_value = _BRNG_16V | (pga << 11) | (_ADC_12BIT << 7) | (sadc << 3) | _MODE_SHUNT_CONT
        # Shunt register counts (10 uV) -> uA: 10 uV / R = 10 / (shunt_milliohm / 1000) uA
        # = count x 10_000 / shunt_milliohm, reduced so count x num stays below 2**30
        # (32768 x 1 for 10 Ohm: no big ints on the hot path).
        g = _gcd(10_000, shunt_milliohm)
        self._num = 10_000 // g
        self._den = shunt_milliohm // g
        if 32_768 * self._num >= 1 << 30:
            raise ValueError("shunt too small for integer scaling")
        self.error = 0  # errno of the last failed transaction, 0 when the last call was good
        self.errors = 0  # failed calls since start
        self.ovf = False
        self.fresh = False
        self.stale = 0  # consecutive reads without a new conversion
        self.age_us = -1 if self._clock is None else 0  # no new conversion for this long
        self._t_clr = self._clock() if self._clock is not None else 0  # CNVR last cleared
        self.raw = 0  # last shunt register value (signed, 10 uV)
        self.ua = 0  # last good reading, uA

    # --- registers ------------------------------------------------------------------------
    def _read_reg(self, reg):
        b = self._buf
        self._i2c.readfrom_mem_into(self._addr, reg, b)
        return (b[0] << 8) | b[1]

    def _write_reg(self, reg, value):
        b = self._buf
        b[0] = (value >> 8) & 0xFF
        b[1] = value & 0xFF
        self._i2c.writeto_mem(self._addr, reg, b)

    # --- hot path -------------------------------------------------------------------------
    def read_shunt_ua(self):
        """Current through the shunt in uA (signed), or INVALID with `error` set. No allocation.
        One register read, plus the status pair (bus, power) on one call in `flags_every`."""
        i2c = self._i2c
        a = self._addr
        b = self._buf
        clk = self._clock
        n = self._flags_n
        status = n == 0
        self._flags_n = self._flags_every - 1 if status else n - 1
        if clk is not None:
            # before the bus read: a conversion ending from here on would show in it
            t = clk()
            d = _ticks_diff(t, self._t_clr)
            if d > _AGE_MAX_US or d < 0:  # (negative: the reads paused past the ticks' range)
                self._t_clr = _ticks_add(t, -_AGE_MAX_US)
                d = _AGE_MAX_US
        flags = 0
        try:
            if status:
                i2c.readfrom_mem_into(a, _REG_BUS, b)
                flags = b[1]
                if flags & _CNVR:
                    i2c.readfrom_mem_into(a, _REG_POWER, b)  # clears CNVR (the value is unused)
                    if clk is not None:
                        self._t_clr = clk()  # after the clear: a stall before it is no staleness
            i2c.readfrom_mem_into(a, _REG_SHUNT, b)
        except OSError as e:
            self.error = _errno(e)
            self.errors += 1
            self.fresh = False
            self._flags_n = 0  # the next call reads the status again
            if clk is not None:
                self.age_us = 0
            return INVALID
        self.error = 0
        if status:
            self.flag_reads += 1
            self._ovf_flag = bool(flags & _OVF)
            if flags & _CNVR:
                self.fresh = True
                self.stale = 0
            else:
                self.fresh = False
                if self.stale < _STALE_MAX:
                    self.stale += 1
        if clk is not None:
            # between status reads the age goes on from the last clear while the last status
            # said "no new conversion"
            self.age_us = 0 if self.fresh else d
        raw = (b[0] << 8) | b[1]
        if raw & 0x8000:
            raw -= 0x10000
        self.raw = raw
        fs = self._fs
        self.ovf = self._ovf_flag or raw >= fs or raw <= -fs
        if raw >= 0:
            ua = raw * self._num // self._den
        else:
            ua = -(-raw * self._num // self._den)
        self.ua = ua
        return ua

    def status_next(self):
        """Make the next read_shunt_ua() read the status (CNVR, OVF) too (self-tests)."""
        self._flags_n = 0

    def fill(self, meas):
        """One tick into a supervisor.Meas-like object: ua (>= 0), err, ovf, fresh, age_us."""
        ua = self.read_shunt_ua()
        meas.err = self.error
        meas.age_us = self.age_us
        if self.error:
            meas.ua = 0
            meas.ovf = False
            meas.fresh = False
            return
        meas.ua = ua if ua > 0 else 0
        meas.ovf = self.ovf
        meas.fresh = self.fresh

    # --- slow path: self-test, start-up, lower-rate readings ----------------------------------
    def _fail(self, e):
        # An I2C error on the slow path: recorded for the caller, never raised.
        self.error = _errno(e)
        self.errors += 1

    def read_bus_mv(self):
        """Last bus conversion in mV (4 mV LSB); -1 on an I2C error (`error` set)."""
        try:
            v = self._read_reg(_REG_BUS)
        except OSError as e:
            self._fail(e)
            return -1
        self.error = 0
        return (v >> 3) * 4

    def read_current_ua(self):
        """Current register (shunt x cal / 4096) in uA; INVALID on an I2C error.

        A cross-check of the calibration path for the self-test (reads 0 while cal is 0).
        """
        try:
            v = self._read_reg(_REG_CURRENT)
        except OSError as e:
            self._fail(e)
            return INVALID
        self.error = 0
        if v & 0x8000:
            v -= 0x10000
        return v * self.current_lsb_na // 1000

    def check_present(self):
        """True if the chip answers at its address (reads the config register)."""
        try:
            self._read_reg(_REG_CONFIG)
        except OSError as e:
            self._fail(e)
            return False
        self.error = 0
        return True

    def reset(self):
        """Software reset (RST bit: every register to its power-on value). True if sent."""
        try:
            self._write_reg(_REG_CONFIG, _RST)
        except OSError as e:
            self._fail(e)
            return False
        self.error = 0
        self.stale = 0
        self._cleared()
        return True

    def _cleared(self):
        # A config write clears CNVR (RST too): the age starts again from here.
        if self._clock is not None:
            self._t_clr = self._clock()
            self.age_us = 0

    def calibrate(self):
        """Write calibration and config, read both back. True when the chip holds them."""
        try:
            self._write_reg(_REG_CAL, self.cal_value)
            self._write_reg(_REG_CONFIG, self.config_value)
        except OSError as e:
            self._fail(e)
            return False
        self._cleared()
        ok = self.calibrated()
        if not self.error:
            self.stale = 0
        return ok

    def calibrated(self):
        """True if calibration and config still read back (a brown-out resets them)."""
        try:
            ok = self._read_reg(_REG_CAL) == self.cal_value and self._read_reg(_REG_CONFIG) == self.config_value
        except OSError as e:
            self._fail(e)
            return False
        self.error = 0
        return ok
