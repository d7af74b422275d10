"""firmware/output.py and firmware/board.py on the machine mock (CPython), with the simulated board."""
import importlib
import sys
import types

import pytest

import machine
import pins
import vclock


def install_fake_framebuf():
    """CPython has no framebuf: a minimal MONO_VLSB stand-in so board.py (which builds the
    display) imports. It draws pixels but no font: text is checked under MicroPython."""
    try:
        import framebuf  # noqa: F401
        return
    except ImportError:
        pass
    fb = types.ModuleType("framebuf")
    fb.MONO_VLSB = 0

    class FrameBuffer:
        def __init__(self, buf, w, h, fmt):
            self._fb = buf
            self._fw = w
            self._fh = h

        def pixel(self, x, y, c=None):
            i = (y >> 3) * self._fw + x
            if c is None:
                return (self._fb[i] >> (y & 7)) & 1
            if c:
                self._fb[i] |= 1 << (y & 7)
            else:
                self._fb[i] &= ~(1 << (y & 7))

        def fill(self, c):
            v = 0xFF if c else 0
            for i in range(len(self._fb)):
                self._fb[i] = v

        def fill_rect(self, x, y, w, h, c):
            for yy in range(max(y, 0), min(y + h, self._fh)):
                for xx in range(max(x, 0), min(x + w, self._fw)):
                    self.pixel(xx, yy, c)

        def text(self, s, x, y, c=1):
            pass

    fb.FrameBuffer = FrameBuffer
    sys.modules["framebuf"] = fb


install_fake_framebuf()

import buzzer  # noqa: E402
import output  # noqa: E402
import regulator  # noqa: E402
import supervisor  # noqa: E402
from output import Output, ua_to_duty, duty_to_ua  # noqa: E402

EN = pins.PIN_OUTPUT_ENABLE
SP = pins.PIN_SETPOINT_PWM
GATE = pins.PIN_PULSE_GATE
POL = pins.PIN_POLARITY


@pytest.fixture
def mock():
    machine.sim_power_on()
    mine = []

    def listen(pid, fn, pwm=False):
        st = machine.sim_pin(pid)
        lst = st._pwm_listeners if pwm else st._listeners
        lst.append(fn)
        mine.append((lst, fn))

    yield listen
    for lst, fn in mine:
        if fn in lst:
            lst.remove(fn)
    machine.sim_power_on()


def level(pid):
    return machine.sim_pin(pid).value


def mean(pid):
    return machine.sim_pwm(pid).mean_u16


def cmd(enable=True, ua=0, polarity=0, gate_hz=0, gate_duty_u16=65535):
    c = supervisor.Cmd()
    c.enable = enable
    c.ua = ua
    c.duty = regulator.ua_to_duty(ua)
    c.polarity = polarity
    c.gate = enable
    c.gate_hz = gate_hz
    c.gate_duty_u16 = gate_duty_u16
    return c


# --- setpoint scaling -------------------------------------------------------------------------
def test_ua_to_duty_is_the_pins_scaling_in_small_ints():
    fs = pins.SETPOINT_FULL_SCALE_UA
    for ua in list(range(0, fs + 1, 997)) + [1, 499, 30_000, fs - 1, fs]:
        assert ua_to_duty(ua) == ua * 65535 // fs
        assert ua_to_duty(ua) == regulator.ua_to_duty(ua)  # the supervisor's own conversion
        assert ua * output._NUM < 1 << 30  # rp2 small int: no big-int allocation per tick
    assert ua_to_duty(-5) == 0 and ua_to_duty(fs + 1) == 65535 and ua_to_duty(10 ** 6) == 65535
    assert abs(duty_to_ua(ua_to_duty(15_000)) - 15_000) <= 1


# --- start-up and apply -----------------------------------------------------------------------
def test_construction_drives_everything_low(mock):
    machine.Pin(EN, machine.Pin.OUT, value=1)  # whatever was there before
    machine.Pin(GATE, machine.Pin.OUT, value=1)
    out = Output(machine.Pin, machine.PWM)
    assert level(EN) == 0 and level(SP) == 0 and level(GATE) == 0 and level(POL) == 0
    assert not out.enabled and out.ua == 0 and out.duty == 0


