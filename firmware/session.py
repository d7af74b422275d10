"""Treatment session: the state machine between the nurse's buttons and the output.

    import config, session
    s = session.Session(cfg)           # cfg: a configuration dict (config.py); validated here
    s.selftest_ok = True               # set by the loop after its self-test (False refuses START)
    meas = session.Meas()              # preallocated; the loop fills it from the drivers
    ...every tick (limits.LOOP_PERIOD_US)...$
    cmd = s.tick(now_ms, meas, buttons)    # -> session.Cmd, already vetoed by the supervisor
    output.apply(cmd)                      # cmd.enable, cmd.ua / cmd.duty, cmd.polarity,
                                           # cmd.gate, cmd.gate_hz, cmd.gate_duty_u16
    if s.sup.ok_to_feed(): wdt.feed()
    while True:                            # drain events for display, buzzer and log
        ev = s.events.pop()
        if not ev: break
        ...ev, s.events.a, s.events.b...

- now_ms: time.ticks_ms() (wraps at 2**30 as on rp2; differences are taken modulo that).
- meas: supervisor.Meas (ua, err, ovf, fresh, mv, hw_limit, vbus, loop_us). What the rules
  assume of it: the sensor is read every tick in every state (stale after 20 ms, and the
  stuck-switch check runs in IDLE too); mv is the electrode voltage (-1 if unknown: then
  no current counts as an open circuit, and the short and compliance checks cannot work);
  with pulsed DC, ua and mv are averages over whole gate periods (INA219 averaging), never
  one instantaneous sample, which aliases with the gate; loop_us is the previous iteration's
  duration (an overrun past 25 ms with the output on is a fault).
- buttons: a bit mask of presses since the previous tick: BTN_START | BTN_STOP | BTN_UP |
  BTN_DOWN | BTN_MODE. STOP wins over anything pressed in the same tick.

States: IDLE -> (START) CONFIRM -> (START) CONTACT -> RAMP_UP -> TREAT
-> [half-time, tap water: REV_DOWN -> polarity switched at zero -> REV_UP -> TREAT]
-> RAMP_DOWN -> DONE. CONTACT holds a 50 uA DC test current until the skin closes the
circuit (limits.py says why so small). From any running state: contact lost -> PAUSED
(setpoint to zero at once, timer stopped, EV_PAUSE; the test current looks for the skin) ->
on re-immersion RAMP_UP again from zero; STOP -> STOPPING (at most 3 s) -> STOPPED; a
fault -> FAULT (output cut in the same tick), left only by STOP once the supervisor says the
cause is gone -> IDLE.
DONE and STOPPED go back to IDLE on START or STOP. MODE cycles presets in IDLE; UP/DOWN move
the target by the preset's step within its ceiling, through the ramp.

Display attributes (read any time): state, preset (config.Preset), preset_idx, target_ua,
set_ua (ramp), cmd_ua (after trim and veto), actual_ua, set_avg_ua (pulsed DC: the average),
polarity, treat_ms, time_left_s, dose_uas (dose_mamin() for display), fault, limited,
limited_ua, limit_reason, contact_lost, load_ohm (-1 unknown), end_reason, refuse (last
START refusal code),
config_ok, config_errors, storage_ok and summary_ok (the loop sets them from the log). STATE_NAMES / END_TEXT / EVENT_NAMES name the codes.

Dose: integrated by the supervisor in uA*s (see limits.py on why not uA*ms).
No allocation, no floats, no exceptions in tick().

Why one module of ~580 lines: it is one state machine, and every one of its transitions runs
inside tick(), on the 10 ms path, under heap_lock. The session's other responsibilities are
already modules of their own (ramp.py, regulator.py, supervisor.py with the limits as data in
limits.py). Splitting the transitions across modules would put module-attribute lookups and
calls into the tick and lose const() folding of the state and event codes, on the path whose
timing and allocation are measured on the emulated RP2040 (tests/test_rp2_loop.py); the
per-state handlers (_run, _open, _usb) are methods here so each stays one bound call.
"""
from micropython import const

import config
import limits as L
from ramp import Ramp
from regulator import Regulator
from supervisor import Cmd, Meas, Supervisor  # noqa: F401  (Meas re-exported for the loop)

