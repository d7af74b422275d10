# The treatment loop: sensors -> session (ramp, regulator, supervisor veto) -> output, at 500 Hz.
#
#     app = App(board.Board(), cfg, selftest_ok)
#     app.run()             # never returns normally; main.py wraps it in try/finally
#
# Tick budget (2000 us period, rp2 at 125 MHz, I2C at 400 kHz):
#   INA219 shunt read, 2 bytes               ~120 us on the wire + ~40 us driver
#   ADC, limiter and VBUS pins               ~15 us
#   session + supervisor + regulator         ~300 us of bytecode (measured on the unix port
#                                            and scaled; `make bench` prints the figure)
#   output apply (3 PWM/pin writes)          ~30 us
#   buzzer tick, button debounce             ~40 us
#   display: one chunk of what changed       <= ~400 us, only while something changed
#   --------------------------------------------------------------
#   worst case                               ~950 us, under half the period.
# The supervisor trips on sustained overrun (the loop passes its measured iteration time).
#
# Nothing per tick allocates: measurements go into a preallocated Meas, the session's command
# into its own Cmd, events into a preallocated queue. The display and the status line are
# formatted at 5 Hz and 1 Hz, outside the safety path: a slow page costs time, never safety.
import micropython
from micropython import const
from time import ticks_add, ticks_diff, ticks_ms, ticks_us, sleep_us

import limits as L
import session as S
import buzzer as BZ
from supervisor import Meas

PERIOD_US = const(2_000)
DISPLAY_MS = const(200)
STATUS_MS = const(1_000)
ID_MS = const(5_000)
# rp2's longest watchdog timeout is 8388 ms; a hung loop is caught well before the
# patient would notice anything, and the output switch's pull-down opens at the reset.
WDT_MS = const(1_000)


_OUTPUT_OFF = (S.IDLE, S.DONE, S.STOPPED, S.FAULT)
# Events that change the page or what it shows: each redraws at once.
_REDRAW = (S.EV_STATE, S.EV_MODE, S.EV_ADJUST, S.EV_CLEARED, S.EV_REFUSED, S.EV_FAULT, S.EV_PAUSE,
           S.EV_RESUME, S.EV_LIMITED, S.EV_LIMIT_END)


