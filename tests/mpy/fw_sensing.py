# The sensing chain on the virtual unit, judged on the plant's TRUE current.
#
#   micropython tests/mpy/fw_sensing.py splash STATE [seed]
#   micropython tests/mpy/fw_sensing.py fault STATE [seed]
#
# splash: contact broken for a sweep of durations (1 ms to a minute), each at a random moment
#   of the loop period and re-made at a random moment, in one state where current flows
#   (contact, ramp_up, treat, rev_down, rev_up, ramp_down). Per case: the worst 1 ms mean of
#   the true current against the setpoint before the break + 0.5 mA, the instantaneous peak,
#   the charge of the re-contact spike (the plant's own account), and any fault.
# fault: each single fault of the INA219 path (frozen at several values, stuck at zero, gain
#   0.5 and 1.5, noise, drift) injected in the state; per case the fault named, the time from
#   injection to the enable line low, the worst 1 ms mean and the instantaneous peak of the
#   true current.
# Output: "@R [key, value]" lines (tests/test_sensing.py asserts on them; `make bench`
# reports the worst figures).
import sys

import vclock
import fwsim
import limits as L
import session as S
from fw_common import emit

MODE = sys.argv[1]
STATE = sys.argv[2]
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 1
PERIOD_US = L.LOOP_PERIOD_US
TARGET = 5_000
_x = [SEED * 2654435761 & 0x7FFFFFFF or 1]


