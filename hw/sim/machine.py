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

_WDT_MAX_MS = const(8388)  # RP2040: 0x7fffff us

_reset_cause = PWRON_RESET
_uid = b"\xe6\x60\x58\x38\x83\x3a\x2c\x21"


def _default_reset_handler(cause):
    raise SystemExit(cause)


_reset_handler = _default_reset_handler

# The pieces, one module each; their public names are this module's (the firmware imports
# only `machine`).
import machine_pins as _mp  # noqa: E402
from machine_pins import Pin, PWM, sim_pin, sim_pwm, _pins, _slices, _stop_slice, _call_sim  # noqa: E402,F401
from machine_adc import ADC, sim_adc, _adc_src  # noqa: E402,F401
from machine_i2c import I2C, SoftI2C, sim_i2c_bus, _Bus, _buses  # noqa: E402,F401
from machine_timer import Timer, _timers  # noqa: E402,F401
from machine_rtc import RTC, sim_rtc_us, _mktime, _gmtime, _rtc_power_on  # noqa: E402,F401


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
    if hz is None:
        return _mp._cpu_hz
    if not 10_000_000 <= hz <= 250_000_000:
        raise ValueError("cannot change frequency")
    _mp._cpu_hz = hz  # the PWM slices count from it


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
    vclock.reset()
    for t in list(_timers):
        t.deinit()
    del _timers[:]
    for s in _slices:
        s.power_on()
    _mp._defer = False
    for st in _pins.values():
        st.power_on()
    _mp._cpu_hz = 125_000_000
    sim_set_reset_cause(cause)
    _rtc_power_on()
    if cause != WDT_RESET:
        sim_set_mem_backup(())  # the scratch registers survive only a watchdog reset


_rtc_power_on()
