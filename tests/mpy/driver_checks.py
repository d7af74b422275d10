# The hardware-facing firmware modules under the MicroPython unix port, on the simulated board
# (run by tests/test_fw_panel.py with hw/sim and firmware on MICROPYPATH). Prints
# "driver_checks: all ok" at the end; any failed check raises and exits non-zero.
import framebuf
import micropython
import time
import machine
import vclock
import pins
import simboard
import supervisor
import board
import buttons
import buzzer
from output import ua_to_duty

from checkrun import check


def cmd(ua, enable=True, polarity=0):
    c = supervisor.Cmd()
    c.enable = enable
    c.ua = ua
    c.duty = ua_to_duty(ua)
    c.polarity = polarity
    c.gate = enable
    c.gate_duty_u16 = 65535
    return c


vclock.strict = True
machine.sim_power_on()
sb = simboard.Board("palms")
b = board.Board()
check(b.init_devices(), "INA219 and display answer")
check(sb.ina219.peek(5) == 4096 and sb.ina219.peek(0) == 0x19CD, "calibration and config written")
check(sb.display.on, "display on")

import checkrun


# --- INA219 reads the model's current within 1 LSB ------------------------------------------
@checkrun.section
def check_ina219_reads_the_model_s_current_within_1_lsb():
    global got, k, ua
    for ua in (0, 250, 1_000, 5_000, 12_345, 20_000, 29_000):
        sb.sensor_stuck_ua = ua  # the model's input, whatever flows
        for k in range(5):
            time.sleep_ms(2)
            got = b.ina.read_shunt_ua()
            check(b.ina.error == 0 and b.ina.fresh, "good fresh reading at %d uA" % ua)
            check(abs(got - ua) <= 1, "INA219 %d uA read as %d" % (ua, got))
    sb.sensor_stuck_ua = None


# --- no allocation on the hot path ------------------------------------------------------------
@checkrun.section
def check_no_allocation_on_the_hot_path():
    global errs, hot, m, res, run, v
    m = supervisor.Meas()
    run = cmd(10_000)
    b.output.apply(run)
    time.sleep_ms(500)
    res = [0] * 4


    def hot(n):
        i = 0
        bad = 0
        ina = b.ina
        out = b.output
        btn = b.buttons
        bz = b.buzzer
        micropython.heap_lock()
        try:
            while i < n:
                time.sleep_us(2_000)
                if i & 1:
                    ua = ina.read_shunt_ua()
                    if ina.error or not ina.fresh or abs(ua - 10_000) > 200:
                        bad += 1
                else:
                    b.measure(m, 123)
                    if m.err or not m.fresh or abs(m.ua - 10_000) > 200:
                        bad += 1
                out.apply(run)
                now = time.ticks_ms()
                btn.poll(now)
                btn.take()
                bz.tick(now)
                b.display.step()
                i += 1
        finally:
            micropython.heap_unlock()
        res[0] = bad


    hot(300)
    check(res[0] == 0, "steady readings near 10 mA")
    check(m.err == 0 and m.fresh and abs(m.ua - 10_000) < 200 and m.mv > 0 and m.loop_us == 123, "measure fills meas %r" % ((m.err, m.fresh, m.ua, m.mv, m.loop_us),))

    # an I2C error under the heap lock: reported through error, no exception escapes read_shunt_ua
    sb.fault("i2c_nack", addr=pins.INA219_ADDR)
    errs = [0, 0]
    try:
        micropython.heap_lock()
        try:
            v = b.ina.read_shunt_ua()
        finally:
            micropython.heap_unlock()
        errs[0] = v
        errs[1] = b.ina.error
    except MemoryError:
        errs[1] = -1  # the mock's OSError could not be allocated under the lock: not the driver
    sb.clear_faults()
    check(errs == [-1_000_000, 5], "I2C error visible to the caller as EIO (%r)" % (errs,))
    b.ina.read_shunt_ua()
    check(b.ina.read_shunt_ua() != -1_000_000 and b.ina.error == 0, "recovers after the bus does")


