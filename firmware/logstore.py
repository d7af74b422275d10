"""Session logs and the event log on the unit's flash, framed by records.py.

What the treatment loop calls (app.py / main.py integration):

    log = logstore.Log("/log", journal=journal.Journal(board.fram))
                                                # once, after the filesystem is mounted
    log.open(reset_cause_text, VERSION)         # at boot, before the self-test: boot count + 1,
                                                # recovers a session cut by power loss, logs the boot
    log.selftest(ok, results)                   # selftest.run's outcome
    store.save(cfg, on_change=log.config_event) # config changes, old -> new (cfgstore)
    ...in App.on_event(code, a, b) (low rate, outside the heap lock):
    log.on_session_event(code, a, b, app.s)     # opens the session at IDLE -> CONFIRM (output still
                                                # off: the summary is on flash before any current),
                                                # session events, faults, end
    if not log.summary_ok: refuse START         # suggested: at CONFIRM, the summary could not be
                                                # written (damaged or full flash)
    ...once a second, in the loop's low-rate pass (with a journal: one small allocation):
    log.each_second(app.s, app.meas.mv)         # = sample(set, actual, mV, load, polarity, state)
                                                #   + progress(dose uA*s, treatment s), and the
                                                #   same into the FRAM journal (~1.2 ms on rp2)
    ...in App._slow (each pass, e.g. with the display at 5 Hz):
    log.service(output_on)                      # writes what is pending, only when allowed;
                                                # output_on: the last Cmd's enable
    log.set_clock(unix_s)                       # when the host sets the RTC (event + RTC-valid flag)

Blackout choice: on rp2 a flash program or erase stops the chip, interrupts included.
Measured on the virtual flash (tests/mpy/storage_checks.py `blackout`, 20-min session): a flush
while treating can hit a 4 KiB sector erase (LittleFS allocates a block per 4 KiB of file data,
rewrites the tail block of an append and compacts metadata): 45 ms with typical timings,
400 ms worst case, in one uninterruptible piece. The supervisor faults a loop iteration over
25 ms while the output is enabled (limits.LOOP_OVERRUN_US), and a 400 ms stall would also hold
the contact-loss and over-current reactions (20-30 ms windows) for 400 ms. So the default
policy is OFF_ONLY: nothing is written to flash while the output is enabled (PAUSED included:
the 50 uA contact test current flows there); samples, session events and event-log events wait
in preallocated RAM (RING_S seconds, 10 bytes each: 30 KB) and go to flash as soon as the
output is off (DONE, STOPPED, FAULT, IDLE).
Power cuts: the summary is written and closed at CONFIRM before any current flows. While the
session is open, each second's sample and the dose and treatment time so far also go to the
board's FRAM (journal.py: no erase, no stall; ~0.9 ms of I2C bus time a second). The next boot
closes a session cut by power loss with reason END_POWER_LOST, the dose and time of the last
whole checkpoint, and the trace completed from the FRAM: at most ~2 s of dose, time and trace
lost (`make bench`: storage_*_lost_by_power_cut_max_s). Without the chip (it does not answer
at boot) a cut loses the session's trace and leaves dose 0, as before the journal; the boot's
event log says so. The session events and event-log events of the treatment stay in RAM only.
The CADENCE policy (flush every FLUSH_S with the output on: at most 30 s of trace lost) exists
for a board whose loop can take the blackout; it must not be enabled with the current
supervisor limits.
Figures (virtual flash, same check): OFF_ONLY programs ~680 bytes and erases ~0.2 blocks per
session-minute; CADENCE ~5500 bytes and ~2.3 erases (each append rewrites the tail block).
About 32 sessions of 40 min fit on the Pico's 1408 KiB before pruning starts (`capacity`).

Files under the log directory: events.log (the event log, T_EVENT and T_TEXT, rotated to
events.old at EV_FILE_MAX bytes), sNNNNNN.sum (a session's summary, then T_END when it ends),
sNNNNNN.trc (its trace: T_SAMPLES blocks, T_SEV session events), and the small files of
logfiles.py (state, acked). Every record carries seq, boot count, RTC-valid flag and time
(records.py). No patient data: session numbers, settings and measurements only.

The module is split by responsibility, behind this one Log: the RAM rings and their writing
(here), the files and their recovery after a power cut (logfiles.py), retention when the flash
fills (logretain.py: a budget of BUDGET_PCT leaves 30 % headroom, so a full budget never stops a
treatment nor the current summary), the event-log codes (logcodes.py). A write that still fails
(ENOSPC, damage) is counted (write_errors, lost) and never raised to the loop.
"""
import os
import struct
from array import array

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import time

