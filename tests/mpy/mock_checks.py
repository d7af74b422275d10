# The machine mock and virtual time under the MicroPython unix port (run by
# tests/test_machine_mock.py with hw/sim first on MICROPYPATH). Prints
# "mock_checks: all ok" at the end; any failed check raises and exits non-zero.
import sys
import micropython
import time
import machine
import vclock
from machine import Pin, PWM, I2C, SoftI2C, ADC, WDT, RTC, Timer

from checkrun import check


def raises(exc, fn, *args):
    try:
        fn(*args)
    except exc as e:
        return e
    raise AssertionError("no %s from %s" % (exc.__name__, fn))


vclock.strict = True

import checkrun


# --- time.py shadows the built-in and runs on vclock -------------------------------------
@checkrun.section
def check_time_py_shadows_the_built_in_and_runs_on_vclock():
    global P, a, b, d, deadline, i, ref_diff, start, t0, x
    check(getattr(time, "__file__", "").endswith("hw/sim/time.py") or "sim" in getattr(time, "__file__", ""), "time.py shadows")
    check(sys.modules["machine"] is machine and hasattr(machine, "sim_pin"), "machine.py shadows")
    t0 = time.ticks_us()
    time.sleep_ms(20)
    check(time.ticks_diff(time.ticks_us(), t0) == 20_000, "sleep_ms advances virtual time exactly")
    time.sleep(0.5)
    time.sleep_us(7)
    check(vclock.now_us() == 520_007, "sleep/sleep_us")
    check(time.ticks_cpu() == time.ticks_us(), "ticks_cpu")

    # ticks wrap at 2**30 as on rp2 (the unix port's own wrap at 2**62)
    P = 1 << 30
    check(time.ticks_diff(1, P - 1) == 2, "diff across wrap")
    check(time.ticks_diff(P - 1, 1) == -2, "negative diff across wrap")
    check(time.ticks_add(P - 1, 1) == 0, "add wraps")
    check(time.ticks_add(0, -1) == P - 1, "add negative wraps")
    check(time.ticks_diff(P // 2, 0) == -(P // 2), "half period is negative")
    raises(OverflowError, time.ticks_add, 0, P // 2)
    raises(OverflowError, time.ticks_add, 0, -(P // 2))


    def ref_diff(a, b):
        return ((a - b + P // 2) & (P - 1)) - P // 2


    x = 12345
    for i in range(2000):  # deterministic LCG sweep against the reference definition
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        a = x & (P - 1)
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        d = (x % (P - 1)) - (P // 2 - 1)
        b = time.ticks_add(a, d)
        check(time.ticks_diff(b, a) == d and ref_diff(b, a) == d, "add/diff roundtrip")

    machine.sim_power_on()
    vclock.set_boot_offset(P - 5)
    start = time.ticks_ms()
    check(start == P - 5 and time.ticks_us() == P - 5, "boot_offset")
    deadline = time.ticks_add(start, 12)
    while time.ticks_diff(deadline, time.ticks_ms()) > 0:
        time.sleep_ms(1)
    check(vclock.now_us() == 12_000 and time.ticks_ms() == 7, "deadline loop across the wrap")
    vclock.set_boot_offset(0)
    machine.sim_power_on()


# --- wall clock from the simulated RTC ---------------------------------------------------
@checkrun.section
def check_wall_clock_from_the_simulated_rtc():
    global lt
    check(time.localtime()[:6] == (2021, 1, 1, 0, 0, 0), "RTC power-on date")
    check(time.time() == time.mktime((2021, 1, 1, 0, 0, 0, 0, 0)), "time/mktime")
    RTC().datetime((2030, 12, 31, 1, 23, 59, 58, 0))
    time.sleep(3)
    lt = time.localtime()
    check(lt[:6] == (2031, 1, 1, 0, 0, 1) and lt[7] == 1, "RTC runs on virtual time")
    check(time.gmtime(0)[:3] == (1970, 1, 1), "epoch 1970 as rp2")
    check(time.time_ns() // 1_000_000_000 == time.time(), "time_ns")


# --- Pin IRQs on bounce edges ------------------------------------------------------------
@checkrun.section
def check_pin_irqs_on_bounce_edges():
    global btn, edges, s
    machine.sim_power_on()
    btn = Pin(10, Pin.IN, Pin.PULL_UP)
    edges = []
    btn.irq(lambda p: edges.append((p.value(), vclock.now_us())), Pin.IRQ_FALLING | Pin.IRQ_RISING)
    machine.sim_pin(10).bounce(0, 7, 4000)
    time.sleep_ms(10)
    check(len(edges) == 7 and edges[-1] == (0, 4000), "7 bounce edges, last at 4 ms")
    check(btn.value() == 0, "settled low")
    s = machine.disable_irq()
    machine.sim_pin(10).drive(1)
    time.sleep_ms(1)
    check(len(edges) == 7, "masked")
    machine.enable_irq(s)
    check(len(edges) == 8, "delivered on enable_irq")


# --- PWM deinit leaves the level ---------------------------------------------------------
@checkrun.section
def check_pwm_deinit_leaves_the_level():
    global pw
    pw = PWM(Pin(16), freq=50_000, duty_u16=50_000)
    check(pw.freq() == 50_000 and machine.sim_pwm(16).enabled, "pwm runs")
    pw.deinit()
    check(Pin(16).value() == 1 and machine.sim_pwm(16).mean_u16 == 65535, "stuck high after deinit")
    Pin(16, Pin.OUT, value=0)
    check(machine.sim_pwm(16).mean_u16 == 0, "driven low again")


# --- I2C errors with errno ---------------------------------------------------------------
@checkrun.section
def check_i2c_errors_with_errno():
    global Dev, buf, i2c, t1
    class Dev:
        def __init__(self):
            self.ptr = 0

        def i2c_write(self, data):
            self.ptr = data[0]

        def i2c_read(self, n):
            return bytes([self.ptr + i for i in range(n)])


    machine.sim_i2c_bus(0).attach(0x40, Dev())
    i2c = I2C(0, scl=Pin(5), sda=Pin(4), freq=400_000, timeout=1000)
    check(i2c.scan() == [0x40], "scan")
    buf = bytearray(2)
    i2c.readfrom_mem_into(0x40, 0x10, buf)
    check(buf == b"\x10\x11", "readfrom_mem_into")
    check(raises(OSError, i2c.readfrom, 0x41, 1).errno == 5, "EIO on hardware I2C")
    check(raises(OSError, SoftI2C(scl=Pin(5), sda=Pin(4)).readfrom, 0x41, 1).errno == 19, "ENODEV on SoftI2C")
    machine.sim_i2c_bus(0).fault = "stuck"
    t1 = vclock.now_us()
    check(raises(OSError, i2c.readfrom_mem_into, 0x40, 0, buf).errno == 110, "ETIMEDOUT")
    check(vclock.now_us() - t1 == 1000, "timeout charged")
    machine.sim_i2c_bus(0).fault = None


# --- a heap-locked control loop: time, ticks and I2C do not allocate ---------------------
@checkrun.section
def check_a_heap_locked_control_loop_time_ticks_and_i2c_do():
    global control_loop
    def control_loop(n):
        i = 0
        while i < n:
            micropython.heap_lock()
            time.sleep_ms(2)
            time.ticks_diff(time.ticks_ms(), 0)
            i2c.readfrom_mem_into(0x40, 1, buf)
            micropython.heap_unlock()
            i += 1


    vclock.add_hook(lambda now: [now])  # simulator code may allocate: it runs unlocked
    control_loop(500)
    check(buf == b"\x01\x02", "locked loop read")
    del vclock._hooks[:]


# --- Timer and WDT -----------------------------------------------------------------------
@checkrun.section
def check_timer_and_wdt():
    global causes, i, ticks, tm, w
    machine.sim_power_on()
    ticks = []
    tm = Timer(mode=Timer.PERIODIC, freq=500, callback=lambda t: ticks.append(vclock.now_us()))
    time.sleep_ms(10)
    check(ticks == [2000, 4000, 6000, 8000, 10000], "timer at 500 Hz")
    tm.deinit()
    causes = []
    machine.sim_set_reset_handler(causes.append)
    raises(ValueError, lambda: WDT(timeout=8389))
    w = WDT(timeout=50)
    for i in range(20):
        time.sleep_ms(40)
        w.feed()
    check(causes == [], "fed in time")
    time.sleep_ms(60)
    check(causes == [machine.WDT_RESET], "missed feed resets")
    machine.sim_power_on(causes[0])
    check(machine.reset_cause() == 3, "reset_cause after watchdog")


# --- ADC, misc -----------------------------------------------------------------------------
@checkrun.section
def check_adc_misc():
    machine.sim_adc(26, lambda: 12345)
    check(ADC(Pin(26)).read_u16() == ((12345 >> 4) << 4) | (12345 >> 12), "adc 12-bit")
    check(len(machine.unique_id()) == 8 and machine.freq() == 125_000_000, "misc")


if checkrun.run():
    print("mock_checks: all ok (%d checks)" % checkrun.count())
