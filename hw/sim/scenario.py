"""Patient scenarios: JSON files in scenarios/, loaded, validated and applied to the plant.

A scenario is data: {"name", "description", "load": {...}, "events": [...]}. Event times are
seconds after the output is first enabled; the plant calls apply_event() when virtual time
reaches one. Runs on CPython and MicroPython (json, open).

Load parameters (defaults below): r_series_ohm (water and electrodes), r_skin_ohm and
r_skin_final_ohm (skin resistance, falling exponentially with hydration_tau_s while immersed),
c_skin_nf (skin capacitance), contact ("immersed", "lifted", "short"), r_short_ohm (water
between the electrodes when both are in one tray), noise_frac (+- relative jitter of r_series
while immersed), noise_period_ms (how often it changes), noise_dropout (chance per period of
an open contact), seed, c_out_nf (output capacitance of the board).

Events: {"t_s": 300, "do": "lift"}, "immerse", "short", or {"do": "set", <load keys>}.
"""
import json

try:
    _DIR = __file__.rsplit("/", 1)[0] + "/scenarios" if "/" in __file__ else "scenarios"
except NameError:  # frozen
    _DIR = "scenarios"
SCENARIO_DIR = _DIR

DEFAULTS = {
    "r_series_ohm": 500.0,
    "r_skin_ohm": 4000.0,
    "r_skin_final_ohm": 2500.0,
    "hydration_tau_s": 300.0,
    "c_skin_nf": 2000.0,
    "contact": "immersed",
    "r_short_ohm": 200.0,
    "noise_frac": 0.0,
    "noise_period_ms": 10.0,
    "noise_dropout": 0.0,
    "seed": 1,
    "c_out_nf": 10.0,  # C3: small, so a re-contact or a falling load gets little of its charge
}
LOAD_KEYS = tuple(DEFAULTS)
# (min, max) for the numeric parameters; the model divides by the ones with min > 0.
_RANGES = {
    "r_series_ohm": (1.0, 1e7),
    "r_skin_ohm": (1.0, 1e7),
    "r_skin_final_ohm": (1.0, 1e7),
    "hydration_tau_s": (0.001, 1e6),
    "c_skin_nf": (0.001, 1e6),
    "r_short_ohm": (1.0, 1e7),
    "noise_frac": (0.0, 0.9),
    "noise_period_ms": (0.1, 1e6),
    "noise_dropout": (0.0, 1.0),
    "c_out_nf": (0.001, 1e6),
}
CONTACTS = ("immersed", "lifted", "short")
ACTIONS = ("lift", "immerse", "short", "set")

_cache = {}


class ScenarioError(ValueError):
    pass


def _num(v):
    return (isinstance(v, int) or isinstance(v, float)) and not isinstance(v, bool)


def _check_load(d, where, partial=False):
    if not isinstance(d, dict):
        raise ScenarioError("%s: must be an object of load parameters" % where)
    out = {}
    for k, v in d.items():
        if k not in DEFAULTS:
            raise ScenarioError("%s: unknown load parameter %r (known: %s)" % (where, k, ", ".join(LOAD_KEYS)))
        if k == "contact":
            if v not in CONTACTS:
                raise ScenarioError("%s.contact: %r is not one of %s" % (where, v, ", ".join(CONTACTS)))
            out[k] = v
        elif k == "seed":
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ScenarioError("%s.seed: must be a non-negative integer, not %r" % (where, v))
            out[k] = v
        else:
            lo, hi = _RANGES[k]
            if not _num(v) or not lo <= v <= hi:
                raise ScenarioError("%s.%s: must be a number in [%g, %g], not %r" % (where, k, lo, hi, v))
            out[k] = float(v)
    return out


