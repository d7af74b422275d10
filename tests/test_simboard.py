"""The simulated board on the real machine mock and vclock: pins drive the plant, sensors read it."""
import errno

import machine
import pins
import pytest
import simboard
import vclock

from helpers import drive_outputs
from conftest import mpy_section, mpy_sections

try:  # the INA219 register model (its own engineer's file); a recorder until it exists
    from ina219_model import INA219 as _INA
except ImportError:
    _INA = None


class RecINA:
    def __init__(self, source):
        self.source = source

    def i2c_write(self, data):
        pass

    def i2c_read(self, n):
        return bytes(n)


@pytest.fixture
def board():
    machine.sim_power_on()
    b = simboard.Board("palms", ina219_cls=RecINA)
    yield b
    b.close()


outputs = drive_outputs


def test_pins_drive_plant_and_sensors_read_it(board):
    pwm, en = outputs()
    vclock.advance(500_000)
    s = board.state()
    assert s["enable"] == 1 and s["gate"] == 1 and s["true_ua"] == pytest.approx(10_000, abs=20)
    shunt_uv, bus_mv = board.ina219.source(vclock.now_us())
    assert shunt_uv == s["true_ua"] * pins.SHUNT_MILLIOHM // 1000 and bus_mv == 0
    adc = machine.ADC(pins.PIN_ELECTRODE_ADC)
    mv_at_adc = adc.read_u16() * pins.ADC_VREF_MV / 65535
    want = s["electrode_mv"] * pins.DIVIDER_BOTTOM_OHM / (pins.DIVIDER_TOP_OHM + pins.DIVIDER_BOTTOM_OHM)
    assert mv_at_adc == pytest.approx(want, abs=2)
    en.value(0)
    vclock.advance(10_000)
    assert board.state()["true_ua"] == 0


def test_deinit_leaving_pin_high_is_full_scale(board):
    pwm, en = outputs()
    pwm.duty_u16(65535)
    pwm.deinit()  # slice stops with the pin high: the filter sees 3.3 V
    assert board.plant.duty == 65535


def test_limiter_pin_follows_plant(board):
    lim = machine.Pin(pins.PIN_HW_LIMIT, machine.Pin.IN, machine.Pin.PULL_UP)
    trips = []
    lim.irq(lambda p: trips.append(p.value()), machine.Pin.IRQ_FALLING)
    board.handle({"cmd": "scenario", "name": "short_one_tray"})
    pwm, en = outputs(38_000)
    assert lim.value() == 1
    vclock.advance(100_000)  # nobody reads the sensor: the board's clock hook watches
    assert lim.value() == 0 and trips == [0] and board.state()["hw_limit"]
    en.value(0)
    assert lim.value() == 1


def test_vbus_and_isolation(board):
    vbus = machine.Pin(pins.PIN_VBUS_SENSE, machine.Pin.IN)
    assert vbus.value() == 1 and board.state()["isolated_usb"] is False
    r = board.handle({"cmd": "usb", "host_present": False, "isolated": True})
    assert r["ok"] and vbus.value() == 0 and board.isolated_usb


def test_display_through_i2c(board):
    i2c = machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA), freq=pins.I2C_FREQ)
    assert pins.SSD1306_ADDR in i2c.scan() and pins.INA219_ADDR in i2c.scan()
    for c in (0xAE, 0x20, 0x00, 0x8D, 0x14, 0xAF, 0x21, 0, 127, 0x22, 0, 7):
        i2c.writeto(pins.SSD1306_ADDR, bytes((0x80, c)))
    buf = bytearray(1024)
    buf[0] = 0x01
    i2c.writevto(pins.SSD1306_ADDR, (b"\x40", buf))
    f = board.handle({"cmd": "frame"})
    assert f["ok"] and f["on"] and bytes.fromhex(f["hex"]) == bytes(buf) and f["frames_written"] == 1


def test_faults(board):
    i2c = machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA))
    assert board.handle({"cmd": "fault", "kind": "i2c_nack"})["ok"]
    with pytest.raises(OSError):
        i2c.writeto(pins.SSD1306_ADDR, b"\x80\xaf")
    board.handle({"cmd": "fault", "kind": "i2c_stuck"})
    with pytest.raises(OSError) as e:
        i2c.writeto(pins.SSD1306_ADDR, b"\x80\xaf")
    assert e.value.args[0] == errno.ETIMEDOUT
    board.handle({"cmd": "clear_faults"})
    i2c.writeto(pins.SSD1306_ADDR, b"\x80\xaf")
    pwm, en = outputs()
    vclock.advance(300_000)
    board.handle({"cmd": "fault", "kind": "sensor_stuck", "value": 1234})
    assert board.ina219.source(vclock.now_us())[0] == 1234 * pins.SHUNT_MILLIOHM // 1000
    assert "sensor_stuck" in board.state()["faults"]
    board.handle({"cmd": "fault", "kind": "output_dead"})
    vclock.advance(100_000)
    assert board.state()["true_ua"] == 0
    board.handle({"cmd": "fault", "kind": "clear"})
    en.value(0)
    board.handle({"cmd": "fault", "kind": "output_stuck_on"})
    vclock.advance(100_000)
    assert board.state()["true_ua"] == pytest.approx(10_000, abs=20)
    assert board.handle({"cmd": "fault", "kind": "meteor"})["ok"] is False


