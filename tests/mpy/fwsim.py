# In-process virtual unit for MicroPython tests and benchmarks: the simulated board and the
# real firmware in one interpreter, no REPL and no pseudo-terminal, so a treatment runs as
# fast as the firmware and models allow. Run with MICROPYPATH=hw/sim:firmware (conftest).
#
#     import fwsim
#     u = fwsim.Unit("palms")            # simulated board + firmware Board + App
#     u.press("START"); u.press("START") # confirm
#     u.until(lambda s: s.state == TREAT, 120)
#     u.run_s(10)
import vclock
import machine  # noqa: F401  (the mock, before the firmware imports it)
import simboard
import config
import session as S
import board as fwboard
from app import App


class Unit:
    def __init__(self, scenario="palms", cfg=None, lock_heap=False, usb_host=False, selftest_ok=True,
                 sample_ms=0):
        self.sb = simboard.Board(scenario)
        self.sb.set_usb(host_present=usb_host)
        self.b = fwboard.Board()
        self.b.init_devices()
        self.app = App(self.b, cfg if cfg is not None else config.defaults(), selftest_ok, lock_heap=lock_heap)
        self.s = self.app.s
        self.plant = self.sb.plant
        self.rows = []  # (t_ms, true_ua, cmd_ua, state, polarity) every sample_ms
        self.sample_ms = sample_ms
        self.max_step_ua = 0  # largest change of the true current between two ticks, contact steady
        self._last_ua = None
        self._last_contact = None

    def now_ms(self):
        return vclock.now_us() // 1000

    def _observe(self):
        p = self.plant
        now = vclock.now_us()
        ua = p.current_ua(now)
        c = p.contact
        if self._last_ua is not None and c == self._last_contact:
            d = ua - self._last_ua
            if d < 0:
                d = -d
            if d > self.max_step_ua:
                self.max_step_ua = d
        self._last_ua = ua
        self._last_contact = c
        if self.sample_ms and (not self.rows or now // 1000 - self.rows[-1][0] >= self.sample_ms):
            s = self.s
            self.rows.append((now // 1000, ua, s.cmd_ua, s.state, s.polarity))

    def run_ticks(self, n, observe=True):
        app = self.app
        if not observe:
            app.run(max_ticks=app.ticks + n)
            return
        for _ in range(n):
            app.run(max_ticks=app.ticks + 1)
            self._observe()

    def run_s(self, seconds, observe=True):
        self.run_ticks(seconds * 500, observe)

    def until(self, pred, max_s, observe=True):
        """Run until pred(session) holds; returns the virtual seconds it took, or fails."""
        t0 = vclock.now_us()
        limit = max_s * 500
        for _ in range(limit):
            if pred(self.s):
                return (vclock.now_us() - t0) / 1e6
            self.run_ticks(1, observe)
        raise AssertionError("condition not met in %s s (state %s)" % (max_s, S.STATE_NAMES[self.s.state]))

    def press(self, name, settle_s=0.3):
        self.sb.handle({"cmd": "press", "button": name})
        self.run_s(settle_s)

    def start_treatment(self, max_s=300):
        self.press("START")
        self.press("START")
        return self.until(lambda s: s.state == S.TREAT, max_s)
