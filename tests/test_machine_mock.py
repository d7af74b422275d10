"""The machine mock on CPython, and the same checks under the MicroPython unix port."""
import errno

import pytest

import machine
import vclock
from conftest import MPY_TESTS, mpy_section, mpy_sections
from machine import ADC, I2C, PWM, RTC, WDT, Pin, SoftI2C, Timer


@pytest.fixture(autouse=True)
def fresh():
    vclock.set_boot_offset(0)
    vclock.strict = True
    del vclock._hooks[:]
    machine._buses.clear()
    machine._adc_src.clear()
    for st in machine._pins.values():
        del st._listeners[:]
        del st._pwm_listeners[:]
        st.float_level = 0
    machine.sim_set_reset_handler(None)
    machine.sim_power_on()
    yield
    vclock.strict = False
    machine.sim_set_reset_handler(None)
    machine.sim_power_on()


class Reg:
    """A register-file device: pointer write, then reads from the pointer."""

    def __init__(self):
        self.regs = bytearray(range(16))
        self.ptr = 0
        self.writes = []

    def i2c_write(self, data):
        data = bytes(data)
        self.writes.append(data)
        self.ptr = data[0]
        for i, b in enumerate(data[1:]):
            self.regs[(self.ptr + i) & 15] = b

    def i2c_read(self, n):
        return bytes(self.regs[(self.ptr + i) & 15] for i in range(n))


# --- Pin ------------------------------------------------------------------------------------
def test_pin_is_one_object_per_gpio_and_named_led():
    assert Pin(5) is Pin(5)
    assert Pin("LED") is Pin(25)


def test_pin_output_and_listeners():
    seen = []
    machine.sim_pin(17).on_change(lambda pid, lvl: seen.append((pid, lvl)))
    p = Pin(17, Pin.OUT, value=0)
    p.on()
    p.toggle()
    p(1)
    p.high()
    p.low()
    assert p() == 0 and p.value() == 0
    assert seen == [(17, 1), (17, 0), (17, 1), (17, 0)]
    assert machine.sim_pin(17).value == 0 and machine.sim_pin(17).mode == Pin.OUT


def test_input_reads_drive_then_pull_then_float():
    st = machine.sim_pin(10)
    assert Pin(10).value() == 0  # power-on pad pull-down
    p = Pin(10, Pin.IN, Pin.PULL_UP)
    assert p.value() == 1
    st.drive(0)
    assert p.value() == 0
    st.release()
    assert p.value() == 1
    p.init(Pin.IN)  # rp2: init without pull= clears the pull
    assert st.pull is None
    st.float_level = 1
    st.drive(None)
    assert p.value() == 1
    Pin(10, Pin.IN, Pin.PULL_DOWN)
    assert p.value() == 0


def test_open_drain():
    st = machine.sim_pin(20)
    p = Pin(20, Pin.OPEN_DRAIN, Pin.PULL_UP)
    assert p.value() == 1  # released, pulled up
    st.drive(0)
    assert p.value() == 0  # something else pulls it low
    st.release()
    p.value(0)
    assert p.value() == 0


def test_irq_on_bounce_edges_at_their_virtual_times():
    p = Pin(10, Pin.IN, Pin.PULL_UP)
    falls, rises = [], []
    p.irq(lambda pin: (falls if pin.value() == 0 else rises).append(vclock.now_us()), Pin.IRQ_FALLING | Pin.IRQ_RISING)
    n = machine.sim_pin(10).bounce(0, edges=5, span_us=3000)
    assert n == 5
    vclock.advance(10_000)  # one long sleep: edges still land at their own times
    assert p.value() == 0
    assert len(falls) == 3 and len(rises) == 2
    times = sorted(falls + rises)
    assert times[-1] == 3000 and all(0 < t <= 3000 for t in times)
    assert times == sorted(set(times))


def test_bounce_parity_is_fixed_to_reach_final_level():
    Pin(11, Pin.IN, Pin.PULL_UP)
    assert machine.sim_pin(11).bounce(0, edges=4, span_us=100) == 5
    vclock.advance(200)
    assert Pin(11).value() == 0


def test_irq_trigger_filter_and_flags():
    p = Pin(12, Pin.IN, Pin.PULL_UP)
    got = []
    irq = p.irq(lambda pin: got.append(irq.flags()), Pin.IRQ_RISING)
    st = machine.sim_pin(12)
    st.drive(0)
    st.drive(1)
    assert got == [Pin.IRQ_RISING]
    p.irq(None)
    st.drive(0)
    st.drive(1)
    assert got == [Pin.IRQ_RISING]


