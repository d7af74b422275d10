"""Nurse panel drivers: debounced buttons and buzzer on the mock and panel model (CPython), and
the driver checks under the MicroPython unix port (display, SSD1306, heap-locked reads)."""
import pytest

import machine
import pins
import vclock
from conftest import MPY_TESTS, mpy_section, mpy_sections
from test_fw_output import install_fake_framebuf

install_fake_framebuf()

import buttons  # noqa: E402
import buzzer  # noqa: E402
from buttons import Buttons  # noqa: E402
from buzzer import Buzzer  # noqa: E402
from panel import Panel  # noqa: E402

ORDER = (pins.PIN_BTN_START, pins.PIN_BTN_STOP, pins.PIN_BTN_UP, pins.PIN_BTN_DOWN, pins.PIN_BTN_MODE)


@pytest.fixture
def panel():
    machine.sim_power_on()
    p = Panel(machine, vclock, seed=7)
    made = []
    yield p, made
    for b in made:
        b.close()
    p.closed = True
    vclock.set_boot_offset(0)
    machine.sim_power_on()


def make_buttons(made, **kw):
    b = Buttons(machine.Pin, ORDER, clock=vclock.ticks_ms, **kw)
    made.append(b)
    return b


def presses(b, ms, step_ms=2):
    """The loop: advance virtual time in ticks, poll, collect press masks and long presses."""
    got = []
    longs = 0
    for _ in range(ms // step_ms):
        vclock.advance(step_ms * 1000)
        b.poll(vclock.ticks_ms())
        m = b.take()
        if m:
            got.append(m)
        longs |= b.take_long()
    return got, longs


# --- buttons ----------------------------------------------------------------------------------
def test_bits_match_the_session():
    import session

    assert (buttons.START, buttons.STOP, buttons.UP, buttons.DOWN, buttons.MODE) == (
        session.BTN_START, session.BTN_STOP, session.BTN_UP, session.BTN_DOWN, session.BTN_MODE)


def test_a_bouncing_press_is_exactly_one_press(panel):
    p, made = panel
    b = make_buttons(made)
    p.press("START", hold_ms=150)
    got, longs = presses(b, 400)
    assert got == [buttons.START] and longs == 0
    assert b.edges >= 6  # the bounce really reached the handler
    assert b.held_mask() == 0


@pytest.mark.parametrize("name,bit", [("START", 1), ("STOP", 2), ("UP", 4), ("DOWN", 8), ("MODE", 16)])
def test_every_button_many_times(panel, name, bit):
    p, made = panel
    b = make_buttons(made)
    for _ in range(8):  # seeded bounce differs each press
        p.press(name, hold_ms=80)
        got, _ = presses(b, 250)
        assert got == [bit]


def test_injected_chatter_on_press_and_release(panel):
    p, made = panel
    b = make_buttons(made)
    st = machine.sim_pin(pins.PIN_BTN_UP)
    st.bounce(0, edges=9, span_us=5_000)  # press: 9-10 edges in 5 ms
    got, _ = presses(b, 100)
    assert got == [buttons.UP] and b.held_mask() == buttons.UP
    st.bounce(1, edges=7, span_us=4_000)  # release: chatter must not read as another press
    got, _ = presses(b, 100)
    assert got == [] and b.held_mask() == 0


def test_a_short_glitch_is_not_a_press(panel):
    p, made = panel
    b = make_buttons(made)
    st = machine.sim_pin(pins.PIN_BTN_MODE)
    st.drive(0)
    vclock.advance(5_000)  # 5 ms low: below the 20 ms debounce
    st.drive(1)
    got, _ = presses(b, 100)
    assert got == []


def test_polled_coarsely_still_one_press(panel):
    p, made = panel
    b = make_buttons(made)
    p.press("DOWN", hold_ms=200)
    got, _ = presses(b, 500, step_ms=10)
    assert got == [buttons.DOWN]


def test_poll_alone_debounces_when_irqs_are_lost(panel):
    p, made = panel
    b = make_buttons(made)
    for pin in b._pins:
        pin.irq(None)  # as if the schedule queue had dropped every edge
    p.press("START", hold_ms=150)
    got, _ = presses(b, 400)
    assert got == [buttons.START] and b.edges == 0


def test_long_press_once_per_hold(panel):
    p, made = panel
    b = make_buttons(made)
    p.hold("STOP")
    got, longs = presses(b, 3_000)
    assert got == [buttons.STOP] and longs == buttons.STOP
    got, longs = presses(b, 2_000)
    assert got == [] and longs == 0
    p.release("STOP")
    got, longs = presses(b, 100)
    assert got == [] and longs == 0 and b.held_mask() == 0


def test_button_held_at_boot_is_stuck_and_never_presses(panel):
    p, made = panel
    machine.sim_pin(pins.PIN_BTN_START).drive(0)
    b = make_buttons(made)
    assert b.stuck_mask() == buttons.START and b.raw_mask() == buttons.START
    got, longs = presses(b, 3_000)
    assert got == [] and longs == 0 and b.stuck_mask() == buttons.START
    p.release("START")
    got, _ = presses(b, 100)
    assert got == [] and b.stuck_mask() == 0
    p.press("START")
    got, _ = presses(b, 300)
    assert got == [buttons.START]


def test_presses_across_the_ticks_wrap(panel):
    p, made = panel
    vclock.set_boot_offset((1 << 30) - 150)  # ticks_ms wraps 150 ms after power-on
    machine.sim_power_on()
    p.release_all()
    b = make_buttons(made)
    for _ in range(3):
        p.press("MODE", hold_ms=60)
        got, _ = presses(b, 120)
        assert got == [buttons.MODE]
    assert vclock.ticks_ms() < 1000  # it did wrap


def test_irq_handler_is_bound_once(panel):
    p, made = panel
    b = make_buttons(made)
    h = [machine.sim_pin(x).handler for x in ORDER]
    assert all(hh is q.handler for hh, q in zip(h, b._irqs))
    assert machine.sim_pin(ORDER[0]).trigger == machine.Pin.IRQ_FALLING | machine.Pin.IRQ_RISING


def test_needs_a_clock_off_board():
    if buttons._ticks_ms is None:
        with pytest.raises(ValueError):
            Buttons(machine.Pin, ORDER)


# --- buzzer -----------------------------------------------------------------------------------
def beeps(p, since):
    ev = [e for e in p.buzzer_events() if e[0] >= since]
    return [e for e in ev if e[2] > 0], ev


def make_buzzer():
    return Buzzer(machine.PWM(machine.Pin(pins.PIN_BUZZER), freq=2_700, duty_u16=0))


def play(bz, pattern, ms):
    t0 = vclock.now_us()
    bz.play(pattern, vclock.ticks_ms())
    for _ in range(ms // 2):
        vclock.advance(2_000)
        bz.tick(vclock.ticks_ms())
    return t0


@pytest.mark.parametrize("pattern,n", [(buzzer.START, 1), (buzzer.END, 3), (buzzer.PAUSE, 2), (buzzer.CLICK, 1)])
def test_patterns_beep_n_times_and_end_silent(panel, pattern, n):
    p, made = panel
    bz = make_buzzer()
    t0 = play(bz, pattern, 2_000)
    on, ev = beeps(p, t0)
    assert len(on) == n and on[0][1] == buzzer.FREQ_HZ
    assert not p.buzzing() and not bz.busy()
    # the first beep lasts its pattern's first step
    assert ev[1][0] - ev[0][0] == pytest.approx(pattern[0] * 1000, abs=2_000)


def test_fault_alarm_repeats_until_off_and_outranks_others(panel):
    p, made = panel
    bz = make_buzzer()
    t0 = play(bz, buzzer.FAULT, 8_000)
    on, _ = beeps(p, t0)
    assert len(on) >= 10 and bz.busy()
    assert bz.play(buzzer.CLICK, vclock.ticks_ms()) is False  # a key click cannot hide it
    bz.off()
    assert not p.buzzing() and not bz.busy()
    assert bz.play(buzzer.CLICK, vclock.ticks_ms()) is True


def test_buzzer_catches_up_after_a_long_gap(panel):
    p, made = panel
    bz = make_buzzer()
    bz.play(buzzer.END, vclock.ticks_ms())
    vclock.advance(5_000_000)
    bz.tick(vclock.ticks_ms())
    assert not bz.busy() and not p.buzzing()


# --- under MicroPython ------------------------------------------------------------------------
@pytest.mark.parametrize("section", mpy_sections("driver_checks.py"))
def test_driver_checks_under_micropython(section):
    mpy_section("driver_checks.py", section)
