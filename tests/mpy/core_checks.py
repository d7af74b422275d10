"""The pure-logic core under MicroPython (run by tests/test_session.py through run_mpy).

Also importable on CPython: `FakePlant` and `Bench` are the small integer load model and
tick driver the CPython tests share, so both interpreters run the same scenarios.

As a script (micropython core_checks.py) it runs, and prints "OK <name>" per check:
- config validation of the defaults and of junk, without raising;
- a whole tap-water session (contact check, ramp, a hand lifted and put back, reversal,
  nurse UP, ramp down, DONE) with every tick under micropython.heap_lock();
- a fault cutting the output within the tick, under heap_lock too.
"""
try:
    from micropython import const
except ImportError:
    def const(x):
        return x

import checkrun
import limits as L
import session as S

_TICK = const(2)


class FakePlant:
    """Integer load: a current source with compliance into a resistance (0: open circuit).

    The reading a tick sees reflects the command applied at the end of the previous tick.
    """

    def __init__(self, load_ohm=3000):
        self.load = load_ohm  # 0: open circuit (hand out of the water)
        self.gain_pct = 100  # source delivers this % of its setpoint
        self.stuck_on = False  # enable switch welded shut
        self.extra_ua = 0  # current added regardless (a leakage or a runaway source)
        self.err = 0  # sensor error to report
        self.ovf = False
        self.fresh = True
        self.hw_limit = False
        self.vbus = False
        self.loop_us = 1500
        self.ua = 0
        self.mv = 0

    def apply(self, cmd):
        on = cmd.enable or self.stuck_on
        src = cmd.ua * self.gain_pct // 100 if on else 0
        if self.stuck_on and not cmd.enable:
            src = 5_000
        if not on:
            self.ua = self.extra_ua
            self.mv = 0
        elif self.load == 0:
            self.ua = self.extra_ua
            self.mv = L.COMPLIANCE_MV if src > 0 else 0
        else:
            reach = L.COMPLIANCE_MV * 1000 // self.load
            i = src if src < reach else reach
            self.ua = i + self.extra_ua
            self.mv = self.ua * self.load // 1000
        if on and cmd.gate_hz:
            # pulsed DC: the sensor reports averages over whole gate periods
            pct = (cmd.gate_duty_u16 * 100 + 32767) // 65535
            self.ua = self.ua * pct // 100
            self.mv = self.mv * pct // 100

    def fill(self, meas):
        meas.ua = self.ua
        meas.mv = self.mv
        meas.err = self.err
        meas.ovf = self.ovf
        meas.fresh = self.fresh
        meas.hw_limit = self.hw_limit
        meas.vbus = self.vbus
        meas.loop_us = self.loop_us


class Bench:
    """Session + plant + the loop's few lines, with virtual time in ms."""

    def __init__(self, cfg=None, load_ohm=3000, preset=0, tick_ms=_TICK):
        import config

        self.dt = tick_ms
        self.s = S.Session(cfg if cfg is not None else config.defaults(), True)
        self.s.select(preset)
        self.p = FakePlant(load_ohm)
        self.m = S.Meas()
        self.now = 1000

    def tick(self, buttons=0):
        self.now += self.dt
        self.p.fill(self.m)
        cmd = self.s.tick(self.now, self.m, buttons)
        self.p.apply(cmd)
        return cmd

    def run(self, ms, buttons=0):
        n = ms // self.dt
        cmd = self.tick(buttons)
        for _ in range(n - 1):
            cmd = self.tick(0)
        return cmd

    def drain(self):
        ev = self.s.events
        while ev.pop():
            pass

    def start(self):
        """START, START: through CONFIRM into the contact check and on into RAMP_UP."""
        self.tick(S.BTN_START)
        self.tick(S.BTN_START)


def _check(name, ok):
    if not ok:
        raise AssertionError("FAIL " + name)
    print("OK", name)


@checkrun.section
def check_config():
    import config

    ok, errs = config.validate(config.defaults())
    _check("config defaults valid", ok and not errs)
    for junk in (None, 1, "x", [], {"presets": [1, None, {"name": 5}]}, {"schema": 1.5}):
        ok, errs = config.validate(junk)
        _check("config junk rejected", not ok and len(errs) > 0)


