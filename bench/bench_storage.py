"""Issue 4 figures: what logging costs the flash and the control loop, and what fits.

Runs tests/mpy/storage_checks.py (blackout, capacity) under the unix port on a LittleFS image
over hw/sim/flash.py, which charges datasheet program/erase times to the virtual clock.
"""
import os
import re
import subprocess
import tempfile

from . import _mpy


def _check(call):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(_mpy.ROOT / p) for p in ("hw/sim", "firmware", "tests/mpy")) + ":.frozen"
    r = subprocess.run([_mpy.micropython(), "-c", "import storage_checks; storage_checks." + call],
                       capture_output=True, text=True, timeout=600, env=env, cwd=str(_mpy.ROOT))
    line = [x for x in r.stdout.splitlines() if x.startswith("OK ")]
    if r.returncode != 0 or not line:
        raise RuntimeError("storage_checks.%s failed: %s" % (call, (r.stderr or r.stdout)[-300:]))
    return [int(v) for _k, v in re.findall(r"(\w+)=(-?\d+)", line[-1])]


def run(quick=None):
    q = _mpy.quick(quick)
    minutes = 5 if q else 20
    out = []
    with tempfile.TemporaryDirectory() as d:
        _mpy.say("storage: blackout and bytes per session-minute (%d-minute trace)" % minutes)
        b = _check("blackout(%r, %d)" % (os.path.join(d, "b.img"), minutes))
        bw = _check("blackout(%r, %d, True)" % (os.path.join(d, "w.img"), minutes))
        # blackout() prints the CADENCE figures first, then OFF_ONLY (the policy in force).
        vals, wvals = b, bw
        out += [
            ("storage_bytes_per_session_min", vals[4], "B/min"),
            ("storage_blocks_erased_per_100_session_min", vals[5], "blocks/100min"),
            ("storage_blackout_while_treating_us", 0, "us (policy: no flash writes while the output is on)"),
            ("storage_blackout_output_off_typ_us", vals[3], "us"),
            ("storage_blackout_output_off_worst_us", wvals[3], "us"),
            ("storage_blackout_if_cadence_30s_typ_us", vals[0], "us"),
            ("storage_blackout_if_cadence_30s_worst_us", wvals[0], "us"),
            ("storage_trace_lost_by_power_cut_max_s", 45 * 60, "s (the whole in-flight trace; summary kept)"),
        ]
        if not q:
            _mpy.say("storage: sessions that fit before pruning (40-minute sessions)")
            c = _check("capacity(%r, 40)" % os.path.join(d, "c.img"))
            out.append(("storage_sessions_before_pruning_40min", c[0], "sessions"))
    return out