import records as R
# The event-log codes, the files and their recovery, and retention live in their own modules;
# their public names stay reachable here (logstore.L_CLOCK, logstore.END_POWER_LOST, ...).
from logcodes import (END_POWER_LOST, L_BOOT, L_CLOCK, L_CONFIG, L_FAULT, L_FIRMWARE, L_HOST,  # noqa: F401
                      L_JOURNAL, L_LOST, L_PRUNED, L_RECOVERED, L_REFUSED, L_SELFTEST, L_SESSION, LOG_NAMES)
from logfiles import HOST_EXIT, SEQ_BLOCK, LogFiles, mark_host_exit  # noqa: F401
from logretain import Retention

OFF_ONLY = const(0)
CADENCE = const(1)
FLUSH_S = const(30)
BUDGET_PCT = const(70)
RING_S = const(3000)  # 50 min of 1 Hz samples (45 min is the hard session limit) = 30 KB
SEV_N = const(64)
EVQ_N = const(32)
EV_FILE_MAX = const(8192)

# rp2 sets the RTC to 2021-01-01 at every boot; a later year means a host has set it since.
RTC_SET_YEAR = const(2024)

# Session codes used here (session.py: kept numeric so host tools need not import session)
_EV_STATE = const(1)
_EV_START = const(2)
_EV_FAULT = const(7)
_EV_END = const(8)
_EV_REFUSED = const(9)
_IDLE = const(0)
_CONFIRM = const(1)

_ENOSPC = const(28)


