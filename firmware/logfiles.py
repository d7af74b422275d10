"""The log directory's files and their recovery, for logstore.Log (a base class of it).

  state          "boot seq_reserved session version crc": boot count, next unused sequence
                 block, last session number, firmware version (tmp + rename). Sequence numbers
                 are reserved SEQ_BLOCK at a time, so they stay monotonic across power cuts (gaps
                 allowed, never repeats).
  acked          written by the host: the highest session number it has archived.
  hostexit       left by a host before it restarts the unit: the next boot is logged as such.
  sNNNNNN.sum    one session's summary; sNNNNNN.trc its trace (logstore writes both).

At boot, open() counts the boot, reserves sequence numbers and closes a session cut by power loss
(_recover: the trace on flash completed from the FRAM journal, the journal's last whole
checkpoint of dose and time, end reason END_POWER_LOST). attach() continues the current boot's
log for a host session at the REPL. Uses the RAM rings and writers of logstore.Log.
"""
import os
from binascii import crc32

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import records as R
from logcodes import END_POWER_LOST, L_BOOT, L_FIRMWARE, L_RECOVERED

SEQ_BLOCK = const(256)


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


class LogFiles:
    # --- paths and small files --------------------------------------------------------
    def _p(self, name):
        return self.root + "/" + name

    def _sum(self, n):
        return self._p("s%06d.sum" % n)

    def _trc(self, n):
        return self._p("s%06d.trc" % n)

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
