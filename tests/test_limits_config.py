"""Hard limits, the fault table and configuration validation (firmware/limits.py, config.py)."""
import copy
import json

import pytest

import config
import limits as L
import pins


def test_fault_table_is_complete_and_fits_the_display():
    codes = [row[0] for row in L.FAULTS]
    names = [row[1] for row in L.FAULTS]
    assert len(set(codes)) == len(codes) and len(set(names)) == len(names)
    for code, name, line1, line2, action in L.FAULTS:
        assert code > 0 and name and action
        assert 0 < len(line1) <= 16 and len(line2) <= 16, (name, line1, line2)
        assert line1.isascii() and line2.isascii()
    for code, window in L.RULES:
        assert code in codes and window >= 0
    assert len({c for c, _ in L.RULES}) == len(L.RULES)
    assert L.fault_info(L.F_SHORT)[1] == "short" and L.fault_info(999) is None
    for code, short, text in L.LIMIT_REASONS:
        assert len(short) <= 16


def test_hard_limits_are_consistent():
    assert L.ABS_MAX_UA == 30_000 < pins.HW_LIMIT_UA  # the hardware limiter sits above
    assert L.COMPLIANCE_MV == pins.COMPLIANCE_MV
    assert L.DENSITY_MAX_UA_PER_CM2 * 4 == 2_000  # 4x below IEC 60601-2-10's attention level
    assert L.DOSE_MAX_UAS == L.DOSE_MAX_MAMIN * L.UAS_PER_MAMIN
    assert L.MAX_SESSION_MS == 45 * 60_000 > L.DURATION_MAX_S * 1000
    assert L.DURATION_MIN_S == 20 * 60 and L.DURATION_MAX_S == 40 * 60
    assert L.STOP_RAMP_MS <= 3_000
    assert L.REVERSE_MIN_S == 600
    assert L.CONTACT_OK_UA < L.CONTACT_TEST_UA < L.TARGET_MIN_UA + 1
    # Every product the tick computes stays a small int on rp2 (below 2**30).
    small = 1 << 30
    assert L.ABS_MAX_UA * L.DT_MAX_MS < small
    assert L.DOSE_MAX_UAS * 2 < small
    assert (L.COMPLIANCE_MV + 10_000) * 1000 < small
    assert L.ABS_MAX_UA * 13107 < small
    assert L.TRIM_MAX_UA * L.TRIM_TI_MS < small


def test_defaults_are_valid_and_as_documented():
    cfg = config.defaults()
    ok, errors = config.validate(cfg)
    assert ok and errors == []
    names = [p["name"] for p in cfg["presets"]]
    assert names == ["hands_feet", "feet", "armpits", "glycopyrrolate"]
    by = {p["name"]: p for p in cfg["presets"]}
    g = by["glycopyrrolate"]
    assert g["reverse"] is False and g["dose_cap_mamin"] == 80 and g["ceiling_ua"] <= 8_000
    assert by["armpits"]["pulsed"] is False  # decision documented in config.py
    assert by["armpits"]["ceiling_ua"] < by["hands_feet"]["ceiling_ua"]
    for p in cfg["presets"]:
        assert p["step_ua"] == 500
        assert 1_200 <= p["duration_s"] <= 2_400
    # A fresh copy each time: changing one does not change the next.
    cfg["presets"][0]["target_ua"] = 1
    assert config.defaults()["presets"][0]["target_ua"] == 15_000
    # json round trip
    assert config.parse(json.dumps(config.defaults())) == (config.defaults(), [])


def _bad(mutate):
    cfg = config.defaults()
    mutate(cfg)
    ok, errors = config.validate(cfg)
    assert not ok
    return errors


def _p0(key, value):
    def m(cfg):
        cfg["presets"][0][key] = value
    return m


