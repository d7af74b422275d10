"""Nurse panel models: SSD1306 controller, PNG frames, buttons with bounce, buzzer and LED."""
import struct
import zlib

import framepng
import machine
import pins
import pytest
import ssd1306_model
import vclock
from panel import BUTTONS, Panel

# What micropython-lib's ssd1306.SSD1306_I2C sends: every command byte in its own 0x80 write,
# the buffer as one 0x40 data write (writevto).
INIT = [0xAE, 0x20, 0x00, 0x40, 0xA1, 0xA8, 63, 0xC8, 0xD3, 0x00, 0xDA, 0x12, 0xD5, 0x80,
        0xD9, 0xF1, 0xDB, 0x30, 0x81, 0xFF, 0xA4, 0xA6, 0xAD, 0x30, 0x8D, 0x14, 0xAF]


def cmd(d, *bs):
    for b in bs:
        d.i2c_write(bytes((0x80, b)))


def show(d, buf):
    cmd(d, 0x21, 0, 127, 0x22, 0, 7)
    d.i2c_write(b"\x40" + bytes(buf))


def fb_pixel(buf, x, y):  # framebuf MONO_VLSB
    buf[(y >> 3) * 128 + x] |= 1 << (y & 7)


@pytest.fixture
def display():
    d = ssd1306_model.SSD1306()
    cmd(d, *INIT)
    return d


def test_driver_init_sequence(display):
    d = display
    assert d.on and d.contrast == 0xFF and d.mode == 0 and d.charge_pump
    assert d.seg_remap == 1 and d.com_reverse == 1 and d.mux == 63
    assert d.frames_written == 0


def test_show_writes_gddram_and_renders_upright(display):
    buf = bytearray(1024)
    fb_pixel(buf, 0, 0)
    fb_pixel(buf, 127, 63)
    fb_pixel(buf, 5, 10)
    show(display, buf)
    assert display.frame == buf and display.frames_written == 1
    rows = display.to_rows()
    assert len(rows) == 64 and all(len(r) == 128 for r in rows)
    assert rows[0][0] and rows[63][127] and rows[10][5]
    assert sum(map(sum, rows)) == 3
    text = display.to_text().splitlines()
    assert text[10][5] == "#" and text[10][4] == "."
    # a second show wraps the write pointer back to the window's start
    buf2 = bytearray(1024)
    show(display, buf2)
    assert display.frame == buf2 and display.frames_written == 2


def test_power_contrast_invert_rotate(display):
    buf = bytearray(1024)
    fb_pixel(buf, 0, 0)
    show(display, buf)
    cmd(display, 0x81, 0x10)
    assert display.contrast == 0x10
    cmd(display, 0xA7)  # invert
    assert not display.to_rows()[0][0] and display.to_rows()[0][1]
    cmd(display, 0xA6, 0xA0, 0xC0)  # driver's rotate(0): turned 180 degrees
    assert display.to_rows()[63][127] and not display.to_rows()[0][0]
    cmd(display, 0xAE)
    assert not display.on and not any(map(any, display.to_rows()))
    assert display.to_rows(panel=False)[0][0]
    assert display.i2c_read(1) == b"\x40"


def test_page_mode_and_stream_control_byte():
    d = ssd1306_model.SSD1306()
    # Co=0 command stream: page addressing, page 2, column 0x15
    d.i2c_write(bytes((0x00, 0x20, 0x02, 0xB2, 0x05, 0x11)))
    d.i2c_write(bytes((0x40, 0xFF, 0x01)))
    assert d.frame[2 * 128 + 0x15] == 0xFF and d.frame[2 * 128 + 0x16] == 0x01


def test_vertical_addressing():
    d = ssd1306_model.SSD1306()
    d.i2c_write(bytes((0x00, 0x20, 0x01, 0x21, 10, 11, 0x22, 0, 1)))
    d.i2c_write(bytes((0x40, 1, 2, 3, 4, 5)))
    assert [d.frame[10], d.frame[128 + 10], d.frame[11], d.frame[128 + 11], d.frame[10]] == [5, 2, 3, 4, 5]


def test_png_round_trip(tmp_path, display):
    buf = bytearray(1024)
    fb_pixel(buf, 3, 2)
    show(display, buf)
    path = framepng.save_png(str(tmp_path / "f.png"), display)
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (512, 256)
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    raw = zlib.decompress(idat)
    stride = 1 + 512 * 3
    assert len(raw) == stride * 256

    def px(x, y):
        o = y * stride + 1 + x * 3
        return raw[o:o + 3] != b"\x00\x00\x00"

    assert px(3 * 4, 2 * 4) and px(3 * 4 + 3, 2 * 4 + 3) and not px(0, 0) and not px(4 * 4, 2 * 4)
    with pytest.raises(ValueError):
        framepng.frame_png(b"\x00" * 10)


@pytest.fixture
def panel():
    machine.sim_power_on()
    p = Panel(machine, vclock, seed=3)
    yield p
    p.closed = True


def edges_of(name):
    log = []
    pin = machine.Pin(BUTTONS[name], machine.Pin.IN, machine.Pin.PULL_UP)
    pin.irq(lambda q: log.append((vclock.now_us(), q.value())), machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)
    return pin, log


def test_press_bounces_then_settles(panel):
    pin, log = edges_of("START")
    assert pin.value() == 1
    t0 = vclock.now_us()
    panel.press("START", hold_ms=120)
    vclock.advance(60_000)
    assert pin.value() == 0 and panel.is_down("START")
    press_edges = [e for e in log if e[0] < t0 + 60_000]
    assert len(press_edges) >= 5  # several edges, not one clean one
    assert press_edges[-1][0] - t0 <= 6_000
    vclock.advance(100_000)
    assert pin.value() == 1
    rel = [e for e in log if e[0] >= t0 + 120_000]
    assert len(rel) >= 5 and rel[-1][1] == 1 and rel[-1][0] - (t0 + 120_000) <= 6_000


def test_bounce_is_seeded(panel):
    def trace(seed):
        machine.sim_power_on()
        p = Panel(machine, vclock, seed=seed)
        pin, log = edges_of("UP")
        p.press("UP", 50)
        vclock.advance(100_000)
        p.closed = True
        return log

    assert trace(5) == trace(5)
    assert trace(5) != trace(6)


def test_hold_release_and_unknown(panel):
    pin, log = edges_of("STOP")
    panel.hold("stop")
    vclock.advance(1_000_000)
    assert pin.value() == 0
    panel.release("STOP")
    vclock.advance(10_000)
    assert pin.value() == 1
    with pytest.raises(ValueError, match="unknown button"):
        panel.press("PANIC")


def test_buzzer_and_led_recorded(panel):
    bz = machine.PWM(machine.Pin(pins.PIN_BUZZER), freq=2_000, duty_u16=32768)
    t1 = vclock.now_us()
    vclock.advance(500)
    bz.duty_u16(0)
    assert panel.buzzer_events() == [(t1, 2_000, 32768), (t1 + 500, 2_000, 0)]
    assert not panel.buzzing()
    led = machine.Pin(pins.PIN_LED, machine.Pin.OUT, value=0)
    for k in range(300):
        led.toggle()
        vclock.advance(10)
    ev = panel.led_events()
    assert len(ev) == 256 and ev[-1][1] == 0 and panel.led == 0
    assert panel.led_events(2) == ev[-2:]
