"""The front panel's additions to the virtual unit, on CPython with the machine mock and the
virtual clock: the patient's actions reach the plant at their virtual times, and the tracer
samples at a multiple of whatever control period the firmware runs."""
import sys
import types

import machine
import pins
import pytest
import simboard
import vclock
from patient import Patient
from tracer import COLUMNS, Tracer


@pytest.fixture
def board():
    machine.sim_power_on()
    b = simboard.Board("palms")
    yield b
    b.close()


def drive(ua=10_000):
    pwm = machine.PWM(machine.Pin(pins.PIN_SETPOINT_PWM), freq=pins.SETPOINT_PWM_FREQ, duty_u16=0)
    en = machine.Pin(pins.PIN_OUTPUT_ENABLE, machine.Pin.OUT, value=0)
    machine.Pin(pins.PIN_PULSE_GATE, machine.Pin.OUT, value=1)
    machine.Pin(pins.PIN_POLARITY, machine.Pin.OUT, value=0)
    # The adaptive clamp at the rail: a clamp pin left low holds the output at 0 V.
    machine.PWM(machine.Pin(pins.PIN_CLAMP_PWM), freq=pins.CLAMP_PWM_FREQ, duty_u16=65535)
    en.value(1)
    pwm.duty_u16(ua * 65535 // pins.SETPOINT_FULL_SCALE_UA)
    return pwm, en


def test_either_tray_out_opens_the_circuit_and_one_tray_shorts_it(board):
    p = Patient(board.plant, vclock)
    drive()
    vclock.advance(300_000)
    assert board.state()["true_ua"] == pytest.approx(10_000, abs=50)
    p.handle({"do": "tray", "side": "left", "in": False})
    vclock.advance(1_000)
    assert board.plant.contact == "lifted" and board.state()["true_ua"] == 0
    p.handle({"do": "tray", "side": "right", "in": False})
    p.handle({"do": "tray", "side": "left", "in": True})
    assert board.plant.contact == "lifted"  # the right hand is still out
    p.handle({"do": "tray", "side": "right", "in": True})
    assert board.plant.contact == "immersed"
    p.handle({"do": "one_tray", "on": True})
    assert board.plant.contact == "short"
    with pytest.raises(ValueError):
        p.handle({"do": "tray", "side": "middle"})
    with pytest.raises(ValueError):
        p.handle({"do": "dance"})


def test_splash_flickers_open_for_milliseconds_and_ends_in_the_water(board):
    p = Patient(board.plant, vclock)
    drive()
    vclock.advance(300_000)
    seen = []

    def hook(now):
        seen.append((now, board.plant.contact))

    vclock.add_hook(hook)
    try:
        p.handle({"do": "splash"})
        assert p.state()["splashing"]
        for _ in range(400):
            vclock.advance(1_000)
    finally:
        vclock.remove_hook(hook)
    opens = [t for t, c in seen if c == "lifted"]
    assert opens, "the splash never opened the contact"
    # each opening lasts less than the firmware's contact-lost window (30 ms)
    assert max(opens) - min(opens) < 300_000
    assert board.plant.contact == "immersed" and not p.state()["splashing"]


def test_slow_lift_raises_the_resistance_then_opens(board):
    p = Patient(board.plant, vclock)
    drive(2_000)
    vclock.advance(300_000)
    r0 = board.plant.r_series_ohm
    p.handle({"do": "slow_lift", "side": "right", "s": 3})
    vclock.advance(1_500_000)
    assert board.plant.r_series_ohm > 4 * r0 and board.plant.contact == "immersed"
    vclock.advance(1_600_000)
    assert board.plant.contact == "lifted" and p.trays["right"] is False
    assert board.plant.r_series_ohm == r0  # the next immersion is an ordinary hand again
    p.handle({"do": "tray", "side": "right", "in": True})
    assert board.plant.contact == "immersed"


def test_sweat_soft_water_and_cut_change_the_load(board):
    p = Patient(board.plant, vclock)
    rp0 = board.state()["r_skin_ohm"]
    p.handle({"do": "soft_water", "on": True})
    assert board.plant.r_series_ohm == 9000
    p.handle({"do": "soft_water", "on": False})
    assert board.plant.r_series_ohm == 500
    drive(2_000)
    p.handle({"do": "sweat"})
    vclock.advance(120_000_000)
    assert board.state()["r_skin_ohm"] < 0.65 * rp0
    p.handle({"do": "cut", "on": True})
    assert board.state()["r_skin_ohm"] == 500
    p.handle({"do": "reset"})
    assert board.state()["r_skin_ohm"] == rp0 and not p.cut and p.contact() == "immersed"


class _Sess:
    state = 4
    target_ua = 12_000
    set_ua = 11_000
    actual_ua = 10_900
    polarity = 0
    fault = 0
    limited = False
    limited_ua = 0
    dose_uas = 1234
    time_left_s = 600
    refuse = 0
    presets = ()

    class preset:
        name = "hands_feet"


class _App:
    def __init__(self, period_us):
        self.s = _Sess()
        self.ticks = 0
        self.period = period_us

    def hook(self, now):
        self.ticks = now // self.period


@pytest.mark.parametrize("period_us", [2_000, 3_000, 5_000])
def test_tracer_follows_the_firmware_period(board, monkeypatch, period_us):
    """The sample interval is the smallest multiple of the firmware's period of at least
    20 ms, and the period measured from the tick counter is reported beside it."""
    monkeypatch.setitem(sys.modules, "app", types.SimpleNamespace(PERIOD_US=period_us))
    app = _App(period_us)
    vclock.add_hook(app.hook)
    try:
        tr = Tracer(board, vclock, lambda: app)
        r = tr.handle({"cmd": "trace"})
        for _ in range(1_000):  # the loop's clock steps
            vclock.advance(1_000)
        r = tr.handle({"cmd": "trace", "since": r["seq"]})
    finally:
        vclock.remove_hook(app.hook)
        vclock.remove_hook(tr._hook)
    k = -(-20_000 // period_us)
    assert r["period_us"] == period_us and r["interval_us"] == k * period_us
    assert r["measured_period_us"] == period_us
    rows = r["samples"]
    assert len(rows) == pytest.approx(1_000_000 / (k * period_us), abs=2)
    gaps = {b[0] - a[0] for a, b in zip(rows, rows[1:])}
    assert gaps <= {k * period_us // 1000, k * period_us // 1000 + 1}
    row = dict(zip(COLUMNS, rows[-1]))
    assert row["target_ua"] == 12_000 and row["measured_ua"] == 10_900 and row["state"] == 4


def test_tracer_reports_what_it_lost_and_frames_once(board):
    tr = Tracer(board, vclock, lambda: None)
    r0 = tr.handle({"cmd": "trace"})
    for _ in range(3_000):  # 1500 samples into a ring of 512
        vclock.advance(10_000)
    r = tr.handle({"cmd": "trace", "since": r0["seq"]})
    vclock.remove_hook(tr._hook)
    assert r["lost"] > 900 and r["more"] and len(r["samples"]) <= 128
    assert r["samples"][0][2] == -1  # no application: the firmware's fields say so
    with pytest.raises(ValueError):
        tr.handle({"cmd": "trace", "since": -1})
