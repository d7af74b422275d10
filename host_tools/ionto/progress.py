"""A one-line progress bar for long transfers (pulls, deploys)."""
import sys
import time


class Progress:
    """A one-line progress bar on stderr, drawn only when stderr is a terminal."""

    def __init__(self, total, label, stream=None):
        self.total = max(1, int(total))
        self.label = label
        self.done = 0
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def __call__(self, done, total=None):
        if total:
            self.total = max(1, int(total))
        self.done = done
        if not self.live:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write("\r%-24s [%-30s] %3d%%" % (self.label[:24], bar, frac * 100))
        self.stream.flush()

    def advance(self, n=1):
        self(self.done + n)

    def close(self):
        if self.live:
            self.stream.write("\r" + " " * 64 + "\r")
            self.stream.flush()
