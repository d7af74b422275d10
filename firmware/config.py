"""Configuration: schema, built-in defaults, validation and the compiled presets.

One file, shared by the firmware and the host tools (they import this same module; there is
no second copy). Runs on CPython and MicroPython; uses json-compatible types only.

Document (what the technician edits, stored as JSON)::

    {"schema": 1,
     "isolated_usb": false,          # true only if the USB port is galvanically isolated
     "default_preset": "hands_feet",
     "presets": [ {PRESET}, ... ]}    # a list: its order is the order MODE cycles through

    PRESET = {"name": "hands_feet",   # [a-z0-9_], 1..16 chars, unique
              "target_ua": 15000,     # start target; UP/DOWN move it within the ceiling
              "ceiling_ua": 25000,    # target <= ceiling <= limits.ABS_MAX_UA
              "duration_s": 1200,     # 20..40 min of treatment time (pauses not counted)
              "ramp_up_s": 60,        # time from 0 to target; at most 1 mA/s
              "ramp_down_s": 30,      # time from target to 0; at most 2 mA/s
              "reverse": true,        # reverse polarity at half-time (never glycopyrrolate)
              "polarity": 0,          # starting polarity: 0 = electrode A is the anode
              "electrode_area_cm2": 120,  # per electrode: ceiling <= 0.5 mA/cm2 x area
              "pulsed": false,        # or {"freq_hz": 1000..10000, "duty_pct": 30..90}
              "step_ua": 500,         # UP/DOWN step, 100..2000
              "dose_cap_mamin": 600,  # treatment ends at this dose; <= 1200
              "solution": "tap_water"}  # or {"drug": "glycopyrrolate", "charge": 1}

    "solution" (optional, "tap_water" when absent) says what is in the trays or pads. A drug
    (charge 1: a cation, -1: an anion) makes the preset a drug preset, with rules that are data
    (limits.DRUGS and DRUG_*), not a name: it never reverses; its starting polarity keeps the
    drug pad, on electrode A, at the electrode of its charge's polarity (a cation under the
    anode: polarity 0); its ceiling and dose cap are at most the drug's. A preset named like a
    known drug must declare that drug: a drug cannot be treated as tap water by leaving it out.

Decisions:
- Armpits default to plain DC, not pulsed: the tap-water efficacy data for the axillae is
  mostly with DC, and at the same peak current pulsed DC delivers only duty x the charge, so
  it would need a higher peak for the same effect. Pulsed DC stays one setting away, for
  sensitive skin.
- Glycopyrrolate: 4 mA for 20 min meets its 80 mA*min cap; the ceiling is 8 mA (side effects
  rise above 8 mA). Raised by the nurse, the session ends early on the dose cap, not on time.
- Polarity reversal is skipped below 10 min (never the case within 20..40 min, but the
  firmware checks it regardless) and never for a drug preset (glycopyrrolate, a cation, stays
  under the anode): decided by the preset's declared solution, not by its name.

API:
- ``defaults()``: a fresh copy of the built-in configuration.
- ``validate(cfg) -> (ok, errors)``: never raises, whatever ``cfg`` is; each error names the
  field, what is wrong and what is allowed.
- ``parse(text) -> (cfg or None, errors)``: JSON text to a validated configuration.
- ``compile_presets(cfg) -> tuple of Preset``: integer-only objects the session uses
  (``cfg`` must have passed ``validate``).
"""
import json

try:
    import limits as L
except ImportError:  # imported as firmware.config from the host side
    from . import limits as L

SCHEMA = 1
MAX_PRESETS = 8
NAME_MAX = 16
GLYCO = "glycopyrrolate"

_TOP_KEYS = ("schema", "isolated_usb", "default_preset", "presets")
_PRESET_KEYS = (
    "name",
    "target_ua",
    "ceiling_ua",
    "duration_s",
    "ramp_up_s",
    "ramp_down_s",
    "reverse",
    "polarity",
    "electrode_area_cm2",
    "pulsed",
    "step_ua",
    "dose_cap_mamin",
    "solution",
)
_PULSE_KEYS = ("freq_hz", "duty_pct")
_DRUG_KEYS = ("drug", "charge")
TAP_WATER = "tap_water"