class Log(LogFiles, Retention):
    """The unit's log: RAM rings written out when allowed (here), the files and their recovery
    (logfiles.LogFiles), retention (logretain.Retention)."""

    def __init__(self, root="/log", policy=OFF_ONLY, ring_s=RING_S, budget_pct=BUDGET_PCT, clock=None, usage=None,
                 max_summaries=None, journal=None):
        self.root = root
        # journal: a journal.Journal on the board's FRAM (per-second dose, time and samples
        # while current flows), or None.
        self.journal = journal
        self.policy = policy
        self.budget_pct = budget_pct
        self.max_summaries = max_summaries
        self._clock = clock or time.time
        self._usage = usage or self._statvfs
        self.rtc_valid = False
        self.boot = 0
        self.seq = 0
        self._seq_end = 0
        self.session = 0  # last session number
        self.version = ""
        # Session in RAM (preallocated; sample() and sev() never allocate)
        self.open_session = 0  # session being logged (0: none)
        self.summary_ok = False  # the open session's summary is on flash
        self.started = False
        self._ring = bytearray(ring_s * R.SAMPLE_BYTES)  # the record's u16 LE sample layout
        self._ring_n = ring_s
        self._n = 0  # samples pending
        self._sec = 0  # session second of the next sample
        self._t0 = 0  # session second of the first pending sample
        self._written = 0  # samples of this session on flash
        self._dose = 0
        self._treat_s = 0
        self._sev_sec = array("i", [0] * SEV_N)
        self._sev_code = bytearray(SEV_N)
        self._sev_a = array("i", [0] * SEV_N)
        self._sev_b = array("i", [0] * SEV_N)
        self._sev_n = 0
        self._evq_code = bytearray(EVQ_N)
        self._evq_a = array("i", [0] * EVQ_N)
        self._evq_b = array("i", [0] * EVQ_N)
        self._evq_t = array("i", [0] * EVQ_N)
        self._evq_n = 0
        self._texts = []  # (code, text): boot, config, firmware (never from the control loop)
        self._end = None  # (reason, dose, treat_s) waiting to be written
        self._buf = bytearray(R.MAX_FRAME)
        self._last_flush_s = 0
        # Counters (exposed for the status channel, tests and `make bench`)
        self.samples_total = 0
        self.lost = 0  # samples, session events or events dropped (ring full or write failed)
        self.write_errors = 0
        self.bytes_written = 0
        self.pruned = 0

    # --- the session --------------------------------------------------------------------
    def begin(self, preset_idx, p, target_ua):
        """Open a session: write and close its summary now. Call with the output off (at
        CONFIRM). p: config.Preset. Returns True if the summary is on flash."""
        self.flush()  # anything pending goes first (an ended session's end record included)
        if self.open_session:
            # Still open: a treatment whose end never came (closed as it stands) or a CONFIRM
            # that never started (dropped).
            if self.started:
                self._end = (0, self._dose, self._treat_s, -1)
                self.flush()
            else:
                self.abandon()
        self.session += 1
        n = self.session
        self.open_session = n
        self.started = False
        self._n = self._sec = self._t0 = self._sev_n = self._written = 0
        self._dose = self._treat_s = 0
        self._end = None
        b = self._buf
        if self.journal is not None:
            self.journal.clear()  # no checkpoint of an older session numbered n survives
        settings = (preset_idx, target_ua, p.ceiling_ua, p.duration_ms // 1000, p.slew_up, p.slew_down,
                    1 if p.reverse else 0, p.polarity, p.area_cm2, p.gate_hz, p.gate_duty_pct, p.dose_cap_uas)
        try:
            self._room(2048)
            self._write_state()
            ln = R.pack_summary(b, 0, self._next_seq(), self.boot, self._flags(), self._now(), n,
                                1 if self.rtc_valid else 0, settings, self.version, p.name)
            k = R.seal(b, 0, R.T_SUMMARY, ln)
            self._put(self._sum(n), "wb", memoryview(b)[:k])
            self.summary_ok = True
            if self.journal is not None:
                self.journal.open(n)
        except OSError:
            self.write_errors += 1
            self.summary_ok = False
        return self.summary_ok

    def abandon(self):
        """The nurse did not confirm (CONFIRM -> IDLE): no current flowed; drop the summary."""
        n = self.open_session
        self.open_session = 0
        self._n = self._sev_n = 0
        if n:
            for path in (self._sum(n), self._trc(n)):
                try:
                    os.remove(path)
                except OSError:
                    pass

    def sample(self, set_ua, act_ua, mv, load_ohm, polarity, state):
        """Once a second while a session is open. Stores ints into the preallocated ring; no
        allocation, no I/O."""
        if not self.open_session:
            return
        i = self._n
        self._sec += 1
        if i >= self._ring_n:
            self.lost += 1  # the ring is sized for the longest session: should not happen
            return
        v0 = 0 if set_ua < 0 else (65535 if set_ua > 65535 else set_ua)
        v1 = 0 if act_ua < 0 else (65535 if act_ua > 65535 else act_ua)
        v2 = 65535 if mv < 0 else (65534 if mv > 65534 else mv)
        v3 = 65535 if load_ohm < 0 else (65534 if load_ohm > 655340 else load_ohm // 10)
        r = self._ring
        j = i * 10
        r[j] = v0 & 0xFF
        r[j + 1] = v0 >> 8
        r[j + 2] = v1 & 0xFF
        r[j + 3] = v1 >> 8
        r[j + 4] = v2 & 0xFF
        r[j + 5] = v2 >> 8
        r[j + 6] = v3 & 0xFF
        r[j + 7] = v3 >> 8
        r[j + 8] = (state & 0x7F) | ((polarity & 1) << 7)
        r[j + 9] = 0
        self._n = i + 1
        self.samples_total += 1

    def each_second(self, s, mv):
        """sample() + progress() from a session.Session and the electrode mV (meas.mv): the one
        call the loop makes each second. No allocation but the journal checkpoint's CRC (a
        small int object on rp2), so outside the heap lock."""
        self.second(s.set_ua, s.actual_ua, mv, s.load_ohm, s.polarity, s.state, s.sup.dose_uas, s.treat_ms // 1000)

    def second(self, set_ua, act_ua, mv, load_ohm, polarity, state, dose_uas, treat_s):
        """sample() + progress(), then the same into the FRAM journal (two short I2C writes)."""
        n0 = self._n
        self.sample(set_ua, act_ua, mv, load_ohm, polarity, state)
        self._dose = dose_uas
        self._treat_s = treat_s
        jr = self.journal
        if jr is not None and self._n > n0:
            jr.put(self._sec - 1, self._ring, n0 * R.SAMPLE_BYTES, dose_uas, treat_s)

    def progress(self, dose_uas, treat_s):
        """Dose and treatment time so far (carried by the next sample block)."""
        self._dose = dose_uas
        self._treat_s = treat_s

    def sev(self, code, a, b):
        """A session event (adjust, pause, fault...), into RAM; no allocation."""
        if not self.open_session:
            return
        i = self._sev_n
        if i >= SEV_N:
            self.lost += 1
            return
        self._sev_sec[i] = self._sec  # the second of the next sample
        self._sev_code[i] = code
        self._sev_a[i] = a
        self._sev_b[i] = b
        self._sev_n = i + 1

    def end(self, reason, dose_uas, treat_s):
        """The session ended (output off): its end record goes out at the next flush."""
        if self.open_session:
            self._dose = dose_uas
            self._treat_s = treat_s
            self._end = (reason, dose_uas, treat_s, -1)

    # --- the event log ------------------------------------------------------------------
    def event(self, code, a=0, b=0):
        """An event-log event into RAM (no allocation); written at the next flush."""
        i = self._evq_n
        if i >= EVQ_N:
            self.lost += 1
            return
        self._evq_code[i] = code
        self._evq_a[i] = a
        self._evq_b[i] = b
        self._evq_t[i] = self._now()
        self._evq_n = i + 1

    def text(self, code, text):
        """An event with words (boot, config change, self-test, firmware). Allocates: not for
        the control loop."""
        if len(self._texts) < EVQ_N:
            self._texts.append((code, text))
        else:
            self.lost += 1

    def selftest(self, ok, results=()):
        """Self-test outcome: results as selftest.run gives them, (item, ok, words)."""
        bad = [("%s: %s" % (r[0], r[2])) for r in results if not r[1]]
        self.text(L_SELFTEST, ("passed" if ok else "FAILED ") + "; ".join(bad))

    def config_event(self, path, old, new):
        """cfgstore.save(cfg, on_change=log.config_event): one event per changed value."""
        self.text(L_CONFIG, "%s %s -> %s" % (path, old, new))

    def set_clock(self, unix_s, old=None):
        """The host set the RTC: from now on records carry RTC time and the RTC-valid flag.
        old: the time before the change (read it before setting the RTC)."""
        if old is None:
            old = self._now()
        self.rtc_valid = True
        self.event(L_CLOCK, old, unix_s)

    def on_session_event(self, code, a, b, s):
        """Feed every session event here (App.on_event). s: the session.Session."""
        if code == _EV_STATE:
            if a == _CONFIRM and b == _IDLE:
                self.begin(s.preset_idx, s.preset, s.target_ua)
                return
            if a == _IDLE and b == _CONFIRM and not self.started:
                self.abandon()
                return
        if code == _EV_START:
            self.started = True
        elif code == _EV_FAULT:
            self.event(L_FAULT, a, b)
        elif code == _EV_REFUSED:
            self.event(L_REFUSED, a, b)
        self.sev(code, a, b)
        if code == _EV_END:
            self.progress(b, s.treat_ms // 1000)
            self.end(a, b, s.treat_ms // 1000)

    # --- writing ------------------------------------------------------------------------
    def pending(self):
        return bool(self._n or self._sev_n or self._evq_n or self._texts or self._end)

    def service(self, output_on, now_s=None):
        """Call from the loop's low-rate path. Writes only when the policy allows: with the
        output off (OFF_ONLY), or also every FLUSH_S with it on (CADENCE). Never raises."""
        if not self.pending():
            return False
        if output_on:
            if self.policy != CADENCE:
                return False
            t = self._now() if now_s is None else now_s
            if t - self._last_flush_s < FLUSH_S:
                return False
        self.flush()
        return True

    def flush(self):
        """Write everything pending now (blocks for the flash). Never raises."""
        try:
            self._flush()
        except Exception:
            self.write_errors += 1
        self._last_flush_s = self._now()

    def _flush(self):
        b = self._buf
        mv = memoryview(b)
        n = self.open_session
        if n and (self._n or self._sev_n):
            self._room(self._n * R.SAMPLE_BYTES + self._sev_n * 40 + 512)
            try:
                f = open(self._trc(n), "ab")
                try:
                    i = 0
                    while i < self._n:
                        k = self._n - i
                        if k > R.MAX_SAMPLES:
                            k = R.MAX_SAMPLES
                        p = R.pack_prefix(b, 0, self._next_seq(), self.boot, self._flags(), self._now())
                        q = R.HEADER + p
                        struct.pack_into(R.SAMPLES, b, q, n, self._t0 + i, self._dose, self._treat_s, k)
                        q += R.SAMPLES_LEN
                        mv[q:q + k * R.SAMPLE_BYTES] = memoryview(self._ring)[i * R.SAMPLE_BYTES:(i + k) * R.SAMPLE_BYTES]
                        m = R.seal(b, 0, R.T_SAMPLES, p + R.SAMPLES_LEN + k * R.SAMPLE_BYTES)
                        f.write(mv[:m])
                        self.bytes_written += m
                        i += k
                    for j in range(self._sev_n):
                        p = R.pack_prefix(b, 0, self._next_seq(), self.boot, self._flags(), self._now())
                        struct.pack_into(R.SEV, b, R.HEADER + p, n, self._sev_sec[j], self._sev_code[j],
                                         self._sev_a[j], self._sev_b[j])
                        m = R.seal(b, 0, R.T_SEV, p + 17)
                        f.write(mv[:m])
                        self.bytes_written += m
                finally:
                    f.close()
            except OSError:
                # Trace lost; the summary and end record still get their chance below.
                self.lost += self._n + self._sev_n
                self.write_errors += 1
            self._written += self._n
            self._t0 = self._sec
            self._n = self._sev_n = 0
        if self._end is not None and n:
            reason, dose, treat, cnt = self._end
            if cnt < 0:
                cnt = self._written
            self._room(256)
            try:
                p = R.pack_prefix(b, 0, self._next_seq(), self.boot, self._flags(), self._now())
                struct.pack_into(R.END, b, R.HEADER + p, n, reason, dose, treat, cnt, self.lost)
                m = R.seal(b, 0, R.T_END, p + 21)
                self._put(self._sum(n), "ab", mv[:m])
            except OSError:
                self.lost += 1  # the next boot's recovery closes the session instead
                self.write_errors += 1
            self._end = None
            self.open_session = 0
            self.started = False
            if self.journal is not None:
                self.journal.close()
            self.event(L_SESSION, n, reason)
        if self._evq_n or self._texts:
            try:
                self._write_events()
            except OSError:
                self.lost += self._evq_n + len(self._texts)
                self.write_errors += 1
                self._evq_n = 0
                self._texts = []

    def _write_events(self):
        b = self._buf
        mv = memoryview(b)
        self._room(1024)
        path = self._p("events.log")
        try:
            if os.stat(path)[6] > EV_FILE_MAX:
                os.rename(path, self._p("events.old"))
        except OSError:
            pass
        f = open(path, "ab")
        try:
            for i in range(self._evq_n):
                p = R.pack_event(b, 0, self._next_seq(), self.boot, self._flags(), self._evq_t[i],
                                 self._evq_code[i], self._evq_a[i], self._evq_b[i])
                m = R.seal(b, 0, R.T_EVENT, p)
                f.write(mv[:m])
                self.bytes_written += m
            for code, text in self._texts:
                p = R.pack_text(b, 0, self._next_seq(), self.boot, self._flags(), self._now(), code, text)
                m = R.seal(b, 0, R.T_TEXT, p)
                f.write(mv[:m])
                self.bytes_written += m
        finally:
            f.close()
            self._evq_n = 0
            self._texts = []

    def _put(self, path, mode, data):
        f = open(path, mode)
        try:
            f.write(data)
        finally:
            f.close()
        self.bytes_written += len(data)

    def _next_seq(self):
        s = self.seq
        if s >= self._seq_end:
            self._seq_end = s + SEQ_BLOCK
            self._write_state()
        self.seq = s + 1
        return s

    def _rtc_set(self):
        try:
            return time.gmtime(int(self._clock()))[0] >= RTC_SET_YEAR
        except (OverflowError, ValueError, TypeError):
            return False

    def _flags(self):
        return R.F_RTC if self.rtc_valid else 0

    def _now(self):
        return int(self._clock()) & 0xFFFFFFFF
