"""CPython stand-in for MicroPython's `micropython` module, for unit tests of pure firmware logic.

Only what the firmware uses. On the unix port the real module is used instead.
"""


def const(x):
    return x


def schedule(fn, arg):
    fn(arg)
    return None


def heap_lock():
    return 0


def heap_unlock():
    return 0


def alloc_emergency_exception_buf(n):
    return None


def mem_info(*args):
    return None