def _preset(name, target, ceiling, duration, up, down, reverse, area, dose, pulsed=False, solution=TAP_WATER):
    return {
        "solution": solution,
        "name": name,
        "target_ua": target,
        "ceiling_ua": ceiling,
        "duration_s": duration,
        "ramp_up_s": up,
        "ramp_down_s": down,
        "reverse": reverse,
        "polarity": 0,
        "electrode_area_cm2": area,
        "pulsed": pulsed,
        "step_ua": 500,
        "dose_cap_mamin": dose,
    }


def defaults():
    """A fresh copy of the built-in configuration (callers may change it freely)."""
    return {
        "schema": SCHEMA,
        "isolated_usb": False,
        "default_preset": "hands_feet",
        "presets": [
            # Trays: a palm and fingers wet about 120 cm2, a sole about 150 cm2.
            _preset("hands_feet", 15_000, 25_000, 1_200, 60, 30, True, 120, 600),
            _preset("feet", 18_000, 30_000, 1_200, 60, 30, True, 150, 700),
            # Sponge pads in the armpits: about 40 cm2 -> 20 mA density limit, ceiling 15 mA.
            _preset("armpits", 8_000, 15_000, 1_200, 60, 30, True, 40, 400),
            # Drug pad about 20 cm2 -> 10 mA density limit; ceiling 8 mA.
            _preset(GLYCO, 4_000, 8_000, 1_200, 60, 30, False, 20, 80, solution={"drug": GLYCO, "charge": 1}),
        ],
    }


def _short(v):
    # repr for messages, bounded: configs can hold arbitrary junk.
    try:
        r = repr(v)
    except Exception:
        return "<%s>" % type(v).__name__
    if len(r) > 40:
        r = r[:37] + "..."
    return r


def _is_int(v):
    return type(v) is int


def _is_bool(v):
    return v is True or v is False


def _int_field(p, key, where, lo, hi, errors, what=""):
    """Check p[key] is an int within lo..hi; return it or None."""
    v = p.get(key)
    if key not in p:
        errors.append("%s.%s: missing; allowed: integer %d..%d%s" % (where, key, lo, hi, what))
        return None
    if not _is_int(v):
        errors.append("%s.%s: %s is not an integer; allowed: integer %d..%d%s" % (where, key, _short(v), lo, hi, what))
        return None
    if v < lo or v > hi:
        errors.append("%s.%s: %d is out of range; allowed: %d..%d%s" % (where, key, v, lo, hi, what))
        return None
    return v


def _unknown(d, keys, where, errors):
    for k in d:
        if k not in keys:
            errors.append("%s: unknown key %s; allowed keys: %s" % (where, _short(k), ", ".join(keys)))


