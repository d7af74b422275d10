"""Virtual clock: ticks arithmetic with wraparound, events, soft-IRQ deferral, timers, hooks."""
import pytest
from hypothesis import given, strategies as st

import machine
import vclock

PERIOD = 1 << 30
HALF = PERIOD // 2


def ref_diff(a, b):
    # extmod/modtime.c time_ticks_diff, written out in Python
    return ((a - b + HALF) & (PERIOD - 1)) - HALF


def ref_add(t, d):
    # extmod/modtime.c time_ticks_add: OverflowError unless -HALF < d < HALF
    if d >= HALF or d <= -HALF:
        raise OverflowError
    return (t + d) & (PERIOD - 1)


@pytest.fixture(autouse=True)
def fresh():
    vclock.set_boot_offset(0)
    vclock.strict = True
    del vclock._hooks[:]
    vclock.set_poll(None)
    vclock.set_accel(0)
    machine.sim_power_on()
    yield
    vclock.set_boot_offset(0)
    vclock.strict = False
    del vclock._hooks[:]
    vclock.set_poll(None)
    machine.sim_power_on()


ticks = st.integers(min_value=0, max_value=PERIOD - 1)


@given(ticks, ticks)
def test_ticks_diff_matches_reference(a, b):
    assert vclock.ticks_diff(a, b) == ref_diff(a, b)
    assert -HALF <= vclock.ticks_diff(a, b) < HALF


@given(ticks, st.integers(min_value=-HALF + 1, max_value=HALF - 1))
def test_ticks_add_roundtrips_through_diff(t, d):
    r = vclock.ticks_add(t, d)
    assert r == ref_add(t, d)
    assert 0 <= r < PERIOD
    assert vclock.ticks_diff(r, t) == d
    assert vclock.ticks_diff(t, r) == -d


@pytest.mark.parametrize("d", [HALF, -HALF, HALF + 1, -HALF - 1, PERIOD])
def test_ticks_add_overflow_bounds(d):
    with pytest.raises(OverflowError):
        vclock.ticks_add(0, d)


def test_ticks_add_edges_accepted():
    assert vclock.ticks_add(0, HALF - 1) == HALF - 1
    assert vclock.ticks_add(0, -HALF + 1) == HALF + 1


@given(st.integers(min_value=0, max_value=PERIOD - 1), st.integers(min_value=0, max_value=HALF - 1))
def test_virtual_ticks_wrap_consistently(offset, step_us):
    vclock.reset()
    vclock.set_boot_offset(offset)
    a_us, a_ms = vclock.ticks_us(), vclock.ticks_ms()
    assert a_us == a_ms == offset
    vclock.advance(step_us)
    assert vclock.ticks_diff(vclock.ticks_us(), a_us) == step_us
    assert vclock.ticks_diff(vclock.ticks_ms(), a_ms) == step_us // 1000


def test_boot_offset_near_wrap():
    vclock.set_boot_offset(PERIOD - 3)
    start = vclock.ticks_ms()
    assert start == PERIOD - 3
    deadline = vclock.ticks_add(start, 10)
    assert deadline == 7  # wrapped
    seen_wrap = False
    prev = start
    while vclock.ticks_diff(deadline, vclock.ticks_ms()) > 0:
        vclock.advance(1000)
        now = vclock.ticks_ms()
        seen_wrap |= now < prev
        prev = now
    assert seen_wrap
    assert vclock.now_us() == 10_000
    assert vclock.ticks_diff(vclock.ticks_ms(), start) == 10
    # ticks_us wraps 1000 times sooner and still measures right
    vclock.reset()
    u0 = vclock.ticks_us()
    vclock.advance(5)
    assert vclock.ticks_us() == 2
    assert vclock.ticks_diff(vclock.ticks_us(), u0) == 5


def test_now_us_is_unbounded():
    vclock.advance(3 * PERIOD)
    assert vclock.now_us() == 3 * PERIOD
    assert vclock.ticks_us() == 0


def test_hooks_run_in_order_with_time():
    calls = []
    a = lambda now: calls.append(("a", now))  # noqa: E731
    b = lambda now: calls.append(("b", now))  # noqa: E731
    vclock.add_hook(a)
    vclock.add_hook(b)
    vclock.add_hook(a)  # no duplicates
    vclock.advance(100)
    vclock.remove_hook(a)
    vclock.advance(50)
    assert calls == [("a", 100), ("b", 100), ("b", 150)]