@pytest.mark.parametrize(
    "key,value,expect",
    [
        ("target_ua", 31_000, "presets[0].target_ua: 31000 is out of range; allowed: 500..30000"),
        ("target_ua", 26_000, "presets[0].target_ua: 26000 is above ceiling_ua 25000"),
        ("target_ua", 15_000.0, "presets[0].target_ua: 15000.0 is not an integer"),
        ("target_ua", True, "presets[0].target_ua: True is not an integer"),
        ("target_ua", "15000", "presets[0].target_ua: '15000' is not an integer"),
        ("ceiling_ua", 30_001, "presets[0].ceiling_ua: 30001 is out of range; allowed: 500..30000 uA (hard limit 30000)"),
        ("duration_s", 1_199, "presets[0].duration_s: 1199 is out of range; allowed: 1200..2400 s (20 to 40 min)"),
        ("duration_s", 2_401, "presets[0].duration_s: 2401 is out of range"),
        ("ramp_up_s", 10, "presets[0].ramp_up_s: 10 s ramps 15000 uA faster than 1000 uA/s; allowed: >= 15 s"),
        ("ramp_down_s", 5, "presets[0].ramp_down_s: 5 s ramps 15000 uA faster than 2000 uA/s; allowed: >= 8 s"),
        ("electrode_area_cm2", 40, "presets[0].ceiling_ua: 25000 uA over 40 cm2 exceeds 500 uA/cm2; allowed: <= 20000 uA"),
        ("electrode_area_cm2", 0, "presets[0].electrode_area_cm2: 0 is out of range"),
        ("reverse", 1, "presets[0].reverse: 1 is not a boolean; allowed: true or false"),
        ("polarity", 2, "presets[0].polarity: 2 is out of range; allowed: 0..1"),
        ("pulsed", "yes", "presets[0].pulsed: 'yes' is not allowed"),
        ("pulsed", {"freq_hz": 50, "duty_pct": 50}, "presets[0].pulsed.freq_hz: 50 is out of range"),
        ("pulsed", {"freq_hz": 1000, "duty_pct": 50, "x": 1}, "presets[0].pulsed: unknown key 'x'"),
        ("step_ua", 5_000, "presets[0].step_ua: 5000 is out of range; allowed: 100..2000 uA"),
        ("dose_cap_mamin", 1_201, "presets[0].dose_cap_mamin: 1201 is out of range; allowed: 1..1200 mA.min (hard cap 1200)"),
        ("name", "Hands!", "presets[0].name: 'Hands!' is not a valid name"),
        ("name", 7, "presets[0].name: 7 is not a string"),
        ("colour", "red", "presets[0]: unknown key 'colour'"),
    ],
)
def test_each_field_error_says_what_is_wrong_and_what_is_allowed(key, value, expect):
    errors = _bad(_p0(key, value))
    assert any(e.startswith(expect) for e in errors), errors
    for e in errors:
        assert "allowed" in e


def test_glycopyrrolate_never_reverses():
    def m(cfg):
        cfg["presets"][3]["reverse"] = True
    errors = _bad(m)
    assert any("presets[3].reverse" in e and "cation" in e for e in errors)


def test_missing_and_top_level_errors():
    def drop(cfg):
        del cfg["presets"][1]["ceiling_ua"]
    assert any(e.startswith("presets[1].ceiling_ua: missing") for e in _bad(drop))
    assert any(e.startswith("schema:") for e in _bad(lambda c: c.update(schema=2)))
    assert any(e.startswith("isolated_usb:") for e in _bad(lambda c: c.update(isolated_usb="no")))
    assert any(e.startswith("default_preset:") for e in _bad(lambda c: c.update(default_preset="nope")))
    assert any(e.startswith("config: unknown key 'extra'") for e in _bad(lambda c: c.update(extra=1)))
    assert any(e.startswith("presets:") for e in _bad(lambda c: c.update(presets=[])))
    assert any(e.startswith("presets:") for e in _bad(lambda c: c.update(presets={"a": 1})))

    def dup(cfg):
        cfg["presets"][1]["name"] = "hands_feet"
    assert any("used twice" in e for e in _bad(dup))


@pytest.mark.parametrize(
    "junk",
    [None, 0, 1.5, "text", b"bytes", [], [{}], {"presets": None}, {"presets": [None, 3, "x", []]},
     {1: 2}, {"schema": {"nested": [1, {"deep": None}]}}, {"presets": [{"name": None, "pulsed": [1]}]},
     {"presets": [{"target_ua": 10 ** 40, "ceiling_ua": -(10 ** 40)}]}, float("nan")],
)
def test_validate_never_raises_on_junk(junk):
    ok, errors = config.validate(junk)
    assert ok is False and errors and all(isinstance(e, str) for e in errors)


def test_deeply_nested_junk_and_self_reference_do_not_raise():
    deep = []
    for _ in range(5000):
        deep = [deep]
    loop = {}
    loop["presets"] = [loop]
    for junk in (deep, {"presets": deep}, loop):
        ok, errors = config.validate(junk)
        assert not ok and errors


def test_parse_rejects_bad_json():
    cfg, errors = config.parse("{not json")
    assert cfg is None and errors[0].startswith("config: not valid JSON")
    cfg, errors = config.parse(json.dumps({"schema": 1}))
    assert cfg is None and len(errors) >= 3