@checkrun.section
def check_heap_lock_works():
    import micropython

    micropython.heap_lock()
    try:
        try:
            x = [1, 2, 3]  # noqa: F841  must allocate
            locked = False
        except MemoryError:
            locked = True
    finally:
        micropython.heap_unlock()
    _check("heap_lock catches allocation", locked)


@checkrun.section
def check_locked_session():
    import micropython

    b = Bench(load_ohm=3000, preset=0)
    b.run(100)
    b.start()
    s = b.s
    _check("contact check", s.state == S.CONTACT)
    ev = s.events
    max_ua = [0]
    n_events = [0]
    saw = [0] * 16  # states visited
    ticks = s.preset.duration_ms // _TICK + 200_000
    micropython.heap_lock()
    try:
        for i in range(ticks):
            # the patient lifts a hand at 5 min and puts it back 10 s later
            t = s.treat_ms
            if 300_000 <= t and b.p.load and s.state == S.TREAT and saw[S.PAUSED] == 0:
                b.p.load = 0
            if s.state == S.PAUSED and s._t_state > 10_000:
                b.p.load = 3000
            btn = S.BTN_UP if i == 100_000 else 0
            cmd = b.tick(btn)
            if cmd.ua > max_ua[0]:
                max_ua[0] = cmd.ua
            saw[s.state] = 1
            while ev.pop():
                n_events[0] += 1
            if s.state == S.DONE:
                break
    finally:
        micropython.heap_unlock()
    _check("session done under heap_lock", s.state == S.DONE and s.end_reason == S.END_DONE)
    _check("paused and resumed", saw[S.PAUSED] == 1)
    _check("reversed", saw[S.REV_DOWN] == 1 and saw[S.REV_UP] == 1 and s.reversed)
    _check("never above the ceiling", max_ua[0] <= s.preset.ceiling_ua)
    _check("events", n_events[0] > 8 and ev.lost == 0)
    _check("output off when done", not b.s.cmd.enable)


@checkrun.section
def check_locked_fault():
    import micropython

    b = Bench()
    b.start()
    b.run(20_000)
    s = b.s
    _check("treating", s.state in (S.RAMP_UP, S.TREAT) and b.s.cmd.enable)
    micropython.heap_lock()
    try:
        b.p.extra_ua = 31_000  # runaway: above the absolute ceiling
        b.p.ua += 31_000  # ... already in this tick's reading
        cmd = b.tick()
        off = not cmd.enable and cmd.ua == 0
    finally:
        micropython.heap_unlock()
    _check("fault cuts the output in the same tick", off and s.state == S.FAULT and s.fault == L.F_OVER_ABS)


@checkrun.section
def check_locked_variants():
    """Pulsed DC, the compliance hold, STOP, a fault and its clearing: all under heap_lock."""
    import config
    import micropython

    cfg = config.defaults()
    cfg["presets"][2]["pulsed"] = {"freq_hz": 1_000, "duty_pct": 50}
    b = Bench(cfg, load_ohm=15_000, preset=2)
    s = b.s
    ev = s.events
    seen = [0] * 16
    micropython.heap_lock()
    try:
        b.tick(S.BTN_START)
        b.tick(S.BTN_START)
        for i in range(60_000):  # 2 min
            b.tick(S.BTN_DOWN if i == 30_000 else 0)
            while True:
                c = ev.pop()
                if not c:
                    break
                seen[c] = 1
        b.tick(S.BTN_STOP)
        for i in range(2_000):
            b.tick()
        stopped = s.state == S.STOPPED
        b.tick(S.BTN_STOP)
        b.p.hw_limit = True
        b.tick()
        faulted = s.state == S.FAULT
        b.p.hw_limit = False
        b.tick()
        b.tick(S.BTN_STOP)
        cleared = s.state == S.IDLE
        while ev.pop():
            pass
    finally:
        micropython.heap_unlock()
    _check("pulsed, limited, adjusted under heap_lock", seen[S.EV_LIMITED] and seen[S.EV_ADJUST])
    _check("stop, fault, clear under heap_lock", stopped and faulted and cleared)


if __name__ == "__main__" and checkrun.run():
    print("ALL OK")