def test_apply_dc_command_sets_pins_in_a_safe_order(mock):
    seen = []
    mock(EN, lambda p, v: seen.append(("en", v)))
    mock(SP, lambda p, m: seen.append(("sp", m)), pwm=True)
    mock(GATE, lambda p, v: seen.append(("gate", v)))
    out = Output(machine.Pin, machine.PWM)
    del seen[:]
    assert out.apply(cmd(ua=12_000)) is True
    assert level(EN) == 1 and level(GATE) == 1
    v = machine.sim_pwm(SP)
    assert v.enabled and v.freq == pins.SETPOINT_PWM_FREQ
    assert abs(v.duty_u16 - ua_to_duty(12_000)) <= 30  # 50 kHz: 2500 steps of the counter
    assert (out.enabled, out.ua, out.duty, out.gate, out.gate_hz) == (True, 12_000, ua_to_duty(12_000), True, 0)
    assert seen[-1] == ("en", 1)  # enable last, after gate and setpoint
    sp = out._sp
    for ua in (12_100, 12_200, 0, 500):  # steady running: same PWM object, no re-creation
        out.apply(cmd(ua=ua))
        assert out._sp is sp and out.ua == ua
    del seen[:]
    out.apply(cmd(enable=False))
    assert seen[0] == ("en", 0)  # disable: enable first
    assert level(EN) == 0 and mean(SP) == 0 and level(GATE) == 0 and not out.enabled


def test_setpoint_clamped_to_full_scale(mock):
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=99_000))
    assert out.duty == 65535 and out.ua == pins.SETPOINT_FULL_SCALE_UA


def test_pulsed_gate_and_back_to_dc(mock):
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=8_000, gate_hz=2_000, gate_duty_u16=45_874))
    g = machine.sim_pwm(GATE)
    assert g.enabled and g.freq == 2_000 and abs(g.duty_u16 - 45_874) <= 2
    assert (out.gate, out.gate_hz, out.gate_duty) == (True, 2_000, 45_874)
    out.apply(cmd(ua=8_000, gate_hz=5_000, gate_duty_u16=30_000))
    assert g.freq == 5_000 and abs(g.duty_u16 - 30_000) <= 2
    out.apply(cmd(ua=8_000))  # plain DC: the gate pin is a GPIO held high
    assert not machine.sim_pwm(GATE).enabled and level(GATE) == 1 and out.gate_hz == 0
    out.apply(cmd(enable=False))
    assert level(GATE) == 0


# --- polarity ---------------------------------------------------------------------------------
def test_polarity_refused_while_current_is_commanded(mock):
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=10_000, polarity=0))
    assert out.set_polarity(1) is False and level(POL) == 0 and out.refused == 1
    # a command that keeps the current and flips polarity: refused, the setpoint held at 0
    assert out.apply(cmd(ua=10_000, polarity=1)) is False
    assert level(POL) == 0 and out.ua == 0 and out.refused == 2
    # at zero it is allowed (the session ramps to zero, waits, then flips)
    assert out.apply(cmd(ua=0, polarity=1)) is True and level(POL) == 1 and out.polarity == 1
    out.apply(cmd(ua=3_000, polarity=1))
    assert out.ua == 3_000
    # disabled: any time
    out.apply(cmd(enable=False, polarity=0))
    assert level(POL) == 0


def test_apply_with_new_polarity_and_zero_setpoint_goes_to_zero_first(mock):
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=5_000))
    assert out.apply(cmd(ua=0, polarity=1)) is True
    assert out.ua == 0 and out.polarity == 1 and out.refused == 0


# --- safe() -----------------------------------------------------------------------------------
def test_safe_drives_enable_low_first_then_the_rest(mock):
    seen = []
    mock(EN, lambda p, v: seen.append(("en", v)))
    mock(SP, lambda p, m: seen.append(("sp", m)), pwm=True)
    mock(GATE, lambda p, m: seen.append(("gate", m)), pwm=True)
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=20_000, gate_hz=1_000, gate_duty_u16=40_000))
    del seen[:]
    out.safe()
    assert seen[0] == ("en", 0)
    assert ("sp", 0) in seen and seen.index(("sp", 0)) > 0
    assert level(EN) == 0 and level(SP) == 0 and level(GATE) == 0 and mean(SP) == 0
    assert machine.sim_pin(SP).mode == machine.Pin.OUT  # a GPIO driving low, not a stopped PWM
    assert (out.enabled, out.ua, out.duty, out.gate) == (False, 0, 0, False)
    assert out.safe_errors == 0