# --- output.safe() ----------------------------------------------------------------------------
@checkrun.section
def check_output_safe():
    global ok
    b.output.apply(cmd(35_000))  # duty above 50 %: a stopped PWM slice would leave the pin high
    time.sleep_ms(2)
    b.output._sp.deinit()
    check(machine.sim_pin(pins.PIN_SETPOINT_PWM).value == 1, "deinit left the setpoint pin high")
    b.output.safe()
    check(machine.sim_pin(pins.PIN_OUTPUT_ENABLE).value == 0, "enable low after safe")
    check(machine.sim_pin(pins.PIN_SETPOINT_PWM).value == 0, "setpoint pin low after safe")
    check(machine.sim_pwm(pins.PIN_SETPOINT_PWM).mean_u16 == 0, "setpoint duty 0 after safe")
    check(machine.sim_pin(pins.PIN_PULSE_GATE).value == 0, "gate low after safe")
    time.sleep_ms(50)
    check(sb.state()["true_ua"] == 0, "no current after safe")

    # safe() with the heap locked (a MemoryError path): still safe, still no exception
    b.output.apply(cmd(35_000))
    time.sleep_ms(2)
    micropython.heap_lock()
    try:
        b.output.safe()
        ok = True
    except Exception:
        ok = False
    finally:
        micropython.heap_unlock()
    check(ok, "safe() raised under the heap lock")
    # (the mock's PWM calls allocate, so some steps fail here; the GPIO steps still make it safe)
    check(machine.sim_pin(pins.PIN_OUTPUT_ENABLE).value == 0 and machine.sim_pin(pins.PIN_SETPOINT_PWM).value == 0,
          "safe under the heap lock leaves enable and setpoint low")


# --- display renders into the SSD1306 model --------------------------------------------------
@checkrun.section
def check_display_renders_into_the_ssd1306_model():
    global _, d, glyphs, sent, shows, steps


    def glyphs(s):
        fb_buf = bytearray(128)
        fb = framebuf.FrameBuffer(fb_buf, 128, 8, framebuf.MONO_VLSB)
        fb.text(s, 0, 0, 1)
        return fb_buf


    def shows(line, s, inverted=False):
        want = glyphs(s)
        got = sb.display.frame[line * 128:(line + 1) * 128]
        if inverted:
            want = bytearray(x ^ 0xFF for x in want)
        return got == want


    d = b.display
    d.running("TREAT", 1425, 15_000, 14_950, 0)
    check(d.show(), "show sends the page")
    check(shows(0, "TREAT         A+", True), "header line, inverted")
    check(shows(1, "left       23:45"), "time left mm:ss")
    check(shows(2, "set      15.0 mA"), "set mA with one decimal")
    check(shows(3, "now      15.0 mA"), "actual mA rounded to one decimal")
    check(sb.display.on, "display on")

    # only what changed goes on the wire, chunk by chunk
    sent = b.oled.chunks_sent
    d.running("TREAT", 1424, 15_000, 14_950, 0)
    steps = 0
    while d.step():
        steps += 1
    check(shows(1, "left       23:44"), "time left updated")
    check(1 <= b.oled.chunks_sent - sent <= 2, "a one-digit change costs at most two chunks (%d)" % (b.oled.chunks_sent - sent))
    sent = b.oled.chunks_sent
    d.running("TREAT", 1424, 15_000, 14_950, 0)
    check(not b.oled.dirty() and b.oled.chunks_sent == sent, "same content: nothing redrawn")

    d.running("TREAT", 600, 8_000, 7_960, 1, pulsed=True)
    d.show()
    check(shows(0, "TREAT         B+", True) and shows(2, "avg set   8.0 mA"), "pulsed shows avg and B+")
    d.limited(600, 14_200, 18_000, "skin resist high", 0)
    d.show()
    check(shows(2, "14.2 of 18.0 mA") and shows(3, "skin resist high"), "limited page")
    d.paused(600)
    d.show()
    check(shows(0, "PAUSED", True) and shows(1, "Contact lost -") and shows(2, "put hand back") and shows(3, "in water"),
          "paused page")
    d.fault(5)  # limits.F_SHORT
    d.show()
    check(shows(0, "SHORT CIRCUIT", True) and shows(1, "check trays"), "fault in words")
    check(d.text()[7] == "STOP  clear", "fault footer")
    d.confirm("Hands", 15_000, 1_200)
    d.show()
    check(shows(4, "START to confirm"), "confirm page")
    d.idle("Hands", 15_000, 1_200)
    d.show()
    check(shows(0, "READY", True) and shows(1, "Hands"), "idle page")
    d.ended("DONE", "time complete", 310)
    d.show()
    check(shows(2, "dose  310 mA.min"), "done page")

    # a display I2C error: recorded, retried, never raised
    d.message("SELF-TEST", "checking the current sensor")
    sb.fault("i2c_nack", addr=pins.SSD1306_ADDR)
    for _ in range(10):  # the changed lines are drawn into the frame first, a line per step
        d.step()
        if b.oled.error:
            break
    check(b.oled.error != 0 and b.oled.dirty(), "display error recorded, page kept dirty")
    sb.clear_faults()
    check(d.show() and shows(0, "SELF-TEST", True), "display recovers")