def test_irq_deferred_by_disable_irq_and_charge():
    p = Pin(13, Pin.IN, Pin.PULL_UP)
    got = []
    p.irq(lambda pin: got.append(vclock.now_us()), Pin.IRQ_FALLING)
    s = machine.disable_irq()
    machine.sim_pin(13).drive(0)
    vclock.advance(100)
    assert got == []
    machine.enable_irq(s)
    assert got == [100]
    machine.sim_pin(13).drive(1)
    vclock.at(vclock.now_us() + 50, lambda _: machine.sim_pin(13).drive(0))
    vclock.charge(1000)  # e.g. a flash erase
    assert got == [100, 1100]


def test_invalid_pin():
    with pytest.raises(ValueError):
        Pin(30)
    with pytest.raises(ValueError):
        Pin(3, 7)


# --- PWM ------------------------------------------------------------------------------------
def test_pwm_quantises_like_rp2():
    pw = PWM(Pin(16), freq=50_000, duty_u16=32768)
    assert pw.freq() == 50_000
    # TOP = 2499 at 125 MHz: duty comes back rounded to 1/2500 steps
    assert pw.duty_u16() == (round(32768 * 2500 / 65535) * 65535 + 1250) // 2500
    assert machine.sim_pwm(16).enabled
    pw.duty_ns(5000)
    assert pw.duty_ns() == 5000
    pw.duty_u16(65535)
    assert machine.sim_pwm(16).mean_u16 == 65535
    with pytest.raises(ValueError):
        pw.duty_u16(70000)
    with pytest.raises(ValueError):
        pw.freq(1)


def test_pwm_not_started_until_freq_and_duty_set():
    pw = PWM(Pin(19))
    assert not machine.sim_pwm(19).enabled
    pw.freq(1000)
    assert not machine.sim_pwm(19).enabled
    pw.duty_u16(1000)
    assert machine.sim_pwm(19).enabled


@pytest.mark.parametrize("duty,level", [(0, 0), (20000, 0), (32768, 1), (65535, 1)])
def test_pwm_deinit_leaves_the_pin_where_it_stopped(duty, level):
    means = []
    machine.sim_pwm(16).on_change(lambda pid, m: means.append(m))
    pw = PWM(Pin(16), freq=50_000, duty_u16=duty)
    pw.deinit()
    assert not machine.sim_pwm(16).enabled
    assert Pin(16).value() == level
    assert machine.sim_pwm(16).mean_u16 == 65535 * level
    # the safe sequence: take the pin back as a GPIO driven low
    Pin(16, Pin.OUT, value=0)
    assert machine.sim_pwm(16).mean_u16 == 0
    assert (means[-1] if means else 0) == 0
    if level:
        assert means[-2] == 65535  # stuck high after deinit, until taken back


def test_pwm_deinit_stops_the_whole_slice_and_soft_reset_stops_all():
    a = PWM(Pin(2), freq=1000, duty_u16=60000)  # slice 1 A
    PWM(Pin(3), freq=1000, duty_u16=100)  # slice 1 B
    a.deinit()
    assert not machine.sim_pwm(3).enabled
    assert Pin(2).value() == 1 and Pin(3).value() == 0
    PWM(Pin(16), freq=50_000, duty_u16=50000)
    machine.sim_soft_reset()
    assert not machine.sim_pwm(16).enabled and Pin(16).value() == 1


def test_pwm_slice_shares_frequency():
    PWM(Pin(16), freq=50_000, duty_u16=100)
    PWM(Pin(17), freq=20_000, duty_u16=100)  # GP17 is slice 0 channel B too
    assert machine.sim_pwm(16).freq == 20_000


def test_pwm_invert():
    PWM(Pin(15), freq=2000, duty_u16=16384, invert=True)
    assert machine.sim_pwm(15).invert == 1
    assert 49000 < machine.sim_pwm(15).mean_u16 < 49200


