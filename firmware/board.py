# The reference board: the one firmware module that imports `machine`.
#
#     import board                        # at import: the output is made safe, nothing else
#     b = board.Board()                   # pins, PWM, I2C, ADC; no bus traffic yet
#     ok = b.init_devices()               # INA219 calibrated, display on (errors recorded)
#     failed = b.selftest()               # 0, or ST_* bits (sensor, zero current, buttons...)
#     b.measure(meas, loop_us)            # every tick: one INA219 read, ADC, pins; no allocation
#     b.output.apply(cmd)                 # every tick
#     b.buttons.poll(now_ms); b.buttons.take()
#     b.buzzer.tick(now_ms); b.display.step()
#     b.start_watchdog(ms); b.feed()      # only the treatment loop starts the watchdog
#     b.feed_from_timer(ms)               # main.py's finally, output verified off: REPL sessions
#     b.host_interrupt(False)             # no Ctrl-C from the USB host while a treatment runs
#     b.safe()                            # output safe + buzzer off; never raises
#     b.fram                              # the FRAM journal chip on the I2C bus (journal.py)
#     b.restore_time()                    # at boot: the RTC from before a watchdog reset
#     board.keep_time()                   # each second and before a host's restart
#
# Everything pin-, address- and scaling-related comes from pins.py.
import machine
import micropython
import time
from micropython import const
from machine import ADC, I2C, PWM, Pin

import pins
import limits
from ina219 import INA219
from output import Output
from buttons import Buttons
from buzzer import Buzzer
from ssd1306 import SSD1306
from display import Display
from fram import FRAM

BUTTON_PINS = (pins.PIN_BTN_START, pins.PIN_BTN_STOP, pins.PIN_BTN_UP, pins.PIN_BTN_DOWN, pins.PIN_BTN_MODE)

RESET_NAMES = {machine.PWRON_RESET: "power-on", machine.WDT_RESET: "watchdog"}

# selftest() result bits (0: every hardware check passed)
ST_SENSOR = const(1)  # INA219 does not answer
ST_CAL = const(2)  # calibration or config not held (brown-out, wrong chip)
ST_STALE = const(4)  # no new conversion
ST_ZERO = const(8)  # current flows with the output off: stuck switch
ST_BUTTON = const(16)  # a button held since start-up
ST_ENABLE = const(32)  # the enable pad does not read low
ST_HW_LIMIT = const(64)  # the limiter flags a trip with the output off
ST_DISPLAY = const(128)  # the display does not answer
ST_NAMES = ("sensor", "calibration", "stale", "zero", "button", "enable", "hw_limit", "display")


