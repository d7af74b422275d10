"""Running the MicroPython bench scripts (bench/mpy_*.py) from the CPython bench modules."""
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULT = "@RESULT "


def micropython():
    return str(Path(sys.executable).with_name("micropython"))


def quick(q=None):
    """quick: an argument, else BENCH_QUICK=1 in the environment."""
    if q is not None:
        return bool(q)
    return os.environ.get("BENCH_QUICK", "") not in ("", "0")


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def run(script, *args, heapsize=None, timeout=600):
    """Run bench/<script> under the unix port; returns its @RESULT dict, or None if it died
    (its stderr tail is printed)."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(ROOT / p) for p in ("hw/sim", "firmware", "tests/mpy", "bench")) + ":.frozen"
    cmd = [micropython()] + (["-X", "heapsize=%s" % heapsize] if heapsize else [])
    cmd += [str(ROOT / "bench" / script)] + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=str(ROOT))
    for line in r.stderr.splitlines():
        if not line.startswith("Traceback") and not line.startswith("  File"):
            say("  " + line)
    for line in r.stdout.splitlines():
        if line.startswith(RESULT):
            return json.loads(line[len(RESULT):])
    say("  %s %s: exit %d, no result: %s" % (script, " ".join(map(str, args)), r.returncode, r.stderr[-300:]))
    return None


def run_many(jobs, workers=2):
    """[(script, args, kw)] in parallel (virtual-time figures only: they do not depend on load)."""
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futs = [ex.submit(run, s, *a, **kw) for s, a, kw in jobs]
        return [f.result() for f in futs]


def run_r(path, *args, timeout=900):
    """Run a MicroPython script that prints "@R [key, value]" lines (tests/mpy/fw_*.py);
    returns their dict, or None if it died."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(ROOT / p) for p in ("hw/sim", "firmware", "tests/mpy", "bench")) + ":.frozen"
    r = subprocess.run([micropython(), str(ROOT / path)] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=timeout, env=env, cwd=str(ROOT))
    out = {}
    for line in r.stdout.splitlines():
        if line.startswith("@R "):
            k, v = json.loads(line[3:])
            out[k] = v
    if r.returncode != 0:
        say("  %s %s: exit %d: %s" % (path, " ".join(map(str, args)), r.returncode, r.stderr[-300:]))
        return None
    return out
