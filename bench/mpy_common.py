# Shared by the MicroPython bench scripts (bench/mpy_*.py). Import it FIRST, before fwsim:
# it takes the real clock while sys.path is empty (the unix port's built-in `time`), then
# forgets it so the firmware's `import time` finds the virtual one in hw/sim (see unit.py).
#
#     import mpy_common as C
#     C.rt.ticks_us()          # real time, for wall-clock figures
#     C.say("progress")        # stderr: the bench's stdout carries only the result
#     C.emit({"name": value})  # one line "@RESULT {json}" that bench_*.py parses
import sys

_p = sys.path
sys.path = []
import time as rt  # noqa: E402  (the real clock)

sys.path = _p
sys.modules.pop("time", None)
del _p

import json  # noqa: E402

import config  # noqa: E402

RESULT = "@RESULT "


def say(msg):
    sys.stderr.write(msg + "\n")


def emit(d):
    print(RESULT + json.dumps(d))


def args():
    """argv after the script name: (positional list, options dict from key=value)."""
    pos = []
    opt = {}
    for a in sys.argv[1:]:
        if "=" in a:
            k, v = a.split("=", 1)
            opt[k] = v
        else:
            pos.append(a)
    return pos, opt


def cfg_for(preset="hands_feet", duration_s=None, ramp_up_s=None, target_ua=None):
    """The built-in configuration with `preset` as the default, optionally retimed."""
    c = config.defaults()
    c["default_preset"] = preset
    for p in c["presets"]:
        if p["name"] == preset:
            if duration_s is not None:
                p["duration_s"] = duration_s
            if ramp_up_s is not None:
                p["ramp_up_s"] = ramp_up_s
            if target_ua is not None:
                p["target_ua"] = target_ua
    ok, errs = config.validate(c)
    if not ok:
        raise ValueError("bench config invalid: %s" % "; ".join(errs))
    return c


# A quick way into TREAT for figures that do not depend on how it was reached: palms start
# near 5 kOhm, so 15 mA is out of compliance (60 V) until the skin hydrates (~110 virtual s);
# 10 mA is reachable at once and the ramp takes its shortest allowed time (1 mA/s).
def cfg_fast():
    return cfg_for(target_ua=10_000, ramp_up_s=10)


def wall_ms(t0):
    return rt.ticks_diff(rt.ticks_ms(), t0)


def median(xs):
    s = sorted(xs)
    n = len(s)
    if not n:
        return -1
    return s[n // 2] if n & 1 else (s[n // 2 - 1] + s[n // 2]) / 2


def pct(xs, q):
    """q-th percentile (nearest rank) of a list of numbers."""
    s = sorted(xs)
    if not s:
        return -1
    k = (len(s) * q + 99) // 100 - 1
    return s[min(max(k, 0), len(s) - 1)]
