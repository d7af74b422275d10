# Runs under the MicroPython unix port with hw/sim and firmware on MICROPYPATH:
# the plant, scenarios, panel models and the board on the machine mock. Prints "OK" at the end.
import framebuf
import machine
import vclock
import pins
import plant
import scenario
import simboard
import ssd1306_model


from checkrun import check  # noqa: E402


class RecINA:
    def __init__(self, source):
        self.source = source

    def i2c_write(self, data):
        pass

    def i2c_read(self, n):
        return bytes(n)


try:
    from ina219_model import INA219 as INA
except ImportError:
    INA = RecINA

import checkrun


# every shipped scenario loads
@checkrun.section
def check_every_shipped_scenario_loads():
    global n, names
    names = scenario.names()
    check(len(names) >= 8 and "palms" in names, "scenario names %r" % (names,))
    for n in names:
        scenario.load(n)


# a 40-minute palms session read at 500 Hz: reaches and holds the setpoint, hydrates
@checkrun.section
def check_a_40_minute_palms_session_read_at_500_hz_reaches():
    global T, i, p, r0, sc, t
    T = [0]
    sc = plant._scn.load("palms")
    p = plant.Plant({"name": "palms_100nF", "load": dict(sc["load"], c_out_nf=100.0), "events": []},
                    clock=lambda: T[0])  # the spike that trips the limiter needs a big node capacitance
    p.set_gate(1)
    p.set_duty(10000 * 65535 // pins.SETPOINT_FULL_SCALE_UA)
    p.set_enable(1)
    r0 = p.load_ohm()
    t = 0
    while t < 2_400_000_000:
        t += 2000
        T[0] = t
        i = p.current_ua(t)
    check(abs(i - 10000) < 20, "current %d" % i)
    check(p.load_ohm() < r0 - 2000, "hydration %d -> %d" % (r0, p.load_ohm()))


# re-immersion with the setpoint left on trips the limiter
@checkrun.section
def check_re_immersion_with_the_setpoint_left_on_trips_the():
    p.lift()
    T[0] += 20_000
    check(p.electrode_mv() == pins.COMPLIANCE_MV, "compliance")
    p.immerse()
    check(p.hw_limit_tripped, "limiter")


# the board on the machine mock
@checkrun.section
def check_the_board_on_the_machine_mock():
    global adc, b, en, pwm, s
    machine.sim_power_on()
    b = simboard.Board("hand_lifted", ina219_cls=INA)
    pwm = machine.PWM(machine.Pin(pins.PIN_SETPOINT_PWM), freq=pins.SETPOINT_PWM_FREQ, duty_u16=16383)
    machine.Pin(pins.PIN_PULSE_GATE, machine.Pin.OUT, value=1)
    machine.PWM(machine.Pin(pins.PIN_CLAMP_PWM), freq=pins.CLAMP_PWM_FREQ, duty_u16=65535)  # clamp at the rail
    en = machine.Pin(pins.PIN_OUTPUT_ENABLE, machine.Pin.OUT, value=1)
    vclock.advance(500_000)
    s = b.state()
    check(abs(s["true_ua"] - 10000) < 20, "board current %r" % (s,))
    check(b._shunt_source(vclock.now_us())[0] == s["true_ua"] * pins.SHUNT_MILLIOHM // 1000, "shunt")
    adc = machine.ADC(pins.PIN_ELECTRODE_ADC)
    check(adc.read_u16() > 40000, "adc")


# display: draw with framebuf, send it as micropython-lib's driver does
@checkrun.section
def check_display_draw_with_framebuf_send_it_as_micropytho():
    global buf, c, fb, i2c, txt
    i2c = machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA))
    for c in (0xAE, 0x20, 0x00, 0xA1, 0xC8, 0x8D, 0x14, 0xAF, 0x21, 0, 127, 0x22, 0, 7):
        i2c.writeto(pins.SSD1306_ADDR, bytes((0x80, c)))
    buf = bytearray(1024)
    fb = framebuf.FrameBuffer(buf, 128, 64, framebuf.MONO_VLSB)
    fb.text("10.0 mA", 0, 0, 1)
    i2c.writevto(pins.SSD1306_ADDR, (b"\x40", buf))
    check(bytes(b.display.frame) == bytes(buf), "frame")
    txt = b.display.to_text()
    check("#" in txt.split("\n")[3], "text rendering")


# button bounce reaches the firmware's IRQ
@checkrun.section
def check_button_bounce_reaches_the_firmware_s_irq():
    global btn, edges, k, r
    edges = []
    btn = machine.Pin(pins.PIN_BTN_START, machine.Pin.IN, machine.Pin.PULL_UP)
    btn.irq(lambda q: edges.append(q.value()), machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING)
    b.handle({"cmd": "press", "button": "START", "hold_ms": 100})
    for k in range(200):
        vclock.advance(1000)
    check(len(edges) >= 6 and edges[-1] == 1, "bounce %r" % (edges,))
    r = b.handle({"cmd": "frame"})
    check(r["ok"] and len(r["hex"]) == 2048, "frame cmd")
    b.close()


if checkrun.run():
    print("OK")
