"""Retention of the log's files, for logstore.Log (a base class of it): what goes when the flash
fills. Before each write, if the filesystem is fuller than the Log's budget_pct (os.statvfs),
prune one file at a time: acknowledged traces oldest first; then, if there are more summaries
than max_summaries (about a third of the budget at ~2 KiB of LittleFS each: ~160 on a Pico), the
oldest summary (its trace first if it still has one); then unacknowledged traces oldest first
(event L_PRUNED with b = 0: "not archived"); then the old event log; then summaries oldest first
(b = 2). The newest session (current or just ended) is never pruned.
"""
import os

from logcodes import L_PRUNED


class Retention:
    def _statvfs(self):
        st = os.statvfs(self.root)
        return (st[2] - st[3]) * st[0], st[2] * st[0]

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