class App:
    def __init__(self, board, cfg, selftest_ok, selftest_text="", out=None, lock_heap=False, log=None,
                 version="", notice="", storage_ok=True):
        self.b = board
        # log: a logstore.Log (session logs and event log on flash), or None (tests).
        self.log = log
        # lock_heap: run the safety path under micropython.heap_lock(), lifting it only for the
        # low-rate work (events, display, status). Proves the tick allocates nothing (bench and
        # tests); off on a board so a surprise allocation cannot become a mid-treatment crash.
        self.lock_heap = lock_heap
        self.s = S.Session(cfg, selftest_ok)
        self.meas = Meas()
        self.selftest_text = selftest_text
        # notice: a line for the idle screen (e.g. "using previous configuration"); the unit
        # treats, but says so. storage_ok False: no session log on flash (START refused).
        self.notice = notice
        self.s.storage_ok = storage_ok
        self.version = version
        self.out = out  # a stream for the read-only status line (None: off)
        self.ticks = 0
        self.ui_errors = 0
        self.ui_error = ""
        self.overruns = 0
        self.worst_us = 0
        self._loop_us = 0
        self._nxt = self._last = 0
        now = ticks_ms()
        self._disp_next = now
        self._status_next = now
        self._id_next = ticks_add(now, ID_MS)
        # Bound methods cached: attribute lookups are the cost of a MicroPython tick.
        self._measure = board.measure
        self._poll = board.buttons.poll
        self._take = board.buttons.take
        self._stick = self.s.tick
        self._apply = board.output.apply
        self._ok_to_feed = self.s.sup.ok_to_feed
        self._feed = board.feed
        self._bz_tick = board.buzzer.tick
        self._disp_step = board.display.step
        self._tick = self.tick

    # --- one tick ------------------------------------------------------------------------
    def tick(self, now_ms):
        m = self.meas
        self._measure(m, self._loop_us)
        self._poll(now_ms)
        cmd = self._stick(now_ms, m, self._take())
        self._apply(cmd)
        if self._ok_to_feed():
            self._feed()
        self._bz_tick(now_ms)
        if len(self.s.events) or ticks_diff(now_ms, self._disp_next) >= 0:
            if self.lock_heap:
                micropython.heap_unlock()
                try:
                    self._slow(now_ms)
                finally:
                    micropython.heap_lock()
            else:
                self._slow(now_ms)
        else:
            self._disp_step()
        self.ticks += 1

    def _slow(self, now_ms):
        # Low-rate work that may allocate: events (buzzer, watchdog, log), display, status.
        if self.s.state <= S.CONFIRM:
            self.b.output.prepare()
        if len(self.s.events):
            self._events(now_ms)
        if ticks_diff(now_ms, self._disp_next) >= 0:
            self._disp_next = ticks_add(now_ms, DISPLAY_MS)
            try:
                self.render()
            except Exception as e:
                # A page that fails to draw is a display bug, not a hazard: cutting the output
                # abruptly for it would itself shock the patient. Counted; tests demand zero.
                self.ui_errors += 1
                self.ui_error = repr(e)
        if ticks_diff(now_ms, self._status_next) >= 0:
            self._status_next = ticks_add(now_ms, STATUS_MS)
            if self.log is not None:
                self.log.each_second(self.s, self.meas.mv)
            self.b.keep_time()  # the RTC into the watchdog scratch: a reset keeps the clock
            if self.out is not None:
                self.status_line()
                if ticks_diff(now_ms, self._id_next) >= 0:
                    self._id_next = ticks_add(now_ms, ID_MS)
                    self.id_line()
        if self.log is not None:
            # Writes only while the output is off: a flash erase stalls the whole chip for
            # 45-400 ms (logstore.py explains the choice).
            self.log.service(self.s.cmd.enable)

    def _events(self, now_ms):
        s = self.s
        bz = self.b.buzzer
        ev = s.events
        while True:
            code = ev.pop()
            if not code:
                break
            if code == S.EV_START:
                # The treatment loop is the only place that arms the watchdog: boot.py and a
                # host session at the REPL never do.
                self.b.start_watchdog(WDT_MS)
                # No Ctrl-C from a USB host until the output is off and ramped down.
                self.b.host_interrupt(False)
                bz.play(BZ.START, now_ms)
            elif code == S.EV_END:
                bz.play(BZ.END, now_ms)
            elif code == S.EV_PAUSE:
                bz.play(BZ.PAUSE, now_ms)
            elif code == S.EV_FAULT:
                bz.play(BZ.FAULT, now_ms)
            elif code == S.EV_CLEARED or code == S.EV_MODE or code == S.EV_ADJUST:
                if code == S.EV_CLEARED:
                    bz.off()
                bz.play(BZ.CLICK, now_ms)
            elif code == S.EV_STATE and ev.a in _OUTPUT_OFF:
                # IDLE, DONE, STOPPED, FAULT: the ramp-down is over (a fault cuts at once).
                self.b.host_interrupt(True)
            if code in _REDRAW:
                # A change the nurse must see: draw its page in this pass, not at the next 5 Hz
                # slot (render() below runs when _disp_next is due).
                self._disp_next = now_ms
            self.on_event(code, ev.a, ev.b)

    def on_event(self, code, a, b):
        """Every session event, in order: into the session log on flash and as one line on
        the status channel."""
        if self.log is not None:
            self.log.on_session_event(code, a, b, self.s)
            if code == S.EV_STATE and a == S.CONFIRM:
                # The summary is written at IDLE -> CONFIRM; without it START is refused.
                self.s.summary_ok = self.log.summary_ok
        if self.out is not None:
            try:
                self.out.write("@EV %d %s %d %d\r\n" % (self.ticks, S.EVENT_NAMES[code], a, b))
            except Exception:
                pass

    # --- display and status (low rate) --------------------------------------------------
    def render(self):
        s = self.s
        d = self.b.display
        st = s.state
        p = s.preset
        if st == S.IDLE:
            if not s.config_ok:
                d.fault(L.B_CONFIG)
            elif not s.storage_ok:
                d.fault(L.B_STORAGE)
            elif not s.selftest_ok:
                d.message("SELF-TEST FAILED", self.selftest_text or "Call the technician.")
            elif s.refuse:
                d.fault(s.refuse)
            else:
                d.idle(p.name, s.target_ua, p.duration_ms // 1000, self.notice)
        elif st == S.CONFIRM:
            d.confirm(p.name, s.target_ua, p.duration_ms // 1000)
        elif st == S.FAULT:
            d.fault(s.fault)
        elif st == S.PAUSED:
            d.paused(s.time_left_s)
        elif st == S.DONE or st == S.STOPPED:
            d.ended(S.STATE_NAMES[st], S.END_TEXT[s.end_reason], s.dose_mamin())
        elif s.limited:
            d.limited(s.time_left_s, s.actual_ua, s.target_ua, L.LIMIT_REASONS[s.limit_reason][1], s.polarity)
        else:
            pulsed = p.gate_hz > 0
            d.running(S.STATE_NAMES[st], s.time_left_s, s.set_avg_ua if pulsed else s.set_ua,
                      s.actual_ua, s.polarity, pulsed)

    def status_line(self):
        """One line a second on the USB serial: the read-only status channel for monitors.
        Writing never blocks the loop for long: USB CDC drops output with no host."""
        s = self.s
        lg = self.log
        try:
            self.out.write("@ST %s %d %d %d %d %d %d %d %d %d %d\r\n" % (
                S.STATE_NAMES[s.state].replace(" ", "_"), s.time_left_s, s.target_ua, s.set_ua,
                s.actual_ua, s.polarity, s.fault, s.limited_ua if s.limited else -1, self.meas.mv,
                s.dose_uas, lg.session if lg is not None else 0))
        except Exception:
            pass

    def id_line(self):
        """`@ID serial_hex version`: who this unit is, for `ionto devices` (read-only)."""
        try:
            self.out.write("@ID %s %s\r\n" % (self.b.serial, self.version or "?"))
        except Exception:
            pass

    # --- the loop ------------------------------------------------------------------------
    def run(self, max_ticks=0):
        """Tick every PERIOD_US until self.ticks reaches max_ticks (0: for ever); calling it
        again carries on in phase. Any exception propagates to main.py, whose finally makes
        the output safe."""
        if self.ticks == 0:
            if self.out is not None:
                self.id_line()
            self.render()
            self.b.display.show()
            self._nxt = self._last = ticks_us()
        if self.lock_heap:
            micropython.heap_lock()
        try:
            self._loop(max_ticks)
        finally:
            if self.lock_heap:
                micropython.heap_unlock()

    def _loop(self, max_ticks):
        tick = self._tick  # bound once in __init__: binding here would allocate under the lock
        nxt = self._nxt
        last = self._last
        while True:
            t0 = ticks_us()
            self._loop_us = ticks_diff(t0, last)
            last = t0
            tick(ticks_ms())
            nxt = ticks_add(nxt, PERIOD_US)
            wait = ticks_diff(nxt, ticks_us())
            if wait > 0:
                sleep_us(wait)
            else:
                # Late: count it, and re-phase rather than run a burst of catch-up ticks.
                self.overruns += 1
                if -wait > self.worst_us:
                    self.worst_us = -wait
                nxt = ticks_us()
            if max_ticks and self.ticks >= max_ticks:
                self._nxt = nxt
                self._last = last
                return