def _mv_scale():
    # Electrode voltage from ADC0 (read_u16: 0..65535 for 0..ADC_VREF_MV):
    #   V_adc = u16 x VREF / 65535
    #   V_electrode = V_adc x (TOP + BOTTOM) / BOTTOM
    #               = u16 x VREF x (TOP + BOTTOM) / (65535 x BOTTOM)
    #   = u16 x 3300 x 105100 / (65535 x 5100) = u16 x 1.03773 mV (68.0 V at full scale).
    # Per tick as u16 x Q + ((u16 x F + half) >> S): Q the integer part of the factor (1),
    # F its fraction scaled by 2**S, S the largest shift that keeps u16 x F + half below
    # 2**30 (rp2 small ints: no big-int allocation). Rounded; within 0.6 mV of the exact value.
    num = pins.ADC_VREF_MV * (pins.DIVIDER_TOP_OHM + pins.DIVIDER_BOTTOM_OHM)
    den = 65535 * pins.DIVIDER_BOTTOM_OHM
    q = num // den
    r = num - q * den
    s = 0
    while s < 29:
        f = ((r << (s + 1)) + den // 2) // den
        if 65535 * f + (1 << s) >= 1 << 30:
            break
        s += 1
    f = ((r << s) + den // 2) // den
    return q, f, s


_Q, _K, _S = _mv_scale()
_HALF = (1 << _S) >> 1


def adc_to_mv(u16):
    """ADC0 read_u16 -> electrode voltage in mV through the divider (integer, no allocation)."""
    return u16 * _Q + ((u16 * _K + _HALF) >> _S)


def _sense_scale():
    # Second current channel: ADC1 reads RS2's drop, I x SENSE_MILLIOHM (read_u16: 0..65535
    # for 0..VREF):
    #   V_adc = u16 x VREF / 65535;  I = V_adc / (SENSE_MILLIOHM / 1000)
    #   I_uA = u16 x VREF_mV x 1e6 / (65535 x SENSE_MILLIOHM) = u16 x 1.0714 (3300 mV, 47 ohm)
    # As (u16 x K) >> S, K the factor scaled by 2**S, S the largest shift keeping u16 x K
    # below 2**30 (no big int on rp2, tick or not: computed once at import). Within 1 uA.
    num = pins.ADC_VREF_MV * 1_000_000
    den = 65535 * pins.SENSE_MILLIOHM
    s = 0
    while 65535 * ((num << (s + 1)) // den + 1) < 1 << 30 and s < 29:
        s += 1
    return ((num << s) + den // 2) // den, s


_SK, _SS = _sense_scale()


def adc_to_sense_ua(u16):
    """ADC1 read_u16 -> the load current through RS2 in uA (integer, no allocation)."""
    return (u16 * _SK) >> _SS


def make_safe():
    """Output off at the pins without building anything: enable, setpoint, gate and clamp low."""
    for p in (pins.PIN_OUTPUT_ENABLE, pins.PIN_SETPOINT_PWM, pins.PIN_PULSE_GATE, pins.PIN_CLAMP_PWM):
        try:
            Pin(p, Pin.OUT, value=0)
        except Exception:
            pass


make_safe()  # importing the board module drives nothing else


# --- the clock across a watchdog reset ------------------------------------------------------
# rp2 restarts its RTC at 2021-01-01 on every reset, and a host leaving after a treatment
# resets the unit through the watchdog (armed, it cannot be stopped). The watchdog's scratch
# registers survive that reset (not a power-on): machine.mem_backup() (MicroPython's rp2 port
# since 1.28: scratch[0..3]; scratch[4] belongs to pico-sdk) holds the RTC time, written once
# a second and just before a host's restart, and the next boot puts it back.
#   word 0: _CLOCK_MAGIC   word 1: unix seconds   word 2: word 1 xor 0xFFFFFFFF
# keep_time() costs ~0.09 ms on the emulated RP2040 (our rp2 image, where mem_backup exists).
_CLOCK_MAGIC = const(0x10C7C10C)
_SET_YEAR = const(2024)  # an RTC before this was never set by a host (logstore.RTC_SET_YEAR)


def keep_time():
    """The RTC time into the watchdog scratch registers, if a host has set the RTC. Never
    raises (a port without mem_backup keeps nothing)."""
    try:
        t = int(time.time())
        if time.gmtime(t)[0] < _SET_YEAR:
            return False
        m = machine.mem_backup()
        m[1] = t
        m[2] = t ^ 0xFFFFFFFF
        m[0] = _CLOCK_MAGIC
        return True
    except Exception:
        return False


def kept_time():
    """The time keep_time() last stored, or None (none, damaged, or cleared by power-on)."""
    try:
        m = machine.mem_backup()
        if m[0] != _CLOCK_MAGIC or m[1] ^ m[2] != 0xFFFFFFFF:
            return None
        return m[1]
    except Exception:
        return None


# --- the host session's lease ------------------------------------------------------------
# A host (ionto) at the REPL renews this with every command. If it renews nothing in time (the
# cable was pulled, the host was killed), the unit restarts into its application instead of
# sitting at the REPL, where START does nothing. A REPL session that never takes a lease
# (mpremote, a technician) is never cut short. rp2's soft reset stops the timer.
_LEASE_CHECK_MS = const(500)
_lease = [None, 0]  # [machine.Timer, deadline in ticks_ms]


def host_lease(ms):
    """Renew the lease for `ms` from now; ms <= 0 ends it."""
    import time

    t = _lease[0]
    if ms <= 0:
        if t is not None:
            t.deinit()
        return
    _lease[1] = time.ticks_add(time.ticks_ms(), ms)
    if t is None:
        t = _lease[0] = machine.Timer(-1)
    # (Re)armed on every renewal: a soft reset may have stopped it since.
    t.init(mode=machine.Timer.PERIODIC, period=_LEASE_CHECK_MS, callback=_lease_check)


def _lease_check(t):
    import time

    if time.ticks_diff(time.ticks_ms(), _lease[1]) > 0:
        t.deinit()
        make_safe()  # off already at the REPL; a reset must never be the first to say so
        machine.reset()


class Board:
    def __init__(self, clock=None, max_ua=limits.ABS_MAX_UA):
        # The output stage first: it drives enable low before anything else happens.
        self.output = Output(Pin, PWM)
        self.i2c = I2C(pins.I2C_ID, scl=Pin(pins.I2C_SCL), sda=Pin(pins.I2C_SDA),
                       freq=pins.I2C_FREQ, timeout=pins.I2C_TIMEOUT_US)
        # one register read per tick; the status pair every SENSOR_FLAGS_MS (ina219.py)
        self.ina = INA219(self.i2c, pins.INA219_ADDR, pins.SHUNT_MILLIOHM, max_ua,
                          flags_every=limits.SENSOR_FLAGS_MS // limits.LOOP_PERIOD_MS)
        self.oled = SSD1306(self.i2c, pins.SSD1306_ADDR)
        self.fram = FRAM(self.i2c, pins.FRAM_ADDR)
        self.display = Display(self.oled)
        self.buttons = Buttons(Pin, BUTTON_PINS, clock=clock)
        self.buzzer = Buzzer(PWM(Pin(pins.PIN_BUZZER), freq=2_700, duty_u16=0))
        self.led = Pin(pins.PIN_LED, Pin.OUT, value=0)
        self.adc = ADC(Pin(pins.PIN_ELECTRODE_ADC))
        # The second current channel (RS2 through an RC into ADC1): one read a tick.
        self.adc_sense = ADC(Pin(pins.PIN_SENSE_ADC))
        self.vbus = Pin(pins.PIN_VBUS_SENSE, Pin.IN)
        self.hw_limit = Pin(pins.PIN_HW_LIMIT, Pin.IN, Pin.PULL_UP)
        # measure() runs every tick: its bound methods made once here (a look-up and a
        # bound-method object per use otherwise)
        self._ina_fill = self.ina.fill
        self._adc_read = self.adc.read_u16
        self._sense_read = self.adc_sense.read_u16
        self._hw_limit_value = self.hw_limit.value
        self._vbus_value = self.vbus.value
        self.wdt = None
        self.feeder = None  # machine.Timer feeding the watchdog while the REPL runs
        self.reset_cause = machine.reset_cause()
        self.serial = "".join("%02X" % b for b in machine.unique_id())  # as hostcmd writes it
        self.ina_ok = False
        self.display_ok = False

    def reset_cause_name(self):
        return RESET_NAMES.get(self.reset_cause, "unknown")

    def restore_time(self):
        """At boot, before the log opens: after a watchdog reset, set the RTC back to the
        time kept in the scratch registers plus the seconds since this boot began. The time
        between the last keep (at most 1 s, or ms before a host's restart) and the reset is
        not known: the clock may be up to ~1 s behind. Returns (old, new) or None."""
        if self.reset_cause != machine.WDT_RESET:
            return None
        t = kept_time()
        if t is None:
            return None
        try:
            old = int(time.time())
            if time.gmtime(old)[0] >= _SET_YEAR:
                return None  # the RTC is set already
            new = t + time.ticks_ms() // 1000
            g = time.gmtime(new)
            machine.RTC().datetime((g[0], g[1], g[2], g[6], g[3], g[4], g[5], 0))
            return old, new
        except Exception:
            return None

    def keep_time(self):
        return keep_time()

    def init_devices(self):
        """Calibrate the INA219 and start the display. True if both answered; `ina_ok`,
        `display_ok` and the drivers' `error` say which did not. Never raises."""
        self.ina_ok = self.ina.calibrate()
        try:
            self.oled.init_display()
            self.display_ok = True
        except OSError:
            self.display_ok = False
        return self.ina_ok and self.display_ok

    def selftest(self):
        """Hardware self-test with the output off (call it at least limits.OFF_SETTLE_MS after
        the output went off): a bit mask of ST_* failures, 0 when all pass. Never raises."""
        f = 0
        ina = self.ina
        self.output.safe()
        if not ina.check_present():
            return f | ST_SENSOR | (0 if self.display_ok else ST_DISPLAY)
        if not ina.calibrated():
            f |= ST_CAL
        # the reads themselves take time (~0.2 ms each): a conversion (1.06 ms) ends within a few
        fresh = False
        ua = 0
        ina.status_next()
        for _ in range(20):
            ua = ina.read_shunt_ua()
            if ina.error:
                return f | ST_SENSOR
            if ina.fresh:
                fresh = True
                break
        if not fresh:
            f |= ST_STALE
        if ua > limits.ZERO_TOL_UA or ua < -limits.ZERO_TOL_UA:
            f |= ST_ZERO
        if self.buttons.stuck_mask():
            f |= ST_BUTTON
        if self.output.enable_level():
            f |= ST_ENABLE
        if self.hw_limit_tripped():
            f |= ST_HW_LIMIT
        if not self.display_ok:
            f |= ST_DISPLAY
        return f

    # --- per tick -----------------------------------------------------------------------
    def electrode_mv(self):
        return adc_to_mv(self.adc.read_u16())

    def hw_limit_tripped(self):
        return self.hw_limit.value() == 0  # open drain: low = tripped

    def usb_host(self):
        return self.vbus.value() == 1

    def measure(self, meas, loop_us=0):
        """Fill a supervisor.Meas from the sensors: ua, err, ovf, fresh, mv, hw_limit, vbus,
        loop_us. No allocation; an I2C error shows in meas.err, never as an exception."""
        self._ina_fill(meas)
        u16 = self._adc_read()
        meas.mv = u16 * _Q + ((u16 * _K + _HALF) >> _S)  # adc_to_mv(u16), without the call
        meas.ua2 = (self._sense_read() * _SK) >> _SS
        meas.hw_limit = self._hw_limit_value() == 0
        meas.vbus = self._vbus_value() == 1
        meas.loop_us = loop_us

    # --- watchdog -----------------------------------------------------------------------
    def start_watchdog(self, timeout_ms):
        """Start the hardware watchdog (it cannot be stopped). Only the treatment loop calls
        this: boot.py and a host session never must."""
        if self.wdt is None:
            self.wdt = machine.WDT(timeout=timeout_ms)
            self.wdt.feed()
        return self.wdt

    def feed(self):
        if self.wdt is not None:
            self.wdt.feed()

    def feed_from_timer(self, period_ms):
        """Keep feeding an armed watchdog from a timer, so a host session at the REPL after a
        treatment is not cut short by a reset. Call only with the output verified off.
        rp2's soft reset stops timers: the watchdog then bites within its timeout unless the
        new main.py feeds it (a clean restart, reset cause "watchdog", output off)."""
        if self.wdt is not None and self.feeder is None:
            wdt = self.wdt

            def feed(t):
                wdt.feed()
                keep_time()  # a restart at any moment of the host session keeps the clock

            self.feeder = machine.Timer(-1, mode=machine.Timer.PERIODIC, period=period_ms, callback=feed)
        return self.feeder is not None

    # --- the USB host's Ctrl-C ----------------------------------------------------------
    def host_interrupt(self, allow):
        """Ctrl-C from the USB host: allowed (True) or ignored (False). A treatment must not
        be cut abruptly by a host (an abrupt stop is a shock): the loop disables it from
        EV_START until the output is off and ramped down. Ignored bytes stay in the input."""
        try:
            micropython.kbd_intr(3 if allow else -1)
        except Exception:
            pass

    # --- safe paths ---------------------------------------------------------------------
    def safe(self):
        """Output safe first, then the buzzer quiet. Never raises."""
        self.output.safe()
        self.buzzer.off()

    def close(self):
        """Pin IRQs off (tests and a soft reboot)."""
        self.safe()
        self.buttons.close()
