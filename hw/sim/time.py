# Virtual `time` for the MicroPython unix port: replaces the built-in when hw/sim is on
# MICROPYPATH, so the firmware's ticks and sleeps run on vclock (a 40-minute session in
# seconds) and its wall clock comes from the simulated RTC.
#
# ticks_* wrap at 2**30 as on rp2 (the unix port's own ticks wrap at 2**62, which would
# hide wraparound bugs). CPython never loads this file: its `time` is built in.
import sys

# MicroPython's idiom for reaching the built-in module this file shadows.
_path = sys.path
sys.path = []
try:
    import time as _builtin
finally:
    sys.path = _path
    del _path

import vclock
import machine

from vclock import ticks_us, ticks_ms, ticks_diff, ticks_add

ticks_cpu = ticks_us  # rp2's ticks_cpu counts microseconds too

_advance = vclock.advance


def sleep_us(us):
    if us > 0:
        _advance(us)


def sleep_ms(ms):
    if ms > 0:
        _advance(ms * 1000)


def sleep(s):
    if s > 0:
        _advance(int(s * 1_000_000))


def time():
    return machine.sim_rtc_us() // 1_000_000


def time_ns():
    return machine.sim_rtc_us() * 1000


def gmtime(secs=None):
    if secs is None:
        secs = time()
    return machine._gmtime(int(secs))


localtime = gmtime  # rp2 has no time zone


def mktime(t):
    return machine._mktime(t[0], t[1], t[2], t[3], t[4], t[5])
