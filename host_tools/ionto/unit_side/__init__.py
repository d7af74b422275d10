"""MicroPython code the host sends to a unit's raw REPL: one small module per job, each defining
one function whose name starts with `_` (it lands in the REPL's globals, beside main.py's `app`
and `log`, and must not clash with them).

They are real modules so they are linted, compiled by mpy-cross and run under the unix port in
the tests (tests/test_unit_side.py); the host sends their text (`source`) followed by one call.
They use only what the rp2 port has and allocate their buffers once per call.
"""
from pathlib import Path

_HERE = Path(__file__).resolve().parent
_cache = {}


def source(name):
    """The text of unit_side/<name>.py as sent: comment-only and blank lines dropped (every byte
    goes through the REPL)."""
    if name not in _cache:
        lines = (_HERE / (name + ".py")).read_text().splitlines()
        _cache[name] = "\n".join(ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")) + "\n"
    return _cache[name]


def call(name, *args):
    """Source of unit_side/<name>.py and a call of its function `_<name>(*args)`."""
    return source(name) + "_%s(%s)\n" % (name, ", ".join(repr(a) for a in args))