def rnd(n):
    """Deterministic 0..n-1 (a seeded LCG: the same moments every run)."""
    _x[0] = (_x[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return (_x[0] >> 8) % n if n > 0 else 0


u = fwsim.Unit("palms", fwsim.fast_cfg(target=TARGET, ceiling=8_000, ramp_up_s=10, ramp_down_s=5))
s = u.s
p = u.plant


def now():
    return vclock.now_us()


def run_until_us(t):
    while now() < t:
        u.run_ticks(1, observe=False)


def wait_state(st, max_s=40):
    u.until(lambda ss: ss.state == st, max_s, observe=False)


def new_session():
    """From any end state to CONTACT of a fresh session, hand in the water."""
    if s.state == S.FAULT:
        u.sb.clear_faults()
        u.run_s(0.05, observe=False)
    for _ in range(6):
        if s.state == S.CONTACT:
            return
        if s.state in (S.IDLE, S.CONFIRM, S.DONE, S.STOPPED, S.FAULT):
            u.sb.handle({"cmd": "press", "button": "STOP" if s.state in (S.FAULT, S.DONE, S.STOPPED) else "START"})
            u.run_s(0.3, observe=False)
        else:
            u.sb.handle({"cmd": "press", "button": "STOP"})
            u.run_s(3.5, observe=False)
    if s.state == S.CONTACT:
        return
    raise AssertionError("no fresh session: %s" % S.STATE_NAMES[s.state])


def to_treat():
    if s.state != S.TREAT:
        if not (1 << s.state) & ((1 << S.CONTACT) | (1 << S.RAMP_UP) | (1 << S.PAUSED) | (1 << S.REV_UP)):
            new_session()
        wait_state(S.TREAT)


def reach(state):
    """Bring the unit into `state` at a moment where current flows (random within it)."""
    if state == "contact":
        new_session()
        u.run_s(rnd(100) / 1000, observe=False)  # the check needs 0.5 s of contact: still in it
    elif state == "ramp_up":
        if s.state != S.RAMP_UP or s.set_ua < 1_000:
            if s.state != S.RAMP_UP:
                new_session() if s.state not in (S.CONTACT, S.PAUSED) else None
                wait_state(S.RAMP_UP)
            lvl = (1_000 if MODE == "splash" else 2_000) + rnd(2_500)
            u.until(lambda ss: ss.set_ua >= lvl or ss.state != S.RAMP_UP, 20, observe=False)
    elif state == "treat":
        to_treat()
        u.run_s(rnd(200) / 1000, observe=False)
    elif state == "rev_down":
        to_treat()
        s.reversed = False  # (a second reversal in the same session is the same code path)
        s.treat_ms = s.preset.duration_ms // 2  # half-time now, not in 10 virtual minutes
        wait_state(S.REV_DOWN, 1)
        u.run_s(rnd(1_500) / 1000, observe=False)  # 5 mA falling at 1 mA/s: >= 3.5 mA left
    elif state == "rev_up":
        if s.state != S.REV_UP or s.set_ua < 1_000:
            if s.state != S.REV_UP:
                reach("rev_down")
                wait_state(S.REV_UP, 10)
            lvl = (1_000 if MODE == "splash" else 2_000) + rnd(2_500)
            u.until(lambda ss: ss.set_ua >= lvl or ss.state != S.REV_UP, 20, observe=False)
    elif state == "ramp_down":
        to_treat()
        s.treat_ms = s.preset.duration_ms  # the end of treatment time now
        wait_state(S.RAMP_DOWN, 1)
        u.run_s(rnd(1_500) / 1000, observe=False)
    want = {"contact": S.CONTACT, "ramp_up": S.RAMP_UP, "treat": S.TREAT, "rev_down": S.REV_DOWN,
            "rev_up": S.REV_UP, "ramp_down": S.RAMP_DOWN}[state]
    if s.state != want:
        raise AssertionError("wanted %s, in %s" % (state, S.STATE_NAMES[s.state]))


class Watch:
    """The true current's worst 1 ms mean (windows every 250 us) and the spikes' charge."""

    def __init__(self):
        self.worst = 0
        self.peak = u.true_ua()  # the current as the watch starts (a fault cut in one period)
        self.spike_nc = 0
        p.peak_ua = 0
        p.spike_nc = 0.0

    def tick(self):
        u.run_ticks(1, observe=False)
        t = now()
        k = 0
        while k < PERIOD_US:
            m = p.mean_ua(t - k - 1_000, t - k)
            if m > self.worst:
                self.worst = m
            k += 250
        if p.peak_ua > self.peak:
            self.peak = int(p.peak_ua)  # a spike's peak within the period (the plant's account)
        ua = u.true_ua()
        if ua > self.peak:
            self.peak = ua  # the steady current at the period's end
        if p.spike_nc > self.spike_nc:
            self.spike_nc = p.spike_nc


def at(t_us, fn):
    box = [t_us, fn]

    def hook(nw):
        if box[1] is not None and nw >= box[0]:
            f = box[1]
            box[1] = None
            f()
    vclock.add_hook(hook)
    return hook


# --- contact broken ------------------------------------------------------------------------
DURATIONS_MS = {
    # every duration from 1 ms to minutes: within one period, around the pause's debounce
    # (CONTACT_LOST_MS), pauses, long ones where the state allows them. Where the state
    # survives a break (contact check, the ramps up) the sweep is dense and cheap; where each
    # case needs a fresh ramp to the state (10 virtual s) it samples the same range.
    "contact": (1, 2, 3, 5, 8, 13, 21, 29, 31, 50, 120, 400, 2_000, 20_000),
    "ramp_up": (1, 2, 3, 5, 8, 13, 21, 29, 31, 50, 120, 400, 2_000, 15_000),
    "treat": (1, 3, 29, 31, 90_000),
    "rev_down": (1, 4, 35),
    "rev_up": (1, 2, 3, 5, 8, 13, 21, 29, 31, 50, 120, 400, 2_000),
    "ramp_down": (1, 13, 40),
}


def splash_case(d_ms):
    reach(STATE)
    sp_before = s.set_ua if STATE != "contact" else L.CONTACT_TEST_UA
    # a random moment in the period for the break, and for the re-contact
    t_lift = now() + rnd(PERIOD_US) + 1
    t_imm = t_lift + d_ms * 1_000 + rnd(1_000) - 500 if d_ms > 1 else t_lift + 300 + rnd(700)
    h1 = at(t_lift, p.lift)
    h2 = at(t_imm, p.immerse)
    w = Watch()
    limit = sp_before + 500
    bad = []
    faults = []
    try:
        # while open: the current must be gone within one period of the break
        while now() < t_imm:
            w.tick()
            if s.fault:
                faults.append(s.fault)
                break
            if now() > t_lift + 100_000 and now() < t_imm - 10_000:
                # long open: no current can flow (the plant's contact is open); skip to just
                # before the re-contact, the enable line watched by the invariant check
                while now() < t_imm - 10_000 and not s.fault:
                    u.run_ticks(1, observe=False)
        # re-contact and the following 300 ms (the re-contact transient, the fresh ramp)
        t_end = now() + 300_000
        while now() < t_end and not s.fault:
            w.tick()
            if s.set_ua + 500 > limit:
                limit = s.set_ua + 500  # the ramp climbing again is allowed its own setpoint
        if s.fault:
            faults.append(s.fault)
    finally:
        vclock.remove_hook(h1)
        vclock.remove_hook(h2)
    if w.worst > limit:
        bad.append("1 ms mean %d uA > %d" % (w.worst, limit))
    return {"d_ms": d_ms, "sp": sp_before, "worst_1ms_ua": w.worst, "limit_ua": limit, "peak_ua": w.peak,
            "spike_nc": int(w.spike_nc * 10) / 10, "faults": faults, "bad": bad,
            "after": S.STATE_NAMES[s.state]}


# --- sensing faults ------------------------------------------------------------------------
FAULTS = (
    ("zero", "sensor_stuck", 0),  # input stuck at zero (the chip's noise still on it)
    ("frozen_0", "sensor_frozen", 0),  # the register frozen
    ("frozen_2000", "sensor_frozen", 2_000),
    ("frozen_now", "sensor_frozen", None),  # at the value it read when it froze
    ("frozen_20000", "sensor_frozen", 20_000),
    ("gain_0.5", "sensor_gain", 0.5),
    ("gain_1.5", "sensor_gain", 1.5),
    ("noise_3000", "sensor_noise", 3_000),
    ("drift_2000", "sensor_drift", 2_000),
)
# Where each case needs a fresh ramp to the state, the faults that differ in kind (frozen at 0
# takes the same path as stuck at zero; drift that of a slow gain error).
FAULTS_SHORT = ("zero", "frozen_2000", "frozen_now", "frozen_20000", "gain_0.5", "gain_1.5", "noise_3000")
_CHEAP = ("contact", "ramp_up", "treat")


def fault_case(name, kind, value):
    reach(STATE)
    sp_before = s.set_ua
    t0 = now()
    u.fault(kind, value)
    w = Watch()
    t_off = -1
    limit = (sp_before if sp_before > L.CONTACT_TEST_UA else L.CONTACT_TEST_UA) + 500
    max_us = 15_000_000 if STATE == "contact" else 3_000_000
    while now() - t0 < max_us:
        w.tick()
        if s.set_ua + 500 > limit:
            limit = s.set_ua + 500
        if not fwsim.enable_pin():
            t_off = now() - t0
            break
    # the true current after the cut
    for _ in range(10):
        w.tick()
    r = {"fault": name, "sp": sp_before, "code": s.fault, "detect_ms": t_off / 1000 if t_off >= 0 else -1,
         "worst_1ms_ua": w.worst, "peak_ua": w.peak, "limit_ua": limit, "true_after_ua": p.current_ua(now()),
         "state": S.STATE_NAMES[s.state]}
    u.sb.clear_faults()
    return r


if MODE == "splash":
    out = []
    for d in DURATIONS_MS[STATE]:
        out.append(splash_case(d))
    emit("splash", out)
elif MODE == "fault":
    out = []
    for name, kind, value in FAULTS:
        if STATE in _CHEAP or name in FAULTS_SHORT:
            out.append(fault_case(name, kind, value))
            new_session()
    emit("fault", out)
emit("ui_errors", u.app.ui_errors)
emit("period_us", PERIOD_US)
