# The treatment loop: sensors -> session (ramp, regulator, supervisor veto) -> output, every
# PERIOD_US (limits.LOOP_PERIOD_US: 10 ms, 100 Hz).
#
#     app = App(board.Board(), cfg, selftest_ok)
#     app.run()             # never returns normally; main.py wraps it in try/finally
#
# Why 10 ms. The firmware does not regulate the current: the analog source does (its loop
# settles in ~0.2 ms on RS1), and the hardware limiter cuts above ~35 mA in microseconds without
# the MCU. The firmware supervises (fault windows of 20 to 500 ms), ramps (at most 1 mA/s: 10 uA a
# tick, smoothed by the setpoint filter) and trims (integral time 1 s). It needs a period well
# inside its shortest windows: 10 ms gives 2 looks inside the 20 ms windows, 3 inside the 30 ms
# contact window. The chip sets the floor, measured on the rp2 build on the emulated RP2040
# (bench/bench_rp2.py, `make bench`: rp2040_*): the first design's 2 ms overran on every tick
# (2.9-5 ms: three INA219 reads, heap-allocated call frames, a 4-6 ms page render in one tick).
# With the changes below a tick costs 2.1-2.5 ms median and 3.9-4.2 ms p99 per state on the
# emulated chip (20 s per state, stock image), and the collector's slot 10.3-11.9 ms. 5 ms was tried
# and measured: p99 3.1-3.6 ms, above 60 % of it, and no room for a real chip. A real Pico runs
# slower than the emulator (no flash cache modelled: x1.1 typical, up to x1.66 for code in flash)
# (the second current channel's ADC read and cross-check are in these figures): at 10 ms the
# worst p99 x1.66 (~7 ms) still fits a period, and the collector's slot its two.
#
# Tick cost on the emulated RP2040 (stock-frame image, figures rounded, us):
#   board.measure: INA219 shunt register, one read (+ the status pair every 2nd tick:
#     bus and power registers), ADC, limiter and VBUS pins              ~350 (~800)
#   session.tick: supervisor, ramp, regulator                           ~700
#   output.apply ~100, buttons.poll ~140, buzzer, watchdog, loop         ~400
#   then ONE of: a display line drawn into the frame or a 16-byte chunk sent (~250, a chunk
#   ~600 on the wire), one line of a page formatted (~900), the page's look (~1200, 5 Hz),
#   the events, the status line (~900, 1 Hz), the log's service, the collector (~8000, 0.1 Hz).
# No two pieces of low-rate work share a tick: a page is formatted a line per tick (display.py's
# generators) and only when what it shows changed, drawn a line per tick, then sent in chunks.
#
# Nothing in the safety path allocates: measurements go into a preallocated Meas, the
# session's command into its own Cmd, events into a preallocated queue. On a unit the loop runs
# under micropython.heap_lock() (lock_heap): that proves it, and on the rp2 port it also keeps
# every call frame on the C stack (under the lock the VM takes the stack instead of the heap for
# frames above its on-stack limit), so the stock image behaves as the raised-frame one does
# (hw/rp2/README.md) and no first-fit search of a fragmented heap lands in a tick. The low-rate
# work runs with the heap unlocked, one piece per tick; its garbage is collected in a slot of
# its own (GC_MS below).
#
# The loop is polled (sleep_us to the next deadline), not a hard timer: a tick needs I2C and
# may not run in an IRQ, and a hard-timer tick could not be heap-unlocked for the page work. A
# late tick is counted (`overruns`) and re-phased; the supervisor faults on a loop iteration
# longer than limits.LOOP_OVERRUN_US with the output on. @micropython.native/viper were not
# used: .mpy files with native code are per architecture (armv6m on the unit, x64 for the
# virtual unit), which would split the one firmware bundle both targets run.
import gc
import micropython
from micropython import const
from time import ticks_add, ticks_diff, ticks_ms, ticks_us, sleep_us
from array import array

import limits as L
import session as S
import buzzer as BZ
from supervisor import Meas

PERIOD_US = L.LOOP_PERIOD_US
DISPLAY_MS = const(200)
STATUS_MS = const(1_000)
ID_MS = const(5_000)
# rp2's longest watchdog timeout is 8388 ms; a hung loop is caught well before the
# patient would notice anything, and the output switch's pull-down opens at the reset.
WDT_MS = const(1_000)
# Tick cost histogram: 100 us bins, the last one counts everything from 6.3 ms on.
HIST_BIN_US = const(100)
HIST_BINS = const(64)

