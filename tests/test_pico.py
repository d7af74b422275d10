"""The emulated Pico: our rp2 image on an emulated RP2040 with the reference board around it.

One chip per module (booting costs seconds of wall time); every check reads the chip's own
emulated time or the board's models, never the host's clock.
"""
import json

import pytest

from ionto.pico import Pico


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    state = tmp_path_factory.mktemp("pico")
    p = Pico(state, usb_power=False, fresh=True).start()
    yield p
    p.stop()


def test_image_boots_to_its_repl_on_the_emulated_rp2040(pico):
    out = pico.exec("import sys, os, gc, fsmount\n"
                    "print(sys.implementation._machine)\n"
                    "print(fsmount.state, os.listdir('/'), gc.mem_free() > 100_000)\n")
    lines = out.strip().splitlines()
    assert "RP2040" in lines[0]
    # our frozen _boot.py mounted the (fresh, formatted) filesystem through fsmount
    assert "[]" in lines[1] and lines[1].endswith("True"), out


def test_board_answers_on_i2c_adc_and_output_pins(pico):
    code = """
import time, json, pins
from machine import I2C, Pin, PWM, ADC
i2c = I2C(pins.I2C_ID, scl=Pin(pins.I2C_SCL), sda=Pin(pins.I2C_SDA), freq=pins.I2C_FREQ)
b = bytearray(2)
t0 = time.ticks_us()
i2c.readfrom_mem_into(pins.INA219_ADDR, 0, b)
wire = time.ticks_diff(time.ticks_us(), t0)
cfg = b[0] << 8 | b[1]
en = Pin(pins.PIN_OUTPUT_ENABLE, Pin.OUT, value=0)
Pin(pins.PIN_PULSE_GATE, Pin.OUT, value=1)
pwm = PWM(Pin(pins.PIN_SETPOINT_PWM), freq=pins.SETPOINT_PWM_FREQ, duty_u16=65535 * 10_000 // pins.SETPOINT_FULL_SCALE_UA)
en.value(1)
time.sleep_ms(60)
i2c.readfrom_mem_into(pins.INA219_ADDR, 1, b)
on = (b[0] << 8 | b[1])
adc = ADC(Pin(pins.PIN_ELECTRODE_ADC)).read_u16()
en.value(0)
pwm.duty_u16(0)
time.sleep_ms(30)
i2c.readfrom_mem_into(pins.INA219_ADDR, 1, b)
off = (b[0] << 8 | b[1])
print("@RESULT " + json.dumps({"cfg": cfg, "wire_us": wire, "on": on, "off": off, "adc": adc,
      "limit": Pin(pins.PIN_HW_LIMIT, Pin.IN).value(), "start": Pin(pins.PIN_BTN_START, Pin.IN, Pin.PULL_UP).value()}))
"""
    pico.exec(code)
    r = pico.results[-1]
    assert r["cfg"] == 0x399F  # the INA219 model's power-on configuration
    # a 2-byte register read at 400 kHz: pointer write + read, ~127 us on the wire (driver on top)
    assert 100 <= r["wire_us"] <= 400, r
    # 10 mA commanded through the plant: the shunt register (10 uV LSB over 10 ohm) reads ~10000
    assert 9000 <= r["on"] <= 11000, r
    assert r["off"] < 300, r
    assert r["adc"] > 1000, r  # electrode voltage through the divider while current flows
    assert r["limit"] == 1 and r["start"] == 1  # pulled-up inputs idle high
    assert pico.board.plant.current_ua(pico.board.now_us()) < 300  # the model agrees: output off


def test_a_file_written_at_the_repl_survives_a_restart(tmp_path):
    with Pico(tmp_path, usb_power=False) as p:
        p.put("kept.txt", "written on the emulated flash")
    img = (tmp_path / "flash.img").read_bytes()
    assert b"written on the emulated flash" in img  # the QSPI flash model wrote it through
    with Pico(tmp_path, usb_power=False) as p:
        out = p.exec("print(open('kept.txt').read())")
    assert out.strip() == "written on the emulated flash"


def test_batch_mode_collects_results_and_emulated_time(tmp_path):
    from ionto import pico as pico_mod

    script = tmp_path / "a.py"
    script.write_text("import time\nt0 = time.ticks_us()\ntime.sleep_ms(250)\n"
                      "print('@RESULT {\"slept_us\": %d}' % time.ticks_diff(time.ticks_us(), t0))\n")
    out = tmp_path / "out.json"
    rc = pico_mod.main(["--state-dir", str(tmp_path / "st"), "--exec", str(script), "--json", str(out),
                        "--no-usb-power"])
    assert rc == 0
    rec = json.loads(out.read_text())
    assert 250_000 <= rec["results"][0]["slept_us"] < 252_000  # emulated time, cycle-exact
    assert rec["emulated_s"] > 0.25


def test_an_emulator_that_ends_at_start_is_one_error_not_a_hang(tmp_path, monkeypatch):
    """node (or the emulator) failing at once: start() says so, with where its log is, instead
    of waiting on a port nobody drains any more."""
    import ionto.pico as P

    monkeypatch.setattr(P, "node_exe", lambda: "/bin/false")
    p = Pico(tmp_path, usb_power=False, fresh=True)
    try:
        with pytest.raises(P.PicoError, match="the emulator ended"):
            p.start()
    finally:
        p.stop()