# --- buttons: injected bounce is exactly one press ------------------------------------------
@checkrun.section
def check_buttons_injected_bounce_is_exactly_one_press():
    global i, k, presses, st
    presses = []
    sb.panel.press("START", hold_ms=150)
    sb.panel.press("UP", hold_ms=100, at_us=vclock.now_us() + 400_000)
    for i in range(400):
        time.sleep_ms(2)
        b.buttons.poll(time.ticks_ms())
        k = b.buttons.take()
        if k:
            presses.append(k)
    check(presses == [buttons.START, buttons.UP], "bounce -> one press each (%r)" % (presses,))
    check(b.buttons.edges >= 8, "bounce edges reached the IRQ handler")
    st = machine.sim_pin(pins.PIN_BTN_MODE)
    st.bounce(0, edges=9, span_us=5_000)
    presses = []
    for i in range(60):
        time.sleep_ms(2)
        b.buttons.poll(time.ticks_ms())
        k = b.buttons.take()
        if k:
            presses.append(k)
    st.bounce(1, edges=7, span_us=4_000)
    for i in range(60):
        time.sleep_ms(2)
        b.buttons.poll(time.ticks_ms())
        k = b.buttons.take()
        if k:
            presses.append(k)
    check(presses == [buttons.MODE], "machine bounce() press and release -> one press")


# --- buzzer -----------------------------------------------------------------------------------
@checkrun.section
def check_buzzer():
    global i, on, t0
    t0 = vclock.now_us()
    b.buzzer.play(buzzer.END, time.ticks_ms())
    for i in range(1000):
        time.sleep_ms(2)
        b.buzzer.tick(time.ticks_ms())
    on = [e for e in sb.panel.buzzer_events() if e[0] >= t0 and e[2] > 0]
    check(len(on) == 3 and not sb.panel.buzzing(), "end: three beeps")


# --- board odds and ends ----------------------------------------------------------------------
@checkrun.section
def check_board_odds_and_ends():
    check(len(b.serial) == 16 and b.reset_cause == machine.PWRON_RESET, "serial and reset cause")
    check(b.wdt is None and not vclock.wdt_running(), "no watchdog unless asked")
    time.sleep_ms(30)
    check(b.selftest() == 0, "self-test passes on the healthy board (%d)" % b.selftest())
    sb.sensor_stuck_ua = 3_000
    check(b.selftest() == board.ST_ZERO, "self-test sees current with the output off")
    sb.sensor_stuck_ua = None
    b.close()
    sb.close()


if checkrun.run():
    print("driver_checks: all ok (%d checks)" % checkrun.count())
