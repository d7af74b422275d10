"""Running virtual units, registered for `ionto devices` and port discovery (one JSON file each)."""
import json
import os
from pathlib import Path


def registry_dir():
    """Where running virtual units register themselves for `ionto devices` (one JSON file
    each: port, state_dir, serial, pid). IONTO_SIM_REGISTRY overrides it (tests)."""
    d = os.environ.get("IONTO_SIM_REGISTRY")
    return Path(d) if d else Path("/tmp") / ("ionto-sims-%d" % os.getuid())


def register(port, state_dir, serial):
    d = registry_dir()
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        f = d / ("%d.json" % os.getpid())
        f.write_text(json.dumps({"port": port, "state_dir": str(state_dir), "serial": serial, "pid": os.getpid()}))
        return f
    except OSError:
        return None  # listing is a convenience: a unit without an entry still serves its port


def registered():
    """Live virtual units: [{"port", "state_dir", "serial", "pid"}] (stale entries dropped)."""
    out = []
    d = registry_dir()
    if not d.is_dir():
        return out
    for f in sorted(d.glob("*.json")):
        try:
            e = json.loads(f.read_text())
            os.kill(int(e["pid"]), 0)
        except ProcessLookupError:
            try:
                f.unlink()
            except OSError:
                pass
            continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if os.path.exists(e.get("port", "")):
            out.append(e)
    return out