def validate(data, where="scenario"):
    """Check a scenario dict; return it normalized (load defaults filled, events sorted)."""
    if not isinstance(data, dict):
        raise ScenarioError("%s: a scenario is a JSON object" % where)
    for k in data:
        if k not in ("name", "description", "load", "events"):
            raise ScenarioError("%s: unknown key %r (expected name, description, load, events)" % (where, k))
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ScenarioError("%s: 'name' must be a non-empty string" % where)
    where = "%s %r" % (where, name)
    desc = data.get("description", "")
    if not isinstance(desc, str):
        raise ScenarioError("%s: 'description' must be a string" % where)
    load = dict(DEFAULTS)
    load.update(_check_load(data.get("load", {}), where + ": load"))
    evs = data.get("events", [])
    if not isinstance(evs, list):
        raise ScenarioError("%s: 'events' must be a list" % where)
    out = []
    for n, ev in enumerate(evs):
        w = "%s: events[%d]" % (where, n)
        if not isinstance(ev, dict):
            raise ScenarioError("%s: must be an object like {\"t_s\": 300, \"do\": \"lift\"}" % w)
        t = ev.get("t_s")
        if not _num(t) or t < 0:
            raise ScenarioError("%s: 't_s' must be a number of seconds >= 0, not %r" % (w, t))
        do = ev.get("do")
        if do not in ACTIONS:
            raise ScenarioError("%s: 'do' is %r, expected one of %s" % (w, do, ", ".join(ACTIONS)))
        rest = {}
        for k, v in ev.items():
            if k not in ("t_s", "do"):
                rest[k] = v
        if do == "set":
            if not rest:
                raise ScenarioError("%s: 'set' needs at least one load parameter" % w)
            rest = _check_load(rest, w)
            if "contact" in rest:
                raise ScenarioError("%s: change contact with lift/immerse/short, not set" % w)
        elif rest:
            raise ScenarioError("%s: %r takes no parameters, got %s" % (w, do, ", ".join(sorted(rest))))
        e = {"t_s": float(t), "do": do}
        e.update(rest)
        out.append((float(t), n, e))
    out.sort()
    return {"name": name, "description": desc, "load": load, "events": [e for _, _, e in out]}


def names():
    """Names of the scenario files shipped in scenarios/."""
    import os

    try:
        return sorted(f[:-5] for f in os.listdir(SCENARIO_DIR) if f.endswith(".json"))
    except OSError:
        return sorted(_cache)


def _read(path):
    with open(path) as f:
        text = f.read()
    try:
        return json.loads(text)
    except ValueError as e:
        raise ScenarioError("%s: not valid JSON (%s)" % (path, e))


def preload():
    """Read every shipped scenario now (the unit mounts its own filesystem over / later)."""
    for n in names():
        load(n)
    return sorted(_cache)


def load(spec):
    """A validated scenario from a name ('palms'), a path to a .json file, or a dict."""
    if isinstance(spec, dict):
        return validate(spec, "scenario")
    if not isinstance(spec, str):
        raise ScenarioError("scenario must be a name, a path or a dict, not %r" % (spec,))
    if spec in _cache:
        return _cache[spec]
    if spec.endswith(".json") or "/" in spec:
        return validate(_read(spec), spec)
    path = SCENARIO_DIR + "/" + spec + ".json"
    try:
        data = _read(path)
    except OSError:
        raise ScenarioError("no scenario named %r (known: %s)" % (spec, ", ".join(names())))
    sc = validate(data, path)
    if sc["name"] != spec:
        raise ScenarioError("%s: 'name' is %r, expected the file's name %r" % (path, sc["name"], spec))
    _cache[spec] = sc
    return sc


def apply_event(plant, ev):
    """Apply one event to a plant.Plant (called by the plant at the event's time)."""
    do = ev["do"]
    if do == "lift":
        plant.lift()
    elif do == "immerse":
        plant.immerse()
    elif do == "short":
        plant.short()
    else:
        kw = {}
        for k, v in ev.items():
            if k not in ("t_s", "do"):
                kw[k] = v
        plant.set_load(**kw)
