# In-process virtual unit for MicroPython tests and benchmarks: the simulated board and the
# real firmware in one interpreter, no REPL and no pseudo-terminal, so a treatment runs as
# fast as the firmware and models allow. Run with MICROPYPATH=hw/sim:firmware (conftest).
#
#     import fwsim
#     u = fwsim.Unit("palms")            # simulated board + firmware Board + App
#     u.press("START"); u.press("START") # confirm
#     u.until(lambda s: s.state == TREAT, 120)
#     u.run_s(10)
#
# Each Unit is a fresh power-on (machine.sim_power_on): a script may build several in turn;
# building one closes the previous. The mock's reset handler records resets (a watchdog bite
# or machine.reset()) in `resets` and unwinds a hung loop with `Reset`, as a real reset would.
import vclock
import machine  # the mock, before the firmware imports it
import pins
import simboard
import config
import limits as L
import session as S
import board as fwboard
from app import App, PERIOD_US

TPS = 1_000_000 // PERIOD_US  # loop ticks per second

_EN = machine.sim_pin(pins.PIN_OUTPUT_ENABLE)
_current = None

# States in which the output must be off (the safety invariants).
OFF_STATES = (S.IDLE, S.DONE, S.STOPPED, S.FAULT)


class Reset(Exception):
    """Raised by the recording reset handler: the chip restarts, the loop does not go on."""


def fast_cfg(target=5_000, ceiling=8_000, ramp_up_s=10, ramp_down_s=5, reverse=True, pulsed=False,
             step=500, area=120, dose=600, name="fast", extra=True):
    """A valid configuration whose default preset reaches TREAT in ~11 virtual seconds (the
    fastest ramp the limits allow), so fault tests need not wait for a clinical ramp."""
    cfg = config.defaults()
    p = {"name": name, "target_ua": target, "ceiling_ua": ceiling, "duration_s": 1_200,
         "ramp_up_s": ramp_up_s, "ramp_down_s": ramp_down_s, "reverse": reverse, "polarity": 0,
         "electrode_area_cm2": area, "pulsed": pulsed, "step_ua": step, "dose_cap_mamin": dose}
    cfg["presets"] = [p] + (cfg["presets"] if extra else [])
    cfg["default_preset"] = name
    return cfg


def _on_pin(pid, level):
    # Registered before the board model's listener: the plant has not seen the edge yet, so
    # the current logged is what flowed at the instant the firmware switched the pin.
    u = _current
    if u is not None and hasattr(u, "plant"):
        u.pin_log.append((vclock.now_us(), pid, level, u.plant.current_ua(vclock.now_us())))


machine.sim_pin(pins.PIN_OUTPUT_ENABLE).on_change(_on_pin)
machine.sim_pin(pins.PIN_POLARITY).on_change(_on_pin)


def enable_pin():
    """The output enable line GP17 as driven by the firmware (1: switch closed)."""
    return _EN.value