def _ceil_div(a, b):
    return -((-a) // b)


def _check_name(v, where, errors):
    if type(v) is not str:
        errors.append("%s.name: %s is not a string; allowed: 1..%d of a-z, 0-9, _" % (where, _short(v), NAME_MAX))
        return None
    ok = 1 <= len(v) <= NAME_MAX
    for c in v:
        if not ("a" <= c <= "z" or "0" <= c <= "9" or c == "_"):
            ok = False
    if not ok:
        errors.append("%s.name: %s is not a valid name; allowed: 1..%d of a-z, 0-9, _" % (where, _short(v), NAME_MAX))
        return None
    return v


def _validate_preset(p, where, errors):
    if type(p) is not dict:
        errors.append("%s: %s is not an object; allowed: an object with keys %s" % (where, _short(p), ", ".join(_PRESET_KEYS)))
        return None
    _unknown(p, _PRESET_KEYS, where, errors)
    name = None
    if "name" not in p:
        errors.append("%s.name: missing; allowed: 1..%d of a-z, 0-9, _" % (where, NAME_MAX))
    else:
        name = _check_name(p["name"], where, errors)
    amax = L.ABS_MAX_UA
    ceiling = _int_field(p, "ceiling_ua", where, L.TARGET_MIN_UA, amax, errors, " uA (hard limit %d)" % amax)
    target = _int_field(p, "target_ua", where, L.TARGET_MIN_UA, amax, errors, " uA, and <= ceiling_ua")
    if target is not None and ceiling is not None and target > ceiling:
        errors.append("%s.target_ua: %d is above ceiling_ua %d; allowed: %d..ceiling_ua" % (where, target, ceiling, L.TARGET_MIN_UA))
    duration = _int_field(p, "duration_s", where, L.DURATION_MIN_S, L.DURATION_MAX_S, errors, " s (20 to 40 min)")
    up = _int_field(p, "ramp_up_s", where, L.RAMP_UP_S_MIN, L.RAMP_UP_S_MAX, errors, " s")
    down = _int_field(p, "ramp_down_s", where, L.RAMP_DOWN_S_MIN, L.RAMP_DOWN_S_MAX, errors, " s")
    if target is not None and up is not None and _ceil_div(target, up) > L.RAMP_UP_MAX_UA_S:
        errors.append(
            "%s.ramp_up_s: %d s ramps %d uA faster than %d uA/s; allowed: >= %d s for this target"
            % (where, up, target, L.RAMP_UP_MAX_UA_S, _ceil_div(target, L.RAMP_UP_MAX_UA_S))
        )
    if target is not None and down is not None and _ceil_div(target, down) > L.RAMP_DOWN_MAX_UA_S:
        errors.append(
            "%s.ramp_down_s: %d s ramps %d uA faster than %d uA/s; allowed: >= %d s for this target"
            % (where, down, target, L.RAMP_DOWN_MAX_UA_S, _ceil_div(target, L.RAMP_DOWN_MAX_UA_S))
        )
    rev = p.get("reverse")
    if "reverse" not in p:
        errors.append("%s.reverse: missing; allowed: true or false" % where)
    elif not _is_bool(rev):
        errors.append("%s.reverse: %s is not a boolean; allowed: true or false" % (where, _short(rev)))
    pol = _int_field(p, "polarity", where, 0, 1, errors, " (0: electrode A is the anode)")
    drug = _check_solution(p, name, where, errors)
    if drug is not None:
        dname, charge, dceil, ddose = drug
        ion = "a cation: it stays under the anode" if charge > 0 else "an anion: it stays under the cathode"
        if rev is True:
            errors.append("%s.reverse: true is not allowed for %s (%s); allowed: false" % (where, dname, ion))
        want = 0 if charge > 0 else 1
        if pol is not None and pol != want:
            errors.append("%s.polarity: %d puts %s under the wrong electrode (%s; its pad goes on electrode A); allowed: %d"
                          % (where, pol, dname, ion, want))
        if ceiling is not None and ceiling > dceil:
            errors.append("%s.ceiling_ua: %d is above the %s ceiling; allowed: <= %d uA" % (where, ceiling, dname, dceil))
        dose = p.get("dose_cap_mamin")
        if _is_int(dose) and dose > ddose:
            errors.append("%s.dose_cap_mamin: %d is above the %s dose cap; allowed: <= %d mA*min" % (where, dose, dname, ddose))
    area = _int_field(p, "electrode_area_cm2", where, L.ELECTRODE_AREA_MIN_CM2, L.ELECTRODE_AREA_MAX_CM2, errors, " cm2")
    if area is not None and ceiling is not None and ceiling > area * L.DENSITY_MAX_UA_PER_CM2:
        errors.append(
            "%s.ceiling_ua: %d uA over %d cm2 exceeds %d uA/cm2; allowed: <= %d uA for this area"
            % (where, ceiling, area, L.DENSITY_MAX_UA_PER_CM2, area * L.DENSITY_MAX_UA_PER_CM2)
        )
    if "pulsed" not in p:
        errors.append("%s.pulsed: missing; allowed: false or {\"freq_hz\": ..., \"duty_pct\": ...}" % where)
    else:
        pu = p["pulsed"]
        if pu is False or pu is None:
            pass
        elif type(pu) is dict:
            pw = where + ".pulsed"
            _unknown(pu, _PULSE_KEYS, pw, errors)
            _int_field(pu, "freq_hz", pw, L.PULSE_FREQ_MIN_HZ, L.PULSE_FREQ_MAX_HZ, errors, " Hz")
            _int_field(pu, "duty_pct", pw, L.PULSE_DUTY_MIN_PCT, L.PULSE_DUTY_MAX_PCT, errors, " %")
        else:
            errors.append("%s.pulsed: %s is not allowed; allowed: false or {\"freq_hz\": %d..%d, \"duty_pct\": %d..%d}" % (
                where, _short(pu), L.PULSE_FREQ_MIN_HZ, L.PULSE_FREQ_MAX_HZ, L.PULSE_DUTY_MIN_PCT, L.PULSE_DUTY_MAX_PCT))
    _int_field(p, "step_ua", where, L.STEP_UA_MIN, L.STEP_UA_MAX, errors, " uA")
    _int_field(p, "dose_cap_mamin", where, 1, L.DOSE_MAX_MAMIN, errors, " mA.min (hard cap %d)" % L.DOSE_MAX_MAMIN)
    return name


def _known_drug(name):
    for row in L.DRUGS:
        if row[0] == name:
            return row
    return None


def _check_solution(p, name, where, errors):
    """The preset's solution -> None (tap water, or not valid) or (drug, charge, ceiling uA,
    dose cap mA*min): the rules a drug preset must keep."""
    sol = p.get("solution", TAP_WATER)
    allowed = 'allowed: "%s" or {"drug": NAME, "charge": 1 or -1}' % TAP_WATER
    if sol == TAP_WATER:
        if name is not None and _known_drug(name) is not None:
            errors.append('%s.solution: a preset named %s must declare the drug: {"drug": "%s", "charge": %d}; %s'
                          % (where, name, name, _known_drug(name)[1], allowed))
        return None
    w = where + ".solution"
    if type(sol) is not dict:
        errors.append("%s: %s is not a solution; %s" % (w, _short(sol), allowed))
        return None
    _unknown(sol, _DRUG_KEYS, w, errors)
    dname = sol.get("drug")
    charge = sol.get("charge")
    if type(dname) is not str or _check_name(dname, w + ".drug", []) is None:
        errors.append("%s.drug: %s is not a drug name; allowed: 1..%d of a-z, 0-9, _" % (w, _short(dname), NAME_MAX))
        return None
    if charge != 1 and charge != -1 or not _is_int(charge):
        errors.append("%s.charge: %s is not allowed; allowed: 1 (a cation) or -1 (an anion)" % (w, _short(charge)))
        return None
    known = _known_drug(dname)
    if known is not None:
        if known[1] != charge:
            errors.append("%s.charge: %d is wrong for %s; allowed: %d" % (w, charge, dname, known[1]))
            return None
        return known
    return (dname, charge, L.DRUG_CEILING_MAX_UA, L.DRUG_DOSE_MAX_MAMIN)


def _validate(cfg, errors):
    if type(cfg) is not dict:
        errors.append("config: %s is not an object; allowed: an object with keys %s" % (_short(cfg), ", ".join(_TOP_KEYS)))
        return
    _unknown(cfg, _TOP_KEYS, "config", errors)
    if "schema" not in cfg:
        errors.append("schema: missing; allowed: %d" % SCHEMA)
    elif not _is_int(cfg["schema"]) or cfg["schema"] != SCHEMA:
        errors.append("schema: %s is not supported; allowed: %d" % (_short(cfg["schema"]), SCHEMA))
    if "isolated_usb" not in cfg:
        errors.append("isolated_usb: missing; allowed: true or false")
    elif not _is_bool(cfg["isolated_usb"]):
        errors.append("isolated_usb: %s is not a boolean; allowed: true or false" % _short(cfg["isolated_usb"]))
    names = []
    ps = cfg.get("presets")
    if "presets" not in cfg:
        errors.append("presets: missing; allowed: a list of 1..%d presets" % MAX_PRESETS)
    elif type(ps) is not list or not 1 <= len(ps) <= MAX_PRESETS:
        errors.append("presets: %s is not allowed; allowed: a list of 1..%d presets" % (_short(ps), MAX_PRESETS))
    else:
        for i in range(len(ps)):
            n = _validate_preset(ps[i], "presets[%d]" % i, errors)
            if n is not None:
                if n in names:
                    errors.append("presets[%d].name: %s is used twice; allowed: unique names" % (i, _short(n)))
                names.append(n)
    if "default_preset" not in cfg:
        errors.append("default_preset: missing; allowed: one of the preset names")
    else:
        d = cfg["default_preset"]
        if type(d) is not str or d not in names:
            errors.append("default_preset: %s is not a preset; allowed: one of %s" % (_short(d), ", ".join(names) or "the preset names"))


def validate(cfg):
    """Check a configuration. Returns (ok, errors); never raises, whatever cfg holds."""
    errors = []
    try:
        _validate(cfg, errors)
    except Exception as e:  # belt and braces: junk must never crash the caller
        errors.append("config: cannot be checked (%s); allowed: the documented schema" % type(e).__name__)
    return (not errors), errors


def parse(text):
    """JSON text -> (cfg, []) when valid, else (None, errors). Never raises."""
    try:
        cfg = json.loads(text)
    except Exception:
        return None, ["config: not valid JSON; allowed: a JSON object as documented"]
    ok, errors = validate(cfg)
    return (cfg if ok else None), errors


class Preset:
    """A validated preset as integers, ready for the session (no dict lookups per tick).

    Attributes: name, target_ua, ceiling_ua, duration_ms, slew_up (uA/s), slew_down (uA/s),
    reverse (bool, already False where the rules forbid it), polarity, area_cm2, drug (the
    drug's name, "" for tap water), charge (+1/-1, 0 for tap water),
    gate_hz (0: plain DC), gate_duty_pct (100 for DC), step_ua, dose_cap_uas.
    """

    def __init__(self, p):
        self.name = p["name"]
        self.target_ua = p["target_ua"]
        self.ceiling_ua = min(p["ceiling_ua"], L.ABS_MAX_UA, p["electrode_area_cm2"] * L.DENSITY_MAX_UA_PER_CM2)
        self.duration_ms = p["duration_s"] * 1000
        self.slew_up = max(1, min(L.RAMP_UP_MAX_UA_S, _ceil_div(p["target_ua"], p["ramp_up_s"])))
        self.slew_down = max(1, min(L.RAMP_DOWN_MAX_UA_S, _ceil_div(p["target_ua"], p["ramp_down_s"])))
        sol = p.get("solution", TAP_WATER)
        self.drug = sol["drug"] if type(sol) is dict else ""
        self.charge = sol["charge"] if type(sol) is dict else 0
        self.reverse = bool(p["reverse"]) and not self.drug and p["duration_s"] >= L.REVERSE_MIN_S
        self.polarity = p["polarity"]
        self.area_cm2 = p["electrode_area_cm2"]
        pu = p["pulsed"]
        if type(pu) is dict:
            self.gate_hz = pu["freq_hz"]
            self.gate_duty_pct = pu["duty_pct"]
        else:
            self.gate_hz = 0
            self.gate_duty_pct = 100
        self.step_ua = p["step_ua"]
        self.dose_cap_uas = min(p["dose_cap_mamin"], L.DOSE_MAX_MAMIN) * L.UAS_PER_MAMIN


def compile_presets(cfg):
    """Validated cfg -> tuple of Preset in MODE order."""
    return tuple(Preset(p) for p in cfg["presets"])


def default_index(cfg):
    names = [p["name"] for p in cfg["presets"]]
    d = cfg.get("default_preset")
    return names.index(d) if d in names else 0
