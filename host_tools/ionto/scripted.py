"""Scripted treatments on the virtual unit: a trace recorder inside the unit and helpers to
act as the nurse. Used by the demo, the end-to-end tests and the benchmarks.

The recorder runs in the simulator (scope "sim"), not in the firmware: it samples the plant's
TRUE current, which the firmware never sees, beside what the firmware commanded.
"""
import time

from . import words
from .simctl import SimError

# Installed through the control channel's test-only exec. A vclock hook: every advance it
# tracks the largest step of the true current (contact unchanged); every `period` it appends one sample.
_RECORDER = r"""
class _Rec:
    def __init__(self, period_us):
        self.period = period_us
        self.next = 0
        self.rows = []
        self.last = None
        self.lastc = None
        self.max_step = 0
        self.max_step_t = 0
        self.peak = 0
    def __call__(self, now):
        p = board.plant
        ua = p.current_ua(now)
        c = p.contact
        # A hand leaving the water opens the circuit: that fall is physics, not the unit's
        # doing. Steps are judged while the contact stays as it was.
        if self.last is not None and c == self.lastc:
            d = ua - self.last
            if d < 0:
                d = -d
            if d > self.max_step:
                self.max_step = d
                self.max_step_t = now // 1000
        self.last = ua
        self.lastc = c
        if ua > self.peak:
            self.peak = ua
        if now < self.next:
            return
        self.next = now + self.period
        a = R.g.get("app")
        s = a.s if a is not None else None
        if s is None:
            self.rows.append((now // 1000, ua, 0, 0, -1, 0, p.electrode_mv(now), 0, 0))
        else:
            self.rows.append((now // 1000, ua, s.cmd_ua, s.set_ua, s.state, s.polarity,
                              p.electrode_mv(now), s.target_ua, s.actual_ua))
    def take(self):
        r = self.rows
        self.rows = []
        return r
try:
    vclock.remove_hook(_rec)
except Exception:
    pass
_rec = _Rec(%d)
vclock.add_hook(_rec)
"""

COLUMNS = ("t_ms", "true_ua", "cmd_ua", "set_ua", "state", "polarity", "electrode_mv", "target_ua", "measured_ua")


class Recorder:
    def __init__(self, ctl, period_ms=100):
        self.ctl = ctl
        self.rows = []
        ctl.exec(_RECORDER % (period_ms * 1000), scope="sim")

    def pull(self):
        self.rows += [tuple(r) for r in self.ctl.eval("_rec.take()", scope="sim")]
        return self.rows

    def stats(self):
        return self.ctl.eval("(_rec.max_step, _rec.max_step_t, _rec.peak)", scope="sim")


# A timed vclock hook: the first time the condition holds of the firmware's app (`a`), it
# presses the buttons on the unit's clock, each after_ms from that instant, and may change the
# pace of virtual time. The host only learns of it later: however slow it is, the nurse's
# presses keep their pace, and a moment it must see lasts long enough in real time.
_ARMED = r"""
class _Armed:
    def __init__(self, presses, accel):
        self.presses = presses
        self.accel = accel
        self.fired_us = None
    def __call__(self, now):
        if self.fired_us is None:
            a = R.g.get("app")
            if a is None or not (%s):
                return now + 10000
            self.fired_us = now
            for after_ms, button in self.presses:
                board.panel.press(button, 120, now + after_ms * 1000)
            if self.accel is not None:
                vclock.set_accel(self.accel)
        return now + 3600000000
try:
    vclock.remove_hook(_armed)
except Exception:
    pass
_armed = _Armed(%r, %r)
vclock.add_hook(_armed, timed=True)
"""


def arm(ctl, cond, presses=(), accel=None):
    """For the first moment `cond` (a Python expression on `a`, the firmware's app) holds,
    checked every 10 ms of the unit's time: press [(after_ms, button) ...] from then on, and
    set the pace of virtual time to `accel` (0: as fast as possible). armed_at() says when."""
    ctl.exec(_ARMED % (cond, [(int(ms), str(b)) for ms, b in presses], accel), scope="sim")


def armed_at(ctl, disarm=True):
    """The unit's time (us) at which the armed condition held, or None; disarm removes the hook."""
    t = ctl.eval("_armed.fired_us", scope="sim")
    if disarm:
        ctl.exec("vclock.remove_hook(_armed)", scope="sim")
    return t


class paced:
    """Virtual time at x times real time inside the block, as it was after it: a window the
    host must act within (CONFIRM's 30 s between two STARTs) then lasts 30/x s of real time
    (3 s at the default 10x), not the quarter second it lasts on a unit running as fast as it
    can."""

    def __init__(self, ctl, x=10):
        self.ctl = ctl
        self.x = x

    def __enter__(self):
        self.was = self.ctl.eval("vclock.get_accel()", scope="sim")
        self.ctl.accel(self.x)
        return self

    def __exit__(self, *exc):
        self.ctl.accel(self.was)


def state_name(ctl):
    """The unit's state as its display names it ("NONE" before its application runs)."""
    code = ctl.eval("app.s.state if app else -1")
    return "NONE" if code < 0 else words.state_name(code, halves=False)


def wait_for(ctl, expr, timeout=120.0, poll=0.02, recorder=None):
    """Poll a firmware-side expression (in the unit's __main__) until it is truthy. A unit
    restarting meanwhile (a host session's reset, a watchdog) or still booting (`app` not
    defined yet) is waited out too, until the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = ctl.eval(expr)
        except SimError as e:
            if time.monotonic() > deadline:
                raise
            v = e
        if v and v != "False" and not isinstance(v, SimError):
            return v
        if recorder is not None:
            recorder.pull()
        if time.monotonic() > deadline:
            raise SimError("timed out waiting for %s (last: %r)" % (expr, v))
        time.sleep(poll)


def app_ready(ctl, timeout=60.0):
    """Wait until main.py's application runs (after a boot or a host session's restart)."""
    return wait_for(ctl, "globals().get('app') is not None and app.ticks > 20", timeout=timeout)


def wait_virtual_s(ctl, seconds, recorder=None, timeout=300.0):
    """Let `seconds` of virtual time pass on the unit."""
    t0 = ctl.state()["now_us"]
    deadline = time.monotonic() + timeout
    while ctl.state()["now_us"] - t0 < seconds * 1_000_000:
        if recorder is not None:
            recorder.pull()
        if time.monotonic() > deadline:
            raise SimError("virtual time did not advance %s s" % seconds)
        time.sleep(0.02)


def press(ctl, *buttons, settle_s=0.3):
    """Press a button and let the firmware's debounce and a tick or two pass. Several buttons
    are one sequence on the unit's clock, settle_s apart: however late the host is, the
    unit sees them at a nurse's pace (START, START is never taken for a confirmation that
    expired while a loaded machine looked away)."""
    for i, button in enumerate(buttons):
        ctl.press(button, after_ms=int(i * settle_s * 1000))
    wait_virtual_s(ctl, settle_s * len(buttons))