def test_events_fire_at_their_time_inside_a_long_advance():
    seen = []
    vclock.at(700, lambda arg: seen.append((arg, vclock.now_us())), "late")
    vclock.at(300, lambda arg: seen.append((arg, vclock.now_us())), "early")
    vclock.at(300, lambda arg: seen.append((arg, vclock.now_us())), "early2")
    e = vclock.at(500, lambda arg: seen.append((arg, vclock.now_us())), "cancelled")
    vclock.cancel(e)
    vclock.advance(1000)
    assert seen == [("early", 300), ("early2", 300), ("late", 700)]
    assert vclock.now_us() == 1000


def test_poll_hook_every_64th_advance():
    n = []
    vclock.set_poll(lambda: n.append(vclock.stats()["advances"]))
    for _ in range(200):
        vclock.advance(1)
    assert n == [64, 128, 192]


def test_soft_callbacks_deferred_during_charge_and_disable_irq():
    got = []
    vclock.at(100, lambda _: vclock.post(got.append, vclock.now_us()))
    vclock.charge(500)  # blocked: the callback waits for the end
    assert got == [100]  # arg captured at the edge, delivered after
    assert vclock.now_us() == 500
    state = machine.disable_irq()
    assert vclock.post(got.append, "masked") is True
    vclock.advance(10)
    assert got == [100]
    machine.enable_irq(state)
    assert got == [100, "masked"]


def test_delivery_order_inside_charge():
    order = []

    def at_edge(_):
        vclock.post(lambda a: order.append(("irq", vclock.now_us())), None)

    vclock.at(50, at_edge)
    vclock.add_hook(lambda now: order.append(("hook", now)))
    vclock.charge(200)
    # the hook saw the edge time, the IRQ only ran once the chip was free again
    assert order == [("hook", 50), ("hook", 200), ("irq", 200)]


def test_nested_disable_irq():
    got = []
    s1 = machine.disable_irq()
    s2 = machine.disable_irq()
    vclock.post(got.append, 1)
    machine.enable_irq(s2)
    assert got == []
    machine.enable_irq(s1)
    assert got == [1]


def test_scheduler_depth_drops_pin_irqs():
    got = []
    s = machine.disable_irq()
    results = [vclock.post(got.append, i) for i in range(12)]
    machine.enable_irq(s)
    assert results == [True] * 8 + [False] * 4
    assert got == list(range(8))
    assert vclock.stats()["dropped"] == 4


def test_soft_callbacks_do_not_nest():
    order = []

    def outer(_):
        order.append("outer-start")
        vclock.post(lambda _: order.append("inner"), None)
        vclock.advance(10)
        order.append("outer-end")

    vclock.post(outer, None)
    assert order == ["outer-start", "outer-end", "inner"]


def test_irq_error_is_reported_not_raised_unless_strict(capsys):
    vclock.strict = False

    def boom(_):
        raise RuntimeError("handler bug")

    vclock.post(boom, None)
    assert vclock.stats()["irq_errors"] == 1
    assert isinstance(vclock.last_irq_error, RuntimeError)
    assert "handler bug" in capsys.readouterr().err
    vclock.strict = True
    with pytest.raises(RuntimeError):
        vclock.post(boom, None)


def test_watchdog_expires_at_its_deadline():
    bites = []
    vclock.wdt_start(1000, lambda: bites.append(vclock.now_us()))
    vclock.advance(900)
    vclock.wdt_feed()
    vclock.advance(900)
    assert bites == []
    vclock.advance(5000)
    assert bites == [1900]
    assert not vclock.wdt_running()


def test_reset_clears_time_events_and_watchdog():
    vclock.at(10, lambda _: None)
    vclock.wdt_start(100, lambda: None)
    vclock.advance(5)
    vclock.reset()
    s = vclock.stats()
    assert (s["now_us"], s["events"], s["advances"]) == (0, 0, 0)
    assert not vclock.wdt_running()


def test_set_accel_zero_is_free_running():
    vclock.set_accel(0)
    assert vclock.get_accel() == 0
    vclock.set_accel(2.5)
    assert vclock.get_accel() == 2.5
    vclock.advance(100)  # 40 us of real sleep at most
    vclock.set_accel(0)
    assert vclock.now_us() == 100