def test_buttons_and_state_commands(board):
    start = machine.Pin(pins.PIN_BTN_START, machine.Pin.IN, machine.Pin.PULL_UP)
    assert board.handle({"cmd": "hold", "button": "START"})["ok"]
    vclock.advance(20_000)
    assert start.value() == 0
    board.handle({"cmd": "release", "button": "START"})
    vclock.advance(20_000)
    assert start.value() == 1
    assert board.handle({"cmd": "press", "button": "MODE", "hold_ms": 80})["ok"]
    s = board.handle({"cmd": "state"})
    for k in ("now_us", "true_ua", "electrode_mv", "enable", "polarity", "gate", "setpoint_duty", "hw_limit",
              "contact", "led", "buzzer", "scenario", "load_ohm"):
        assert k in s
    r = board.handle({"cmd": "scenario", "data": {"name": "inline", "load": {"contact": "lifted"}}})
    assert r["ok"] and r["scenario"] == "inline" and board.state()["contact"] == "lifted"
    assert board.handle({"cmd": "scenario", "name": "nope"})["ok"] is False
    assert board.handle({"cmd": "accel"})["ok"] is False


def test_power_on_restores_board_pins(board):
    pwm, en = outputs()
    vclock.advance(300_000)
    machine.sim_power_on()
    board.power_on()
    assert machine.Pin(pins.PIN_HW_LIMIT, machine.Pin.IN).value() == 1
    assert machine.Pin(pins.PIN_VBUS_SENSE, machine.Pin.IN).value() == 1
    assert machine.Pin(pins.PIN_BTN_STOP, machine.Pin.IN).value() == 1
    s = board.state()
    assert s["enable"] == 0 and s["true_ua"] == 0 and s["setpoint_duty"] == 0


def test_with_the_ina219_model_when_present():
    machine.sim_power_on()
    b = simboard.Board("palms", ina219_cls=_INA or RecINA)
    try:
        outputs()
        vclock.advance(300_000)
        shunt_uv, bus = b._shunt_source(vclock.now_us())
        assert shunt_uv == pytest.approx(100_000, abs=300)
    finally:
        b.close()


@pytest.mark.parametrize("section", mpy_sections("plant_checks.py"))
def test_plant_and_board_under_micropython(section):
    mpy_section("plant_checks.py", section)


def test_sensing_faults_and_the_second_channel(board):
    pwm, en = outputs()
    vclock.advance(300_000)
    s = board.state()
    assert s["true_ua"] == pytest.approx(10_000, abs=20)
    assert s["sense_ua"] == pytest.approx(10_000, abs=20)  # RS2 / ADC1: the load current
    adc1 = machine.ADC(machine.Pin(pins.PIN_SENSE_ADC)).read_u16()
    assert adc1 * pins.ADC_VREF_MV * 1_000_000 // (65535 * pins.SENSE_MILLIOHM) == pytest.approx(10_000, abs=30)
    src = board.ina219.source
    t = vclock.now_us()
    assert board.handle({"cmd": "fault", "kind": "sensor_gain", "value": 0.5})["ok"]
    assert src((t - 1000, t))[0] == pytest.approx(5_000 * pins.SHUNT_MILLIOHM // 1000, abs=20)
    board.handle({"cmd": "fault", "kind": "sensor_gain", "value": 1.5})
    assert src((t - 1000, t))[0] == pytest.approx(15_000 * pins.SHUNT_MILLIOHM // 1000, abs=30)
    board.handle({"cmd": "clear_faults"})
    board.handle({"cmd": "fault", "kind": "sensor_noise", "value": 3_000})
    v = {src((t - 1000, t))[0] for _ in range(20)}
    assert len(v) > 5 and all(abs(x - 100_000) <= 30_000 for x in v)
    board.handle({"cmd": "clear_faults"})
    board.handle({"cmd": "fault", "kind": "sensor_drift", "value": 1_000})
    vclock.advance(1_000_000)
    t = vclock.now_us()
    assert src((t - 1000, t))[0] == pytest.approx(11_000 * pins.SHUNT_MILLIOHM // 1000, abs=50)
    board.handle({"cmd": "fault", "kind": "sensor_frozen", "value": 2_000})
    assert board.ina219.stuck_shunt_reg == 2_000 * pins.SHUNT_MILLIOHM // 10_000
    assert {"sensor_drift", "sensor_frozen"} <= set(board.state()["faults"])
    board.handle({"cmd": "clear_faults"})
    assert board.state()["faults"] == []
    assert board.state()["sense_ua"] == pytest.approx(10_000, abs=20)  # untouched by them all