def test_compiled_presets_are_integers_and_tighten():
    cfg = config.defaults()
    cfg["presets"][2]["pulsed"] = {"freq_hz": 2_000, "duty_pct": 50}
    ps = config.compile_presets(cfg)
    assert [p.name for p in ps] == ["hands_feet", "feet", "armpits", "glycopyrrolate"]
    hf, feet, arm, gly = ps
    assert hf.duration_ms == 1_200_000 and hf.slew_up == 250 and hf.slew_down == 500
    assert hf.reverse and not gly.reverse
    assert gly.dose_cap_uas == 80 * 60_000
    assert arm.gate_hz == 2_000 and arm.gate_duty_pct == 50 and hf.gate_hz == 0 and hf.gate_duty_pct == 100
    for p in ps:
        for v in vars(p).values():
            assert not isinstance(v, float)
        assert p.ceiling_ua <= min(L.ABS_MAX_UA, p.area_cm2 * L.DENSITY_MAX_UA_PER_CM2)
    assert config.default_index(cfg) == 0
    cfg["default_preset"] = "feet"
    assert config.default_index(cfg) == 1


def test_validate_does_not_modify_its_input():
    cfg = config.defaults()
    cfg["presets"][0]["target_ua"] = 99_999
    before = copy.deepcopy(cfg)
    config.validate(cfg)
    assert cfg == before


def test_config_runs_under_micropython(mpy):
    r = mpy(
        "import config, json\n"
        "ok, e = config.validate(config.defaults())\n"
        "assert ok and not e, e\n"
        "c = config.defaults(); c['presets'][0]['target_ua'] = 40000; c['x'] = [1]\n"
        "ok, e = config.validate(c)\n"
        "assert not ok and len(e) == 2, e\n"
        "for j in (None, 1.5, [], {'presets': [None]}, {1: 2}):\n"
        "    ok, e = config.validate(j); assert not ok and e\n"
        "c2, e = config.parse(json.dumps(config.defaults())); assert c2 is not None and not e\n"
        "print('ok', len(config.compile_presets(c2)))\n"
    )
    assert "ok 4" in r.stdout


def test_drug_rules_are_data_not_a_name():
    # A preset named otherwise, with the same solution, keeps every drug rule.
    def renamed(**kw):
        def m(cfg):
            cfg["presets"][3]["name"] = "drug_pad"
            cfg["default_preset"] = "hands_feet"
            cfg["presets"][3].update(kw)
        return m
    assert any("drug_pad" not in e and "reverse" in e for e in _bad(renamed(reverse=True)))
    assert any("ceiling_ua" in e and "8000" in e for e in _bad(renamed(ceiling_ua=8_500)))
    assert any("dose_cap_mamin" in e for e in _bad(renamed(dose_cap_mamin=81)))
    assert any("polarity" in e for e in _bad(renamed(polarity=1)))
    # an anion goes under the cathode: polarity 1 with electrode A holding the pad
    ok, errors = config.validate(_apply(renamed(solution={"drug": "anion_x", "charge": -1}, polarity=1)))
    assert ok, errors
    assert any(".charge" in e for e in _bad(renamed(solution={"drug": "glycopyrrolate", "charge": -1})))
    # tightened is fine, and compiles to a preset that never reverses
    ok, errors = config.validate(_apply(renamed(ceiling_ua=6_000, target_ua=3_000, dose_cap_mamin=60)))
    assert ok, errors
    ps = config.compile_presets(_apply(renamed(ceiling_ua=6_000, target_ua=3_000, dose_cap_mamin=60)))
    assert ps[3].drug == "glycopyrrolate" and ps[3].charge == 1 and ps[3].reverse is False
    # a drug cannot be treated as tap water by leaving the solution out of a preset named for it
    def plain(cfg):
        del cfg["presets"][3]["solution"]
    assert any("must declare the drug" in e for e in _bad(plain))
    assert all(r[2] <= L.DRUG_CEILING_MAX_UA and r[3] <= L.DRUG_DOSE_MAX_MAMIN for r in L.DRUGS)


def _apply(mutate):
    cfg = config.defaults()
    mutate(cfg)
    return cfg


def test_local_limit_consts_are_the_limits():
    # supervisor.py, session.py and regulator.py keep the limits their tick reads as consts of
    # their own (inlined by mpy-cross: no look-up a tick); each _NAME must be limits.NAME.
    import regulator
    import session
    import supervisor

    for mod in (supervisor, session, regulator):
        seen = 0
        for name in dir(L):
            if name.isupper() and hasattr(mod, "_" + name):
                assert getattr(mod, "_" + name) == getattr(L, name), (mod.__name__, name)
                seen += 1
        assert seen, mod.__name__
    assert supervisor._PERIOD_MS == L.LOOP_PERIOD_MS
    assert regulator._TI == L.TRIM_TI_MS and regulator._ERR_MAX == L.TRIM_ERR_MAX_UA
    assert regulator._DEAD == pins.SETPOINT_FULL_SCALE_UA * pins.SETPOINT_PWM_FREQ // 125_000_000