# --- I2C ------------------------------------------------------------------------------------
def test_i2c_register_access_and_wire_time():
    dev = Reg()
    machine.sim_i2c_bus(0).attach(0x40, dev)
    i2c = I2C(0, scl=Pin(5), sda=Pin(4), freq=400_000, timeout=1000)
    assert i2c.scan() == [0x40]
    t0 = vclock.now_us()
    buf = bytearray(2)
    i2c.readfrom_mem_into(0x40, 3, buf)
    assert buf == bytearray([3, 4])
    # pointer write (1+1 bytes) + read (2+1 bytes), 9 bits a byte at 400 kHz
    assert vclock.now_us() - t0 == (2 * 9_000_000) // 400_000 + (3 * 9_000_000) // 400_000
    i2c.writeto_mem(0x40, 5, b"\xaa\xbb")
    assert dev.writes[-1] == b"\x05\xaa\xbb"
    assert i2c.readfrom_mem(0x40, 5, 2) == b"\xaa\xbb"
    assert i2c.writeto(0x40, b"\x07") == 1
    assert i2c.readfrom(0x40, 1) == b"\x07"
    rb = bytearray(1)
    i2c.readfrom_into(0x40, rb)
    assert rb == b"\x07"
    assert i2c.writevto(0x40, (b"\x08", b"\x01")) == 2
    assert dev.regs[8] == 1
    buf16 = bytearray(1)
    i2c.readfrom_mem_into(0x40, 0x0102, buf16, addrsize=16)
    assert dev.writes[-1] == b"\x01\x02"


def test_i2c_missing_device_and_nack_fault():
    machine.sim_i2c_bus(0).attach(0x40, Reg())
    i2c = I2C(0, scl=5, sda=4)
    with pytest.raises(OSError) as e:
        i2c.readfrom_mem(0x41, 0, 2)
    assert e.value.args[0] == errno.EIO  # rp2 hardware I2C: every non-timeout failure
    soft = SoftI2C(scl=Pin(5), sda=Pin(4))
    with pytest.raises(OSError) as e:
        soft.readfrom_mem(0x41, 0, 2)
    assert e.value.args[0] == errno.ENODEV == 19  # extmod soft I2C address NACK
    bus = machine.sim_i2c_bus(0)
    bus.fault = "nack"
    with pytest.raises(OSError) as e:
        soft.writeto(0x40, b"\x00")
    assert e.value.args[0] == 19
    assert i2c.scan() == []
    bus.fault_addr = 0x3C  # only another address is faulted
    assert soft.readfrom_mem(0x40, 2, 1) == b"\x02"


def test_i2c_stuck_bus_charges_the_timeout():
    machine.sim_i2c_bus(0).attach(0x40, Reg())
    machine.sim_i2c_bus(0).fault = "stuck"
    i2c = I2C(0, scl=5, sda=4, timeout=1000)
    t0 = vclock.now_us()
    with pytest.raises(OSError) as e:
        i2c.readfrom_mem_into(0x40, 0, bytearray(2))
    assert e.value.args[0] == errno.ETIMEDOUT == 110
    assert vclock.now_us() - t0 == 1000


def test_i2c_pins_checked_and_wires_matter():
    with pytest.raises(ValueError):
        I2C(0, scl=Pin(4), sda=Pin(5))
    with pytest.raises(ValueError):
        I2C(2)
    bus = machine.sim_i2c_bus(0)
    bus.attach(0x3C, Reg())
    bus.pins = (5, 4)
    assert I2C(0).scan() == []  # Pico default pins GP8/GP9: nothing there
    assert I2C(0, scl=5, sda=4).scan() == [0x3C]


# --- ADC ------------------------------------------------------------------------------------
def test_adc_is_12_bit_scaled_to_16():
    machine.sim_adc(26, lambda: 40000)
    a = ADC(Pin(26))
    raw = 40000 >> 4
    assert a.read_u16() == (raw << 4) | (raw >> 8)
    assert ADC(0).read_u16() == a.read_u16()
    machine.sim_adc(26, lambda: 70000)
    assert a.read_u16() == 65535
    assert 13000 < ADC(ADC.CORE_TEMP).read_u16() < 15000
    with pytest.raises(ValueError):
        ADC(5)


# --- WDT, reset -----------------------------------------------------------------------------
def test_wdt_missed_feed_resets_with_wdt_reset():
    causes = []
    machine.sim_set_reset_handler(causes.append)
    w = WDT(timeout=100)
    for _ in range(10):
        vclock.advance(90_000)
        w.feed()
    assert causes == []
    vclock.advance(150_000)
    assert causes == [machine.WDT_RESET]
    machine.sim_power_on(causes[0])
    assert machine.reset_cause() == machine.WDT_RESET == 3