def test_safe_after_a_pwm_deinit_left_the_pin_high(mock):
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=35_000))  # duty above 50 %: a stopped slice leaves the pin high
    out._sp.deinit()
    assert level(SP) == 1  # what rp2 does, and the mock models
    out.safe()
    assert level(SP) == 0 and level(EN) == 0 and mean(SP) == 0


def test_safe_after_a_soft_reset(mock):
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=35_000, gate_hz=1_000, gate_duty_u16=60_000))
    machine.sim_soft_reset()  # PWM slices stop where they were; GPIO levels stay
    assert level(EN) == 1  # still driven: nothing but safe() turns it off
    out.safe()
    assert level(EN) == 0 and level(SP) == 0 and level(GATE) == 0


def test_safe_never_raises_and_attempts_every_step(mock):
    class Broken:
        def value(self, *a):
            raise OSError(5)

        def init(self, *a, **k):
            raise OSError(5)

        def duty_u16(self, *a):
            raise RuntimeError("dead")

        def deinit(self):
            raise RuntimeError("dead")

    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=20_000))
    real_en = out._en
    out._en = Broken()
    out._sp = Broken()
    out.safe()  # must not raise
    assert out.safe_errors == 4  # enable value + init, setpoint duty + deinit
    assert level(SP) == 0 and level(GATE) == 0  # the steps after the broken ones still ran
    assert out._sp is None and not out.enabled
    out._en = real_en
    out.safe()
    assert level(EN) == 0


def test_setpoint_restarts_after_safe(mock):
    out = Output(machine.Pin, machine.PWM)
    out.apply(cmd(ua=10_000))
    out.safe()
    out.apply(cmd(ua=10_000))
    assert machine.sim_pwm(SP).enabled and level(EN) == 1 and out.ua == 10_000


def test_output_drives_the_simulated_plant():
    import simboard

    machine.sim_power_on()
    sb = simboard.Board("palms")
    try:
        out = Output(machine.Pin, machine.PWM)
        out.apply(cmd(ua=10_000))
        vclock.advance(500_000)
        assert sb.state()["true_ua"] == pytest.approx(10_000, abs=100)
        out.safe()
        vclock.advance(20_000)
        assert sb.state()["true_ua"] == 0 and sb.state()["enable"] == 0
    finally:
        sb.close()
        machine.sim_power_on()


# --- board.py ---------------------------------------------------------------------------------
@pytest.fixture
def sim():
    import simboard

    machine.sim_power_on()
    sb = simboard.Board("palms")
    sb.clear_faults()  # the mock keeps bus faults across power-ons
    made = []
    yield sb, made
    for b in made:
        b.close()
    sb.clear_faults()
    sb.close()
    machine.sim_set_unique_id(b"\xe6\x60\x58\x38\x83\x3a\x2c\x21")
    machine.sim_power_on()


def make_board(made):
    import board

    b = board.Board(clock=vclock.ticks_ms)
    made.append(b)
    return b


def test_adc_to_mv_integer_matches_the_divider_formula():
    import board

    for u16 in list(range(0, 65536, 257)) + [65535]:
        exact = u16 * pins.ADC_VREF_MV / 65535 * (pins.DIVIDER_TOP_OHM + pins.DIVIDER_BOTTOM_OHM) / pins.DIVIDER_BOTTOM_OHM
        assert abs(board.adc_to_mv(u16) - exact) <= 0.6  # rounding plus 2**-S
        assert u16 * board._K + board._HALF < 1 << 30
    assert board.adc_to_mv(65535) == 68_006


def test_import_makes_the_output_safe(sim):
    import board

    machine.Pin(EN, machine.Pin.OUT, value=1)
    machine.Pin(GATE, machine.Pin.OUT, value=1)
    machine.Pin(SP, machine.Pin.OUT, value=1)
    importlib.reload(board)
    assert level(EN) == 0 and level(GATE) == 0 and level(SP) == 0


