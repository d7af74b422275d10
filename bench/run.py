"""`make bench`: every figure on its own line as `name: value unit`, all of them in bench/results.json.

Each bench/bench_*.py module has `run()` returning a list of (name, value, unit). Figures are
measured, never asserted: speed and memory targets live here, not in timed tests. Ratios are
measured within one run because these machines are noisy.
"""
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv=None):
    only = (argv or sys.argv[1:]) or None
    results = {}
    failed = []
    for mod in sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_")):
        if only and mod not in only and mod[len("bench_"):] not in only:
            continue
        t0 = time.monotonic()
        try:
            figures = importlib.import_module("bench." + mod).run()
        except Exception as e:  # one broken bench must not hide the others' figures
            failed.append(mod)
            print("%s: FAILED (%s: %s)" % (mod, type(e).__name__, e), file=sys.stderr)
            continue
        for name, value, unit in figures:
            results[name] = {"value": value, "unit": unit}
            print("%s: %s %s" % (name, value, unit), flush=True)
        print("# %s took %.1f s" % (mod, time.monotonic() - t0), file=sys.stderr)
    (HERE / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
