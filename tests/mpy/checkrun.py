# Runs a check script's sections one after another so that one failing section does not hide
# the others. Each prints "@CHECK ok NAME" or "@CHECK FAIL NAME: why" (and its traceback);
# tests/conftest.py collects every section of a script as its own pytest case from these lines.
# The sections share the script's module state and run in order, as the flat script did.
import sys

_sections = []
_checks = [0]


def check(cond, what):
    """One check inside a section: a failure raises (and ends that section only)."""
    if not cond:
        raise AssertionError(what)
    _checks[0] += 1


def count():
    """How many checks have passed so far."""
    return _checks[0]


def section(fn):
    _sections.append(fn)
    return fn


def run():
    """Run every registered section. -> True when all passed (the script then prints its
    summary line); the process exits non-zero otherwise."""
    failed = 0
    for fn in _sections:
        name = fn.__name__
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - reported per section, the rest still run
            failed += 1
            print("@CHECK FAIL %s: %s: %s" % (name, type(e).__name__, e))
            sys.print_exception(e)
        else:
            print("@CHECK ok %s" % name)
    if failed:
        print("%d of %d sections failed" % (failed, len(_sections)))
        sys.exit(1)
    return True
