"""Interruptions of a command (Ctrl-C, SIGTERM, a closed terminal) and what the command had done.

    from .interrupt import work, deferred

    work.doing("pulling session 3")       # what the command is at now
    work.did("2 sessions archived")        # what is finished (kept if the command is cut short)
    work.undone("nothing acknowledged to the unit")   # what an interruption now leaves undone
    with deferred():                        # giving the unit back: a second Ctrl-C waits
        ...

cli.main installs the handlers for the length of one command: SIGINT, SIGTERM and SIGHUP raise
Interrupted (a KeyboardInterrupt, so no `except Exception` swallows it) in the main thread. Inside
`deferred()` they are only noted, and raised when the block ends: the code that gives the unit
back to its application (link.Link.close) runs to its end however impatient the user is; each
of its waits has its own deadline. cli.main then prints one line from `work` and the link's
outcome, and exits 130 (Ctrl-C), 143 (SIGTERM) or 129 (SIGHUP), the shell's codes.
"""
import contextlib
import signal

NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "a closed terminal (SIGHUP)"}


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum=signal.SIGINT):
        KeyboardInterrupt.__init__(self, NAMES.get(signum, "signal %d" % signum))
        self.signum = signum
        self.words = NAMES.get(signum, "signal %d" % signum)

    @property
    def exit_code(self):
        return 128 + self.signum


class Work:
    """What the running command has done, is doing, and would leave undone (for the one line
    printed when it is interrupted)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.now = None
        self.finished = []
        self.left = None
        self.unit = None  # the last link's outcome, in words (link.Link.close)
        self.abnormal = False  # a link was left mid-command (an error, the unit gone or restarted)

    def doing(self, text):
        self.now = text

    def did(self, text):
        self.finished.append(text)

    def undone(self, text):
        self.left = text

    def line(self, why):
        return "; ".join(["interrupted by %s%s" % (why, " while %s" % self.now if self.now else "")] + self.tail())

    def tail(self):
        """[done, not done, the unit's state] in words."""
        parts = []
        if self.finished:
            parts.append("done: " + ", ".join(self.finished))
        elif not self.left:
            parts.append("nothing was changed")
        if self.left:
            parts.append("not done: " + self.left)
        if self.unit:
            parts.append(self.unit)
        return parts


work = Work()

_state = {"depth": 0, "pending": None, "installed": False}


def _handler(signum, frame):
    if _state["depth"]:
        if _state["pending"] is None:
            _state["pending"] = signum
        return
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred():
    """Signals arriving inside are raised when the outermost block ends (never lost)."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            if _state["installed"]:
                raise Interrupted(signum)


def pending():
    """A signal noted inside deferred() and not raised yet (None if none)."""
    return _state["pending"]


@contextlib.contextmanager
def installed():
    """Handlers for SIGINT, SIGTERM and SIGHUP for the length of one command (main thread)."""
    old = {}
    try:
        for s in NAMES:
            old[s] = signal.signal(s, _handler)
    except ValueError:  # not the main thread: leave Python's defaults
        for s, h in old.items():
            signal.signal(s, h)
        old = {}
    _state["installed"] = bool(old)
    _state["pending"] = None
    work.reset()
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _state["installed"] = False
        _state["pending"] = None