# Buttons (bit mask of presses since the previous tick)
BTN_START = const(1)
BTN_STOP = const(2)
BTN_UP = const(4)
BTN_DOWN = const(8)
BTN_MODE = const(16)

# States
IDLE = const(0)
CONFIRM = const(1)
CONTACT = const(2)
RAMP_UP = const(3)
TREAT = const(4)
REV_DOWN = const(5)
REV_UP = const(6)
RAMP_DOWN = const(7)
PAUSED = const(8)
STOPPING = const(9)
DONE = const(10)
STOPPED = const(11)
FAULT = const(12)
STATE_NAMES = (
    "IDLE", "CONFIRM", "CONTACT", "RAMP UP", "TREAT", "REVERSING", "REVERSING",
    "RAMP DOWN", "PAUSED", "STOPPING", "DONE", "STOPPED", "FAULT",
)

# Why a session ended
END_NONE = const(0)
END_DONE = const(1)
END_DOSE = const(2)
END_STOP = const(3)
END_NO_CONTACT = const(4)
END_PAUSE_TIMEOUT = const(5)
END_FAULT = const(6)
END_USB = const(7)
END_TEXT = ("", "time complete", "dose reached", "stopped by nurse", "no skin contact", "paused too long", "fault",
            "USB connected")

# Events: (code, a, b)
EV_STATE = const(1)  # a = new state, b = old state
EV_START = const(2)  # a = preset index, b = target uA
EV_ADJUST = const(3)  # a = old target uA, b = new target uA
EV_PAUSE = const(4)  # a = treatment s, b = setpoint uA when contact was lost
EV_RESUME = const(5)  # a = treatment s, b = target uA
EV_REVERSE = const(6)  # a = new polarity, b = treatment s
EV_FAULT = const(7)  # a = fault code, b = measured uA at the trip
EV_END = const(8)  # a = END_* reason, b = dose uA*s
EV_REFUSED = const(9)  # a = blocking code (limits), b = state
EV_LIMITED = const(10)  # a = reachable uA, b = target uA (reason in limit_reason)
EV_LIMIT_END = const(11)  # a = measured uA, b = target uA
EV_MODE = const(12)  # a = preset index
EV_CONTACT = const(13)  # a = measured uA, b = load ohm
EV_CLEARED = const(14)  # a = fault code that was cleared
EVENT_NAMES = (
    "", "state", "start", "adjust", "pause", "resume", "reverse", "fault", "end", "refused",
    "limited", "limit_end", "mode", "contact", "cleared",
)

_RUN_MASK = const((1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9))
_TREAT_MASK = const((1 << 3) | (1 << 4) | (1 << 5) | (1 << 6))  # treatment time counts
_ADJ_MASK = const((1 << 1) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 8))
# States whose command drops at once when the circuit opens
_DROP_MASK = const((1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 9))
_TICKS_HALF = const(1 << 29)
_TICKS_MASK = const((1 << 30) - 1)
# The limits the session reads, as consts of this module (inlined by mpy-cross; L.NAME is
# two look-ups at every use). Each _NAME is limits.NAME (tests/test_limits_config.py checks).
_B_CAUSE = const(23)
_B_CONFIG = const(21)
_B_SELFTEST = const(22)
_B_STORAGE = const(24)
_B_USB = const(20)
_CONFIRM_TIMEOUT_MS = const(30_000)
_CONTACT_OK_UA = const(30)
_CONTACT_STABLE_MS = const(500)
_CONTACT_TEST_UA = const(50)
_CONTACT_TIMEOUT_MS = const(60_000)
_DT_MAX_MS = const(1_000)
_F_NONE = const(0)
_LIMITED_HEADROOM_UA = const(300)
_LIM_NONE = const(0)
_OPEN_LOAD_OHM = const(50_000)
_PAUSE_TIMEOUT_MS = const(300_000)
_REVERSE_SETTLE_MS = const(200)
_STOP_RAMP_MS = const(2_500)
_TARGET_MIN_UA = const(500)
_UAS_PER_MAMIN = const(60_000)
_USB_DEBOUNCE_MS = const(100)
_ZERO_TOL_UA = const(200)