def test_board_builds_everything_from_pins(sim):
    sb, made = sim
    machine.sim_set_unique_id(b"\x01\x02\xab\xcd\x00\xff\x10\x20")
    b = make_board(made)
    assert b.i2c._timeout == pins.I2C_TIMEOUT_US and b.i2c._freq == pins.I2C_FREQ
    assert (b.i2c._scl, b.i2c._sda) == (pins.I2C_SCL, pins.I2C_SDA)
    assert b.serial == "0102ABCD00FF1020"
    assert b.reset_cause == machine.PWRON_RESET and b.reset_cause_name() == "power-on"
    assert level(EN) == 0 and level(pins.PIN_LED) == 0
    assert b.wdt is None and not vclock.wdt_running()  # nothing starts the watchdog by accident
    assert b.init_devices() is True and b.ina_ok and b.display_ok
    assert sb.display.on and sb.ina219.peek(5) == 4096


def test_board_measure_fills_meas(sim):
    sb, made = sim
    b = make_board(made)
    b.init_devices()
    m = supervisor.Meas()
    b.output.apply(cmd(ua=10_000))
    vclock.advance(600_000)
    b.measure(m, 1234)
    s = sb.state()
    assert abs(m.ua - s["true_ua"]) <= 3 and m.err == 0 and m.fresh and not m.ovf
    assert abs(m.mv - s["electrode_mv"]) <= 20  # ADC: 16.6 mV per count
    assert m.hw_limit is False and m.vbus is True and m.loop_us == 1234
    sb.set_usb(host_present=False)
    machine.sim_pin(pins.PIN_HW_LIMIT).drive(0)
    b.measure(m)
    assert m.vbus is False and m.hw_limit is True
    assert b.hw_limit_tripped() and not b.usb_host()
    sb.fault("i2c_nack")
    b.measure(m)
    assert m.err == 5 and not m.fresh


def test_watchdog_only_when_asked(sim):
    sb, made = sim
    bites = []
    machine.sim_set_reset_handler(bites.append)
    try:
        b = make_board(made)
        b.feed()  # nothing to feed: no-op
        w = b.start_watchdog(100)
        assert vclock.wdt_running() and b.start_watchdog(100) is w
        for _ in range(10):
            vclock.advance(50_000)
            b.feed()
        assert bites == []
        vclock.advance(150_000)
        assert bites == [machine.WDT_RESET]
    finally:
        machine.sim_set_reset_handler(None)


def test_board_safe_quiets_everything(sim):
    sb, made = sim
    b = make_board(made)
    b.output.apply(cmd(ua=10_000))
    b.buzzer.play(buzzer.FAULT, vclock.ticks_ms())
    assert sb.panel.buzzing()
    b.safe()
    assert level(EN) == 0 and level(SP) == 0 and not sb.panel.buzzing()


def test_selftest_passes_on_a_healthy_board(sim):
    sb, made = sim
    b = make_board(made)
    assert b.selftest() & 128  # display not started yet
    b.init_devices()
    vclock.advance(30_000)
    assert b.selftest() == 0


def test_selftest_names_each_failure(sim):
    import board

    sb, made = sim
    b = make_board(made)
    b.init_devices()
    vclock.advance(30_000)
    sb.sensor_stuck_ua = 5_000  # current with the output off: a stuck switch
    assert b.selftest() == board.ST_ZERO
    sb.sensor_stuck_ua = None
    sb.ina219.reset()  # brown-out of the sensor
    assert b.selftest() & board.ST_CAL
    assert b.ina.calibrate() and b.selftest() == 0
    sb.ina219.write_reg(0, 0x19C8)  # converter stopped (power-down)
    assert b.selftest() & board.ST_STALE
    b.ina.calibrate()
    machine.sim_pin(pins.PIN_HW_LIMIT).drive(0)
    assert b.selftest() == board.ST_HW_LIMIT
    machine.sim_pin(pins.PIN_HW_LIMIT).drive(1)
    sb.fault("i2c_nack", addr=pins.INA219_ADDR)
    assert b.selftest() == board.ST_SENSOR
    sb.clear_faults()
    assert b.selftest() == 0


def test_selftest_sees_a_button_held_at_boot(sim):
    import board

    sb, made = sim
    machine.sim_pin(pins.PIN_BTN_STOP).drive(0)
    b = make_board(made)
    b.init_devices()
    assert b.selftest() == board.ST_BUTTON
    assert board.ST_NAMES[board.ST_BUTTON.bit_length() - 1] == "button"