class Unit:
    def __init__(self, scenario="palms", cfg=None, lock_heap=False, usb_host=False, selftest_ok=True,
                 sample_ms=0, selftest=False, before_boot=None):
        global _current
        if _current is not None:
            _current.close()
            machine.sim_power_on()
        _current = self
        self.resets = []  # (virtual us, cause) of every reset the firmware caused
        self.pin_log = []  # (us, pin, level, true uA just before) for enable and polarity edges
        machine.sim_set_reset_handler(self._on_reset)
        self.sb = simboard.Board(scenario)
        self.sb.set_usb(host_present=usb_host)
        self.plant = self.sb.plant
        if before_boot is not None:
            before_boot(self)  # faults, held buttons: what the unit finds at power-on
        self.b = fwboard.Board()
        self.b.init_devices()
        cfg = cfg if cfg is not None else config.defaults()
        self.selftest_results = None
        text = ""
        if selftest:
            # As main.py does: the self-test decides whether the unit may treat.
            import selftest as st
            ok_cfg = config.validate(cfg)[0]
            selftest_ok, self.selftest_results = st.run(self.b, ok_cfg)
            text = st.first_failure(self.selftest_results)
        self.app = App(self.b, cfg, selftest_ok, text, lock_heap=lock_heap)
        self.s = self.app.s
        self.rows = []  # (t_ms, true_ua, cmd_ua, state, polarity) every sample_ms
        self.sample_ms = sample_ms
        self.max_step_ua = 0  # largest change of the true current between two ticks, contact steady
        self.max_cmd_up_ua = 0  # largest rise of the commanded current between two ticks
        self.max_cmd_down_ua = 0  # largest fall, outside a pause, a fault or a limited hold
        self.peak_ua = 0
        self.violations = []  # invariant breaches seen by check_invariants (text)
        self.check = False  # check the invariants on every observed tick
        self._last_ua = None
        self._last_contact = None
        self._last_cmd = 0
        self._last_state = S.IDLE
        self.states = [S.IDLE]  # every state entered, in order (observed ticks)

    # --- plumbing ------------------------------------------------------------------------
    def _on_reset(self, cause):
        self.resets.append((vclock.now_us(), cause))
        raise Reset(cause)

    def close(self):
        """Faults cleared, IRQs off, models unhooked: the next Unit starts from a power-on."""
        global _current
        try:
            self.sb.clear_faults()
            self.b.close()
        finally:
            self.sb.close()
            if _current is self:
                _current = None

    def now_ms(self):
        return vclock.now_us() // 1000

    def true_ua(self):
        return self.plant.current_ua(vclock.now_us())

    def enable(self):
        return _EN.value

    def text(self):
        """The display's 8 lines as the firmware drew them."""
        return self.b.display.text()

    def screen(self):
        return " | ".join(x for x in self.text() if x)

    def state_name(self):
        return S.STATE_NAMES[self.s.state]

    def fault(self, kind, value=None, addr=None):
        r = self.sb.handle({"cmd": "fault", "kind": kind, "value": value, "addr": addr})
        assert r["ok"], r

    def buzzer_on_times(self, since_us=0):
        """Durations (ms) of the sounds started at or after since_us, from the panel's log."""
        out = []
        on = None
        for t, f, d in self.sb.panel.buzzer_events():
            if t < since_us:
                continue
            if f > 0 and d > 0:
                if on is None:
                    on = t
            elif on is not None:
                out.append((t - on) // 1000)
                on = None
        return out

    # --- observation ---------------------------------------------------------------------
    def _observe(self):
        p = self.plant
        now = vclock.now_us()
        ua = p.current_ua(now)
        c = p.contact
        s = self.s
        st = s.state
        if ua > self.peak_ua:
            self.peak_ua = ua
        if self._last_ua is not None and c == self._last_contact:
            d = ua - self._last_ua
            if d < 0:
                d = -d
            if d > self.max_step_ua:
                self.max_step_ua = d
        cmd = s.cmd_ua
        d = cmd - self._last_cmd
        if d > self.max_cmd_up_ua:
            self.max_cmd_up_ua = d
        elif -d > self.max_cmd_down_ua and st != S.PAUSED and st != S.FAULT and not s.limited:
            self.max_cmd_down_ua = -d
        self._last_cmd = cmd
        if st != self._last_state:
            self.states.append(st)
            self._last_state = st
        self._last_ua = ua
        self._last_contact = c
        if self.check:
            self.check_invariants(ua)
        if self.sample_ms and (not self.rows or now // 1000 - self.rows[-1][0] >= self.sample_ms):
            self.rows.append((now // 1000, ua, s.cmd_ua, st, s.polarity))

    def check_invariants(self, ua):
        s = self.s
        st = s.state
        if st in OFF_STATES and _EN.value:
            self.violations.append("%d ms: enable high in %s" % (self.now_ms(), S.STATE_NAMES[st]))
        lim = s.preset.ceiling_ua + L.CEILING_TOL_UA
        if ua > lim:
            self.violations.append("%d ms: %d uA above the ceiling %d" % (self.now_ms(), ua, lim))

    def run_ticks(self, n, observe=True):
        app = self.app
        if not observe:
            app.run(max_ticks=app.ticks + n)
            return
        for _ in range(n):
            app.run(max_ticks=app.ticks + 1)
            self._observe()

    def run_s(self, seconds, observe=True):
        self.run_ticks(int(seconds * TPS), observe)

    def until(self, pred, max_s, observe=True):
        """Run until pred(session) holds; returns the virtual seconds it took, or fails."""
        t0 = vclock.now_us()
        limit = int(max_s * TPS)
        for _ in range(limit):
            if pred(self.s):
                return (vclock.now_us() - t0) / 1e6
            self.run_ticks(1, observe)
        raise AssertionError("condition not met in %s s (state %s)" % (max_s, S.STATE_NAMES[self.s.state]))

    def ticks_until(self, pred, max_ticks=5_000):
        """Tick until pred() (no argument) holds; returns virtual us taken, or fails."""
        t0 = vclock.now_us()
        for _ in range(max_ticks):
            if pred():
                return vclock.now_us() - t0
            self.run_ticks(1)
        raise AssertionError("condition not met in %d ticks (state %s)" % (max_ticks, self.state_name()))

    def press(self, name, settle_s=0.3):
        self.sb.handle({"cmd": "press", "button": name})
        self.run_s(settle_s)

    def start_treatment(self, max_s=300):
        self.press("START")
        self.press("START")
        return self.until(lambda s: s.state == S.TREAT, max_s)


def run_main(scenario="palms", stop_s=3.0, actions=(), before_boot=None, path="main.py"):
    """Run firmware main.py as the unit would, on the simulated board, until stop_s virtual
    seconds, then interrupt it as a host's Ctrl-C does (KeyboardInterrupt raised from the
    clock). actions: (t_s, fn(sb)) done at those virtual times. Returns (globals of main.py,
    simboard, exception that ended it). main.py's own finally must leave the output off."""
    global _current
    if _current is not None:
        _current.close()
        machine.sim_power_on()
        _current = None
    resets = []

    def on_reset(cause):
        resets.append((vclock.now_us(), cause))
        raise Reset(cause)

    machine.sim_set_reset_handler(on_reset)
    sb = simboard.Board(scenario)
    sb.set_usb(host_present=False)
    if before_boot is not None:
        before_boot(sb)
    t0 = vclock.now_us()
    todo = sorted(actions, key=lambda a: a[0])
    state = {"i": 0}

    def hook(now):
        i = state["i"]
        while i < len(todo) and now - t0 >= todo[i][0] * 1_000_000:
            state["i"] = i + 1
            todo[i][1](sb)
            i += 1
        if now - t0 >= stop_s * 1_000_000:
            vclock.remove_hook(hook)
            raise KeyboardInterrupt

    with open(path) as f:
        src = f.read()
    g = {"__name__": "__main__"}
    vclock.add_hook(hook)
    err = None
    try:
        exec(src, g)
    except (KeyboardInterrupt, Reset) as e:
        err = e
    finally:
        try:
            vclock.remove_hook(hook)
        except Exception:
            pass
    g["_resets"] = resets
    return g, sb, err