def test_wdt_limits_and_soft_reset_keeps_it():
    with pytest.raises(ValueError):
        WDT(timeout=8389)
    with pytest.raises(ValueError):
        WDT(id=1, timeout=100)
    causes = []
    machine.sim_set_reset_handler(causes.append)
    WDT(timeout=8388)
    machine.sim_soft_reset()
    vclock.advance(9_000_000)
    assert causes == [3]


def test_reset_and_reset_cause():
    assert machine.reset_cause() == machine.PWRON_RESET == 1
    causes = []
    machine.sim_set_reset_handler(causes.append)
    machine.reset()
    assert causes == [machine.WDT_RESET]
    machine.sim_set_reset_handler(None)
    with pytest.raises(SystemExit):
        machine.reset()
    with pytest.raises(SystemExit):
        machine.soft_reset()


# --- Timer ----------------------------------------------------------------------------------
def test_timer_periodic_and_one_shot():
    ticks, once = [], []
    t = Timer(-1, mode=Timer.PERIODIC, period=10, callback=lambda tm: ticks.append(vclock.now_us()))
    Timer(mode=Timer.ONE_SHOT, period=25, callback=lambda tm: once.append(vclock.now_us()))
    vclock.advance(55_000)
    assert ticks == [10_000, 20_000, 30_000, 40_000, 50_000]
    assert once == [25_000]
    t.deinit()
    vclock.advance(50_000)
    assert len(ticks) == 5
    f = []
    Timer(freq=1000, callback=lambda tm: f.append(1))
    vclock.advance(10_000)
    assert len(f) == 10


def test_timer_late_during_blackout_fires_once_and_keeps_phase():
    ticks = []
    Timer(period=2, callback=lambda tm: ticks.append(vclock.now_us()))
    vclock.charge(9_000)  # a long flash erase swallows four periods
    assert ticks == [9_000]
    vclock.advance(3_000)
    assert ticks == [9_000, 10_000, 12_000]


def test_soft_reset_stops_timers_and_pin_irqs_keeps_levels():
    got = []
    Timer(period=1, callback=lambda tm: got.append("t"))
    p = Pin(10, Pin.IN, Pin.PULL_UP)
    p.irq(lambda pin: got.append("irq"), Pin.IRQ_FALLING)
    Pin(17, Pin.OUT, value=1)
    machine.sim_soft_reset()
    machine.sim_pin(10).drive(0)
    vclock.advance(10_000)
    assert got == []
    assert Pin(17).value() == 1


# --- RTC, misc ------------------------------------------------------------------------------
def test_rtc_resets_at_power_on_and_runs_on_virtual_time():
    r = RTC()
    assert r.datetime() == (2021, 1, 1, 4, 0, 0, 0, 0)
    vclock.advance(61_500_000)
    assert r.datetime() == (2021, 1, 1, 4, 0, 1, 1, 0)
    r.datetime((2024, 2, 29, 0, 23, 59, 59, 0))
    vclock.advance(1_000_000)
    assert r.datetime() == (2024, 3, 1, 4, 0, 0, 0, 0)
    machine.sim_power_on()
    assert RTC().datetime()[:3] == (2021, 1, 1)


def test_unique_id_freq_idle_lightsleep():
    assert len(machine.unique_id()) == 8
    machine.sim_set_unique_id(b"\x01\x02")
    assert machine.unique_id() == b"\x01\x02"
    assert machine.freq() == 125_000_000
    machine.freq(200_000_000)
    assert machine.freq() == 200_000_000
    t0 = vclock.now_us()
    machine.idle()
    assert 0 < vclock.now_us() - t0 <= 1000
    machine.lightsleep(5)
    assert vclock.now_us() - t0 > 5000


def test_time_pulse_us():
    Pin(9, Pin.IN)
    st = machine.sim_pin(9)
    now = vclock.now_us()
    vclock.at(now + 300, lambda _: st.drive(1))
    vclock.at(now + 1_300, lambda _: st.drive(0))
    assert machine.time_pulse_us(Pin(9), 1, 10_000) == 1000
    assert machine.time_pulse_us(Pin(9), 1, 500) == -2


@pytest.mark.parametrize("section", mpy_sections("mock_checks.py"))
def test_mock_checks_under_micropython(section):
    mpy_section("mock_checks.py", section)
