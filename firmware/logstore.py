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

Files under the log directory:
  state          "boot seq_reserved session version crc": boot count, next unused sequence
                 block, last session number, firmware version (tmp + rename; a new version at
                 boot is logged as L_FIRMWARE old -> new). Sequence numbers are reserved SEQ_BLOCK at a time,
                 so they stay monotonic across power cuts (gaps allowed, never repeats).
  acked          written by the host: the highest session number it has archived.
  events.log     the event log (T_EVENT, T_TEXT); rotated to events.old at EV_FILE_MAX bytes.
  sNNNNNN.sum    one session's summary (T_SUMMARY, then T_END when it ends).
  sNNNNNN.trc    its trace (T_SAMPLES blocks, T_SEV session events).
Every record carries seq, boot count, RTC-valid flag and time (records.py). No patient data:
session numbers, settings and measurements only.

Retention: before each write, if the filesystem is fuller than BUDGET_PCT (os.statvfs), prune
one file at a time: acknowledged traces oldest first; then, if there are more summaries than
max_summaries (about a third of the budget at ~2 KiB of LittleFS each: ~160 on a Pico), the
oldest summary (its trace first if it still has one); then unacknowledged traces oldest first
(event L_PRUNED with b = 0: "not archived"); then the old event log; then summaries oldest
first (b = 2). The newest session (current or just ended) is never pruned. The budget leaves 30 % headroom, so a full budget never stops a
treatment (nothing is written during one) nor the current summary. A write that still fails
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


from binascii import crc32
import time

import records as R

OFF_ONLY = const(0)
CADENCE = const(1)
FLUSH_S = const(30)
BUDGET_PCT = const(70)
RING_S = const(3000)  # 50 min of 1 Hz samples (45 min is the hard session limit) = 30 KB
SEV_N = const(64)
EVQ_N = const(32)
SEQ_BLOCK = const(256)
EV_FILE_MAX = const(8192)
END_POWER_LOST = const(100)  # end reason written at boot for a session cut by power loss

# Event-log codes (T_EVENT / T_TEXT); a, b as noted
L_BOOT = const(1)  # text: reset cause, firmware version
L_CONFIG = const(2)  # text: "path old -> new"
L_FAULT = const(3)  # a = fault code, b = uA at the trip
L_SELFTEST = const(4)  # a = 1 passed / 0 failed; text: the first failure
L_CLOCK = const(5)  # a = old time, b = new time (RTC set by the host)
L_FIRMWARE = const(6)  # text: old -> new version
L_PRUNED = const(7)  # a = session, b = 0 unarchived trace / 1 archived trace / 2 summary / 3 old events
L_LOST = const(8)  # a = records or samples lost, b = write errors
L_RECOVERED = const(9)  # a = session cut by power loss, b = samples on flash
L_REFUSED = const(10)  # a = blocking code, b = state
L_SESSION = const(11)  # a = session, b = end reason
L_HOST = const(12)  # text: what a host tool did (logs acknowledged, firmware deployed)
L_JOURNAL = const(13)  # text: the FRAM power-cut journal is missing or failing
LOG_NAMES = ("", "boot", "config", "fault", "selftest", "clock", "firmware", "pruned", "lost",
             "recovered", "refused", "session", "host", "journal")
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


def _crc_text(s):
    return "%08x" % (crc32(s.encode()) & 0xFFFFFFFF)


HOST_EXIT = "hostexit"  # marks the next boot as the end of a host session


def mark_host_exit(root="/log"):
    """Before a host restarts the unit (hostcmd.host_done): the next boot is logged as such."""
    f = open(root + "/" + HOST_EXIT, "w")
    try:
        f.write("1\n")
    finally:
        f.close()