# The garbage the low-rate work leaves (page lines, the status line: ~1 KB/s) is collected
# every GC_MS as a job of its own, in a slot of two periods: a collection takes ~8 ms on the
# chip (it sweeps the whole heap), which with the tick's own work does not fit one period.
# Planned, so the heap never runs out inside some other job's tick and no collection lands in
# a tick unannounced; the safety case's bounds allow for that one longer slot.
GC_MS = const(10_000)

# low-rate jobs, one per tick at most
_J_NONE = const(0)
_J_EVENTS = const(1)
_J_RENDER = const(2)
_J_STATUS = const(3)
_J_SERVICE = const(4)
_J_FORMAT = const(5)
_J_GC = const(6)


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
        # low-rate work (events, display, status). Proves the tick allocates nothing, and on the
        # rp2 port keeps call frames on the C stack (see the top of this file); main.py sets it.
        # A surprise allocation would raise MemoryError: main.py's finally cuts the output (the
        # safe state); the tests run every state heap-locked on both ports so none is left.
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
        self.worst_us = 0  # how late the latest overrun ended, us
        # Tick cost (start of measure to the end of the tick's work), us: worst and a histogram
        # (HIST_BIN_US bins) the bench and the status tools read; allocated once here.
        self.tick_max_us = 0
        self.tick_hist = array("I", bytes(4 * HIST_BINS))
        self._svc = False  # the log's service is due (after a page)
        self._key = None  # what the page on the display shows (_page_key)
        self._fmt = False  # a page is being formatted, a line per tick
        self._stretch = 0  # extra us for the current tick's slot (the collector's)
        self.gc_runs = 0
        self._loop_us = 0
        self._nxt = self._last = 0
        now = ticks_ms()
        self._disp_next = now
        self._status_next = now
        self._id_next = ticks_add(now, ID_MS)
        self._gc_next = ticks_add(now, GC_MS)
        self._plan()
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
        self._ev = self.s.events  # its count read every tick (.n: no len() call)
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
        # At most one piece of low-rate work per tick, most urgent first; on ticks with none,
        # the display moves on by one line or one chunk.
        if self._ev.n:
            job = _J_EVENTS
        elif self._fmt:
            job = _J_FORMAT
        elif not self._svc and ticks_diff(now_ms, self._due) < 0:
            # None of the timed jobs is due yet (_due: the earliest of their deadlines, set by
            # _plan): one look instead of three, on most ticks.
            job = _J_NONE
            self._disp_step()
        elif ticks_diff(now_ms, self._disp_next) >= 0:
            job = _J_RENDER
        elif ticks_diff(now_ms, self._status_next) >= 0:
            job = _J_STATUS
        elif self._svc:
            job = _J_SERVICE
        elif ticks_diff(now_ms, self._gc_next) >= 0:
            job = _J_GC
        else:
            job = _J_NONE
            self._disp_step()
        if job:
            if self.lock_heap:
                micropython.heap_unlock()
                try:
                    self._slow(job, now_ms)
                finally:
                    micropython.heap_lock()
            else:
                self._slow(job, now_ms)
            self._plan()  # a job may have moved a deadline
        self.ticks += 1

    def _plan(self):
        # The earliest deadline of the timed jobs (page look, status, collector), for tick().
        d = self._disp_next
        if ticks_diff(self._status_next, d) < 0:
            d = self._status_next
        if ticks_diff(self._gc_next, d) < 0:
            d = self._gc_next
        self._due = d

    def _slow(self, job, now_ms):
        # Low-rate work that may allocate: events (buzzer, watchdog, log), a page, the status
        # line, the log's flash writes. One job per call.
        if job == _J_EVENTS:
            self._events(now_ms)
        elif job == _J_RENDER:
            self._disp_next = ticks_add(now_ms, DISPLAY_MS)
            self._svc = self.log is not None
            if self.s.state <= S.CONFIRM:
                self.b.output.prepare()
            try:
                k = self._page_key()
                if k != self._key:
                    self._key = k
                    self.b.display.begin(self._page())
                    self._fmt = True
            except Exception as e:
                self._ui_fail(e)
        elif job == _J_FORMAT:
            try:
                self._fmt = self.b.display.format()
            except Exception as e:
                self._fmt = False
                self._ui_fail(e)
        elif job == _J_STATUS:
            self._status_next = ticks_add(now_ms, STATUS_MS)
            if self.log is not None:
                self.log.each_second(self.s, self.meas.mv)
            self.b.keep_time()  # the RTC into the watchdog scratch: a reset keeps the clock
            if self.out is not None:
                self.status_line()
                if ticks_diff(now_ms, self._id_next) >= 0:
                    self._id_next = ticks_add(now_ms, ID_MS)
                    self.id_line()
        elif job == _J_GC:
            self._gc_next = ticks_add(now_ms, GC_MS)
            self._stretch = PERIOD_US  # this tick's slot is two periods
            gc.collect()
            self.gc_runs += 1
        elif job == _J_SERVICE:
            self._svc = False
            # Writes only while the output is off: a flash erase stalls the whole chip for
            # 45-400 ms (logstore.py explains the choice).
            self.log.service(self.s.cmd.enable)

    def _ui_fail(self, e):
        # A page that fails to draw is a display bug, not a hazard: cutting the output
        # abruptly for it would itself shock the patient. Counted; tests demand zero.
        self.ui_errors += 1
        self.ui_error = repr(e)
        self._key = None  # try the page again at the next look

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
        """The page for the session's state, drawn into the frame now (start-up, tests)."""
        d = self.b.display
        d._all(self._page())

    def _page(self):
        """A generator of the lines of the page for the session's state (display.g_*)."""
        s = self.s
        d = self.b.display
        st = s.state
        p = s.preset
        if st == S.IDLE:
            if not s.config_ok:
                return d.g_fault(L.B_CONFIG)
            elif not s.storage_ok:
                return d.g_fault(L.B_STORAGE)
            elif not s.selftest_ok:
                return d.g_message("SELF-TEST FAILED", self.selftest_text or "Call the technician.")
            elif s.refuse:
                return d.g_fault(s.refuse)
            return d.g_idle(p.name, s.target_ua, p.duration_ms // 1000, self.notice)
        elif st == S.CONFIRM:
            return d.g_confirm(p.name, s.target_ua, p.duration_ms // 1000)
        elif st == S.FAULT:
            return d.g_fault(s.fault)
        elif st == S.PAUSED:
            return d.g_paused(s.time_left_s)
        elif st == S.DONE or st == S.STOPPED:
            return d.g_ended(S.STATE_NAMES[st], S.END_TEXT[s.end_reason], s.dose_mamin())
        elif s.limited:
            return d.g_limited(s.time_left_s, s.actual_ua, s.target_ua, L.LIMIT_REASONS[s.limit_reason][1], s.polarity)
        pulsed = p.gate_hz > 0
        return d.g_running(S.STATE_NAMES[st], s.time_left_s, s.set_avg_ua if pulsed else s.set_ua,
                           s.actual_ua, s.polarity, pulsed)

    def _page_key(self):
        # What the page shows, as the display rounds it: a page is formatted only when this
        # changed (most 200 ms looks find nothing new; formatting allocates).
        s = self.s
        return (s.state, s.time_left_s, (s.set_ua + 50) // 100, (s.set_avg_ua + 50) // 100,
                (s.actual_ua + 50) // 100, s.polarity, s.limited, s.limit_reason, s.fault, s.refuse,
                s.preset_idx, s.target_ua, s.end_reason, s.config_ok, s.storage_ok, s.selftest_ok,
                self.notice)

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
        hist = self.tick_hist
        period = PERIOD_US  # (a module global: a look-up per use)
        while True:
            t0 = ticks_us()
            self._loop_us = ticks_diff(t0, last)
            last = t0
            tick(ticks_ms())
            t1 = ticks_us()
            c = ticks_diff(t1, t0)
            if c > self.tick_max_us:
                self.tick_max_us = c
            c //= HIST_BIN_US
            hist[c if c < HIST_BINS else HIST_BINS - 1] += 1
            nxt = ticks_add(nxt, period + self._stretch)
            self._stretch = 0
            wait = ticks_diff(nxt, t1)
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

    def tick_stats(self):
        """(ticks counted, median us, p99 us, max us, overruns) from the histogram: the
        percentiles are the upper edges of their HIST_BIN_US bins. Allocates: not in the loop."""
        h = self.tick_hist
        n = sum(h)
        out = [n]
        for q in (50, 99):
            k = (n * q + 99) // 100
            acc = 0
            for i in range(HIST_BINS):
                acc += h[i]
                if acc >= k:
                    out.append((i + 1) * HIST_BIN_US)
                    break
            else:
                out.append(0)
        out.append(self.tick_max_us)
        out.append(self.overruns)
        return out

    def reset_stats(self):
        """Start a new measurement window (histogram, worst tick, overruns) and re-phase the
        loop to now: time spent outside run() (a bench's bookkeeping) is not a late tick."""
        h = self.tick_hist
        for i in range(HIST_BINS):
            h[i] = 0
        self.tick_max_us = 0
        self.overruns = 0
        self.worst_us = 0
        self.rephase()

    def rephase(self):
        """Carry on from now: the time since run() returned (a bench's own bookkeeping) is
        neither a late tick nor a loop stall for the supervisor's overrun rule."""
        self._nxt = self._last = ticks_us()