class Events:
    """Preallocated ring of (code, a, b) ints. When full the oldest is dropped (`lost`).
    `n`: how many are queued (the loop reads it every tick: an attribute, not a len() call)."""

    def __init__(self, size=32):
        self.size = size
        self._c = [0] * size
        self._a = [0] * size
        self._b = [0] * size
        self._h = 0
        self.n = 0
        self.lost = 0
        self.a = 0
        self.b = 0

    def push(self, code, a, b):
        if self.n == self.size:
            self._h = (self._h + 1) % self.size
            self.n -= 1
            self.lost += 1
        i = (self._h + self.n) % self.size
        self._c[i] = code
        self._a[i] = a
        self._b[i] = b
        self.n += 1

    def pop(self):
        """Oldest event code (0 when empty); its arguments in .a and .b."""
        if self.n == 0:
            return 0
        i = self._h
        self.a = self._a[i]
        self.b = self._b[i]
        self._h = (i + 1) % self.size
        self.n -= 1
        return self._c[i]

    def __len__(self):
        return self.n


class Session:
    def __init__(self, cfg, selftest_ok=False):
        ok, errors = config.validate(cfg)
        self.config_ok = ok
        self.config_errors = errors
        if not ok:
            cfg = config.defaults()  # for the display only: START stays refused
        self.presets = config.compile_presets(cfg)
        self.isolated_usb = cfg["isolated_usb"] is True
        self.preset_idx = config.default_index(cfg)
        self.preset = self.presets[self.preset_idx]
        self.selftest_ok = selftest_ok
        # Storage (set by the loop): storage_ok False when there is no session log on flash at
        # all; summary_ok from the log after it wrote the session summary at CONFIRM. Either
        # refuses START with B_STORAGE.
        self.storage_ok = True
        self.summary_ok = True
        self.sup = Supervisor()
        self.reg = Regulator()
        self.ramp = Ramp()
        self.cmd = Cmd()
        self.events = Events()
        self.state = IDLE
        self.target_ua = self.preset.target_ua
        self.set_ua = 0
        self.cmd_ua = 0
        self.actual_ua = 0
        self.set_avg_ua = 0
        self.polarity = self.preset.polarity
        self.treat_ms = 0
        self.time_left_s = self.preset.duration_ms // 1000
        self.dose_uas = 0
        self.fault = _F_NONE
        self.limited = False
        self.limited_ua = 0
        self.limit_reason = _LIM_NONE
        self.contact_lost = False
        self.load_ohm = -1
        self.end_reason = END_NONE
        self.refuse = 0
        self.reversed = False
        self._last = 0
        self._have_last = False
        self._t_state = 0  # ms in the current state
        self._stable = 0  # ms of steady contact
        self._paused_from = IDLE
        self._end_after_stop = END_STOP
        self._usb_ms = 0  # a USB host present this long during a treatment
        self._drop_ua = 0  # the setpoint when the circuit opened (the pause event reports it)

    # --- helpers (no allocation) ---------------------------------------------------------
    def _go(self, st):
        old = self.state
        if st != old:
            self.state = st
            self._t_state = 0
            self.events.push(EV_STATE, st, old)

    def _to_idle(self):
        self.refuse = 0  # a refusal shown before is over: the idle page shows the settings
        self.treat_ms = 0
        self.end_reason = END_NONE
        self.limited = False
        self.target_ua = self.preset.target_ua
        self.polarity = self.preset.polarity
        self._go(IDLE)

    def _blocked(self, meas, confirming=False):
        if not self.config_ok:
            return _B_CONFIG
        if not self.storage_ok:
            return _B_STORAGE
        if not self.selftest_ok:
            return _B_SELFTEST
        if confirming and not self.summary_ok:
            # No session goes unrecorded: its summary must be on flash before any current.
            return _B_STORAGE
        return self.sup.start_block(meas, self.isolated_usb)

    def _begin(self):
        p = self.preset
        self.sup.arm(p.ceiling_ua, p.area_cm2, p.dose_cap_uas)
        self.reg.reset()
        self.reg.freeze = p.gate_hz > 0
        self.ramp.set_slew(p.slew_up, p.slew_down)
        self.ramp.reset(0)
        self.ramp.set_target(_CONTACT_TEST_UA)
        self.polarity = p.polarity
        self.treat_ms = 0
        self.reversed = False
        self.end_reason = END_NONE
        self.limited = False
        self._stable = 0
        self.events.push(EV_START, self.preset_idx, self.target_ua)
        self._go(CONTACT)

    def _stop(self, reason):
        """A quick smooth ramp to zero (at most STOP_RAMP_MS), then STOPPED."""
        v = self.ramp.value
        slew = (v * 1000 + _STOP_RAMP_MS - 1) // _STOP_RAMP_MS
        self.ramp.set_slew(self.preset.slew_up, slew if slew > self.preset.slew_down else self.preset.slew_down)
        self.ramp.set_target(0)
        self._end_after_stop = reason
        self._go(STOPPING)

    def _finish(self, st, reason):
        self.ramp.reset(0)
        self.reg.reset()
        self.end_reason = reason
        self.events.push(EV_END, reason, self.sup.dose_uas)
        self.sup.disarm()
        self._go(st)

    def _pause(self):
        v = self.ramp.value
        self.events.push(EV_PAUSE, self.treat_ms // 1000, self._drop_ua if self._drop_ua > v else v)
        self._paused_from = self.state
        self.ramp.reset(0)  # setpoint to zero at once
        self.ramp.set_slew(self.preset.slew_up, self.preset.slew_down)
        self.ramp.set_target(_CONTACT_TEST_UA)  # then a test current looks for the skin
        self.reg.reset()
        self._stable = 0
        self._go(PAUSED)

    def _flip(self):
        if self.preset.drug:
            return  # a drug stays under the electrode of its charge's polarity, always
        self.polarity ^= 1
        self.reversed = True
        self.reg.reset()
        self.events.push(EV_REVERSE, self.polarity, self.treat_ms // 1000)

    def _contact(self, meas, dt):
        """Skin closes the circuit: enough current, load below the open limit, steadily."""
        load = self.sup.load_ohm
        # the higher reading: a sensor reading low must not hold the contact check (the
        # cross-check names it once the ramp makes the difference visible)
        if meas.err == 0 and self.sup.hi_ua >= _CONTACT_OK_UA and load <= _OPEN_LOAD_OHM:
            self._stable += dt
        else:
            self._stable = 0
        return self._stable >= _CONTACT_STABLE_MS

    def _adjust(self, delta):
        p = self.preset
        old = self.target_ua
        lo = p.step_ua if p.step_ua > _TARGET_MIN_UA else _TARGET_MIN_UA
        t = old + delta
        if t > p.ceiling_ua:
            t = p.ceiling_ua
        if t < lo:
            t = lo
        if t != old:
            self.target_ua = t
            self.events.push(EV_ADJUST, old, t)
            if (1 << self.state) & ((1 << RAMP_UP) | (1 << TREAT) | (1 << REV_UP)):
                self.ramp.set_target(t)

    def select(self, idx):
        """Choose a preset (IDLE only); returns True if it changed."""
        if self.state != IDLE or not 0 <= idx < len(self.presets):
            return False
        self.preset_idx = idx
        self.preset = self.presets[idx]
        self.target_ua = self.preset.target_ua
        self.polarity = self.preset.polarity
        self.time_left_s = self.preset.duration_ms // 1000
        self.refuse = 0  # the nurse moved on: show the preset chosen, not an old refusal
        self.events.push(EV_MODE, idx, 0)
        return True

    def dose_mamin(self):
        # Rounded, as the host tools round it (149.6 mA.min shows 150, not 149).
        return (self.dose_uas + _UAS_PER_MAMIN // 2) // _UAS_PER_MAMIN

    # --- the tick ------------------------------------------------------------------------
    def tick(self, now_ms, meas, buttons):
        if self._have_last:
            dt = ((now_ms - self._last + _TICKS_HALF) & _TICKS_MASK) - _TICKS_HALF
            if dt < 0:
                dt = 0
            elif dt > _DT_MAX_MS:
                dt = _DT_MAX_MS
        else:
            dt = 0
            self._have_last = True
        self._last = now_ms
        self._t_state += dt
        sup = self.sup
        p = self.preset
        fault = sup.check(dt, meas, self.reg.saturated)
        st = self.state

        if fault and st != FAULT:
            self.fault = fault
            self.ramp.reset(0)
            self.reg.reset()
            self.events.push(EV_FAULT, fault, sup.fault_ua)
            if sup.armed:
                self.end_reason = END_FAULT
                self.events.push(EV_END, END_FAULT, sup.dose_uas)
            self._go(FAULT)
        elif st == FAULT:
            if buttons & BTN_STOP:
                if sup.clear():
                    self.events.push(EV_CLEARED, self.fault, 0)
                    self.fault = _F_NONE
                    self._to_idle()
                else:
                    self.refuse = _B_CAUSE
                    self.events.push(EV_REFUSED, _B_CAUSE, st)
        elif st == IDLE:
            if buttons & BTN_STOP:
                pass
            elif buttons & BTN_START:
                b = self._blocked(meas)
                self.refuse = b
                if b:
                    self.events.push(EV_REFUSED, b, st)
                else:
                    self.target_ua = p.target_ua
                    self._go(CONFIRM)
            elif buttons & BTN_MODE:
                self.select((self.preset_idx + 1) % len(self.presets))
        elif st == CONFIRM:
            if buttons & BTN_STOP or self._t_state > _CONFIRM_TIMEOUT_MS:
                self._go(IDLE)
            elif buttons & BTN_START:
                b = self._blocked(meas, True)
                self.refuse = b
                if b:
                    self.events.push(EV_REFUSED, b, st)
                    self._go(IDLE)
                else:
                    self._begin()
        elif st == DONE or st == STOPPED:
            if buttons & (BTN_START | BTN_STOP):
                self._to_idle()
        elif buttons & BTN_STOP:
            # Running: STOP wins over anything else pressed in the same tick.
            self._stop(END_STOP)
        elif meas.vbus and self._usb(dt, st):
            pass
        else:
            # The calls only when there is something to judge (most ticks: no host, circuit
            # closed).
            if not meas.vbus:
                self._usb_ms = 0  # no host: a next one is debounced afresh
            if sup.open_now:
                self._open(st)
            elif not sup.contact_lost:
                self._drop_ua = 0  # in contact: the next drop is measured from here
            self._run(self.state, dt, meas)

        st = self.state
        if buttons & (BTN_UP | BTN_DOWN) and (1 << st) & _ADJ_MASK:
            if buttons & BTN_UP:
                self._adjust(p.step_ua)
            elif buttons & BTN_DOWN:
                self._adjust(-p.step_ua)

        # Limited at compliance: hold the ramp just above what the skin lets through.
        lim = sup.limited
        if lim != self.limited:
            self.limited = lim
            if lim:
                self.events.push(EV_LIMITED, sup.limited_ua, self.target_ua)
            else:
                self.events.push(EV_LIMIT_END, meas.ua, self.target_ua)
        if lim and (1 << st) & ((1 << RAMP_UP) | (1 << TREAT) | (1 << REV_UP)):
            self.ramp.hold_below(sup.limited_ua + _LIMITED_HEADROOM_UA)

        # The command.
        cmd = self.cmd
        if (1 << st) & _RUN_MASK:
            sp = self.ramp.step(dt)
            if st == CONTACT or st == PAUSED:
                self.reg.reset()
                out = sp
            else:
                valid = meas.err == 0 and meas.fresh
                out = self.reg.update(sp, sup.hi_ua, valid, dt, sup.cmd_max, sup.at_compliance)
            cmd.enable = True
            cmd.ua = out
            cmd.polarity = self.polarity
            cmd.gate = True
            # Pulsed DC gates the treatment current only: the contact test current is plain
            # DC, so finding the skin never depends on how a reading meets the gate.
            if p.gate_hz and st != CONTACT and st != PAUSED:
                cmd.gate_hz = p.gate_hz
                cmd.gate_duty_u16 = p.gate_duty_pct * 65535 // 100
            else:
                cmd.gate_hz = 0
                cmd.gate_duty_u16 = 65535
        else:
            cmd.off()
            cmd.polarity = self.polarity
        sup.veto(cmd)

        # What the display shows.
        v = self.ramp.value
        self.set_ua = v
        self.cmd_ua = cmd.ua
        self.actual_ua = meas.ua
        self.set_avg_ua = v * sup.duty_pct // 100
        self.dose_uas = sup.dose_uas
        self.limited_ua = sup.limited_ua
        self.limit_reason = sup.limit_reason
        self.contact_lost = sup.contact_lost
        self.load_ohm = sup.load_ohm
        left = p.duration_ms - self.treat_ms
        self.time_left_s = (left + 999) // 1000 if left > 0 else 0
        return cmd

    def _usb(self, dt, st):
        """A USB host (VBUS present) on a non-isolated unit during a treatment (HZ18):
        debounced, then the STOP ramp-down and "USB connected" on the end screen. True when it
        ended the run."""
        if self.isolated_usb or st == STOPPING:
            self._usb_ms = 0
            return False
        self._usb_ms += dt
        if self._usb_ms < _USB_DEBOUNCE_MS:
            return False
        self._usb_ms = 0
        self.refuse = _B_USB
        self.events.push(EV_REFUSED, _B_USB, st)
        self._stop(END_USB)
        return True

    def _open(self, st):
        """The circuit is open in this period (supervisor.open_now): the command drops to the
        contact-test level now, not after the pause's debounce; back in contact, it climbs
        again from there at the preset's slew (never a jump back). The pause (timer, beeps,
        display) still waits for contact_lost."""
        if not (1 << st) & _DROP_MASK:
            return
        ramp = self.ramp
        v = ramp.value
        lvl = 0 if st == RAMP_DOWN or st == STOPPING else _CONTACT_TEST_UA
        if v > lvl:
            if v > self._drop_ua:
                self._drop_ua = v
            ramp.drop_to(lvl)
            self.reg.reset()
            if st == TREAT:
                self._go(RAMP_UP)  # back to TREAT when the ramp reaches the target again

    def _run(self, st, dt, meas):
        """One tick of a running state (CONTACT .. STOPPING), no STOP pressed."""
        sup = self.sup
        p = self.preset
        ramp = self.ramp
        if (1 << st) & _TREAT_MASK:
            self.treat_ms += dt
        if st == CONTACT:
            if self._contact(meas, dt):
                self.events.push(EV_CONTACT, meas.ua, sup.load_ohm)
                ramp.set_target(self.target_ua)
                self._go(RAMP_UP)
            elif self._t_state > _CONTACT_TIMEOUT_MS:
                self._stop(END_NO_CONTACT)
            return
        if st == PAUSED:
            if self._contact(meas, dt):
                frm = self._paused_from
                if frm == RAMP_DOWN:
                    self._finish(DONE, self.end_reason)
                    return
                if frm == REV_DOWN and not self.reversed:
                    self._flip()  # already at zero: switch now
                ramp.reset(0)  # a fresh slow ramp from zero, never a jump back
                ramp.set_slew(p.slew_up, p.slew_down)
                ramp.set_target(self.target_ua)
                self.reg.reset()
                self.events.push(EV_RESUME, self.treat_ms // 1000, self.target_ua)
                self._go(RAMP_UP)
            elif self._t_state > _PAUSE_TIMEOUT_MS:
                self._stop(END_PAUSE_TIMEOUT)
            return
        if st == STOPPING:
            if ramp.value == 0:
                self._finish(STOPPED, self._end_after_stop)
            return
        if st == RAMP_DOWN:
            if ramp.value == 0 or sup.contact_lost:
                self._finish(DONE, self.end_reason)
            return
        # RAMP_UP, TREAT, REV_DOWN, REV_UP
        if sup.contact_lost:
            self._pause()
            return
        # Dose cap: start the ramp-down early enough that its own dose (v^2 / 2 slew, at most
        # 9e8: still a small int) lands the total on the cap, not above it.
        v = ramp.value
        dose_end = sup.dose_uas + v * (v // p.slew_down) // 2 >= p.dose_cap_uas
        if self.treat_ms >= p.duration_ms or dose_end:
            self.end_reason = END_DONE if self.treat_ms >= p.duration_ms else END_DOSE
            ramp.set_slew(p.slew_up, p.slew_down)
            ramp.set_target(0)
            self._go(RAMP_DOWN)
            return
        if st == REV_DOWN:
            if ramp.value == 0:
                if meas.err == 0 and meas.ua <= _ZERO_TOL_UA:
                    self._stable += dt
                else:
                    self._stable = 0
                if self._stable >= _REVERSE_SETTLE_MS:
                    self._flip()
                    ramp.set_target(self.target_ua)
                    self._go(REV_UP)
            return
        if p.reverse and not self.reversed and self.treat_ms * 2 >= p.duration_ms:
            ramp.set_target(0)
            self._stable = 0
            self._go(REV_DOWN)
            return
        if (st == RAMP_UP or st == REV_UP) and ramp.at_target():
            self._go(TREAT)