class Log:
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

    # --- paths and small files --------------------------------------------------------
    def _p(self, name):
        return self.root + "/" + name

    def _sum(self, n):
        return self._p("s%06d.sum" % n)

    def _trc(self, n):
        return self._p("s%06d.trc" % n)

    def _statvfs(self):
        st = os.statvfs(self.root)
        return (st[2] - st[3]) * st[0], st[2] * st[0]

    def _write_state(self):
        body = "%d %d %d %s" % (self.boot, self._seq_end, self.session, self.version or "-")
        f = open(self._p("state.tmp"), "w")
        try:
            f.write(body + " " + _crc_text(body) + "\n")
        finally:
            f.close()
        os.rename(self._p("state.tmp"), self._p("state"))

    def _read_state(self):
        # -> (boot, seq_reserved, session, version) or None
        try:
            with open(self._p("state")) as f:
                w = f.read().split()
            body = " ".join(w[:4])
            if len(w) == 5 and _crc_text(body) == w[4]:
                return int(w[0]), int(w[1]), int(w[2]), w[3]
        except (OSError, ValueError):
            pass
        return None

    def _sessions(self):
        # -> sorted session numbers that have a summary, and those that have a trace
        sums = []
        trcs = []
        try:
            names = os.listdir(self.root)
        except OSError:
            return sums, trcs
        for nm in names:
            if len(nm) == 11 and nm[0] == "s" and nm[1:7].isdigit():
                if nm.endswith(".sum"):
                    sums.append(int(nm[1:7]))
                elif nm.endswith(".trc"):
                    trcs.append(int(nm[1:7]))
        sums.sort()
        trcs.sort()
        return sums, trcs

    def acked(self):
        """The highest session number the host has archived (0: none)."""
        try:
            with open(self._p("acked")) as f:
                return int(f.read().strip() or "0")
        except (OSError, ValueError):
            return 0

    def ack(self, n):
        """Record that the host archived sessions up to n (host calls this over the REPL)."""
        f = open(self._p("acked.tmp"), "w")
        try:
            f.write("%d\n" % n)
        finally:
            f.close()
        os.rename(self._p("acked.tmp"), self._p("acked"))

    # --- boot ---------------------------------------------------------------------------
    def open(self, reset_cause="", version=""):
        """At boot: count the boot, reserve sequence numbers, close a session cut by power
        loss, log the boot. Returns the boot count. Raises OSError only if the log directory
        cannot be written at all (a damaged filesystem: the loop should refuse treatment)."""
        self.version = version
        self.rtc_valid = self._rtc_set()
        try:
            os.mkdir(self.root)
        except OSError:
            pass
        st = self._read_state()
        sums, trcs = self._sessions()
        if st is None:
            st = self._rebuild_state(sums)
        self.boot = st[0] + 1
        self.seq = st[1]
        self._seq_end = self.seq + SEQ_BLOCK
        self.session = st[2]
        if sums and sums[-1] > self.session:
            self.session = sums[-1]
        self._write_state()
        if sums:
            self._recover(sums[-1])
        self.text(L_BOOT, "reset %s, firmware %s" % (self._host_exit(reset_cause), version))
        if st[3] not in ("-", "?", version):
            self.text(L_FIRMWARE, "%s -> %s" % (st[3], version))
        self.flush()
        return self.boot

    def _host_exit(self, reset_cause):
        # A host session ended with this restart (hostcmd.host_done left the mark): say so,
        # so an engineer does not read a host's reset as a fault.
        try:
            os.remove(self._p(HOST_EXIT))
        except OSError:
            return reset_cause
        # rp2 restarts through its watchdog (machine.reset() too), so the raw cause would
        # read "watchdog" for what was a deliberate restart by the host tool.
        return "by the host after a host session (rp2 reports %s)" % reset_cause

    def attach(self, version=""):
        """For a host session at the REPL when main.py is not running: continue the current
        boot's log (no boot counted, no recovery) so host actions (configuration, clock,
        firmware) reach the event log with fresh sequence numbers. Returns the boot count."""
        st = self._read_state()
        sums, _t = self._sessions()
        if st is None:
            st = self._rebuild_state(sums)
        self.version = version or st[3]
        self.rtc_valid = self._rtc_set()
        self.boot = st[0]
        # A fresh reservation: the running boot may still hold numbers below st[1].
        self.seq = st[1]
        self._seq_end = self.seq + SEQ_BLOCK
        self.session = max(st[2], sums[-1] if sums else 0)
        self._write_state()
        return self.boot

    def _rebuild_state(self, sums):
        # state lost or damaged: the largest boot and seq found in the records on flash.
        boot = seq = 0
        names = ["events.log", "events.old"]
        if sums:
            names.append("s%06d.sum" % sums[-1])
        for nm in names:
            for r in self._records(self._p(nm)):
                if r["boot"] > boot:
                    boot = r["boot"]
                if r["seq"] >= seq:
                    seq = r["seq"] + 1
        return boot, seq + SEQ_BLOCK, sums[-1] if sums else 0, "?"

    def _records(self, path, stats=None):
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return []
        return R.read(data, stats)

    def _recover(self, n):
        # Session n has no end record: the power went while it was open. Close it with what
        # was kept: the trace on flash, completed from the FRAM journal, and the journal's last
        # whole checkpoint of dose and time. Safe to repeat if this too is cut short: samples
        # already on flash are not copied again.
        recs = self._records(self._sum(n))
        if not recs or any(r["type"] == "end" for r in recs):
            return
        dose = treat = cnt = nxt = 0
        for r in self._records(self._trc(n)):
            if r["type"] == "samples":
                dose, treat = r["dose_uas"], r["treat_s"]
                cnt += len(r["samples"])
                if r["t0"] + len(r["samples"]) > nxt:
                    nxt = r["t0"] + len(r["samples"])
        self.open_session = n
        self._written = cnt
        self._n = 0
        jr = self.journal
        ck = jr.checkpoint(n) if jr is not None else None
        if ck is not None:
            jcount, jdose, jtreat = ck
            if jdose > dose or jtreat > treat:
                dose, treat = jdose, jtreat
            k = jcount - nxt
            if k > self._ring_n:
                k = self._ring_n
            if k > 0:
                try:
                    step = 100
                    i = 0
                    while i < k:
                        m = k - i if k - i < step else step
                        jr.read(nxt + i, memoryview(self._ring)[i * R.SAMPLE_BYTES:(i + m) * R.SAMPLE_BYTES])
                        i += m
                    self._t0 = nxt
                    self._sec = nxt + k
                    self._n = k
                    self._dose = dose
                    self._treat_s = treat
                except OSError:
                    self._n = 0
        self._end = (END_POWER_LOST, dose, treat, -1)
        self.event(L_RECOVERED, n, cnt + self._n)
        self.flush()

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

    # --- retention ----------------------------------------------------------------------
    def _room(self, need):
        """Prune until used + need fits the budget. False if nothing is left to prune: the
        budget is soft, the write goes ahead into the headroom above it."""
        for _ in range(1000):
            try:
                used, total = self._usage()
            except OSError:
                return False
            if used + need <= total * self.budget_pct // 100:
                return True
            if not self._prune_one():
                return False
        return False

    def _prune_one(self):
        sums, trcs = self._sessions()
        keep = self.session  # the newest session (current, or just ended) is never pruned
        ack = self.acked()
        trcs = [n for n in trcs if n != keep]
        for n in trcs:
            if n <= ack:
                return self._drop(self._trc(n), n, 1)
        sums = [n for n in sums if n != keep]
        if self.max_summaries is None:
            try:
                # Summaries may hold about a third of the budget (~2 KiB of LittleFS each):
                # beyond that the oldest go even while unarchived traces remain.
                self.max_summaries = self._usage()[1] * self.budget_pct // 100 // 3 // 2048
            except OSError:
                self.max_summaries = 100
        if sums and len(sums) > self.max_summaries:
            n = sums[0]
            if n in trcs:
                return self._drop(self._trc(n), n, 0)
            return self._drop(self._sum(n), n, 2)
        if trcs:
            return self._drop(self._trc(trcs[0]), trcs[0], 0)
        try:
            os.stat(self._p("events.old"))
            return self._drop(self._p("events.old"), 0, 3)
        except OSError:
            pass
        if sums:
            return self._drop(self._sum(sums[0]), sums[0], 2)
        return False

    def _drop(self, path, n, why):
        try:
            os.remove(path)
        except OSError:
            return False
        self.pruned += 1
        if why != 1:
            self.event(L_PRUNED, n, why)
        return True

