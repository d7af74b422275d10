"""Scenario files: every shipped one valid and sensible; bad ones rejected with clear messages."""
import json

import pins
import pytest
import scenario

EXPECTED = {"palms", "soles", "armpits", "hand_lifted", "short_one_tray", "soft_water", "resistance_drop", "noisy_contact"}


def test_all_expected_scenarios_ship_and_validate():
    assert EXPECTED <= set(scenario.names())
    for n in scenario.names():
        sc = scenario.load(n)
        assert sc["name"] == n and sc["description"]


@pytest.mark.parametrize("name", ["palms", "soles", "armpits", "hand_lifted", "resistance_drop", "noisy_contact"])
def test_typical_loads_are_2_to_6_kohm(name):
    ld = scenario.load(name)["load"]
    for r in (ld["r_skin_ohm"], ld["r_skin_final_ohm"]):
        assert 2_000 <= ld["r_series_ohm"] + r <= 6_000


def test_soft_water_cannot_reach_20_ma():
    ld = scenario.load("soft_water")["load"]
    r_min = ld["r_series_ohm"] + min(ld["r_skin_ohm"], ld["r_skin_final_ohm"])
    assert 12_000 <= r_min <= 20_000
    assert pins.COMPLIANCE_MV * 1000 // r_min < 20_000


def test_event_scenarios():
    ev = scenario.load("hand_lifted")["events"]
    assert [e["do"] for e in ev] == ["lift", "immerse"] and ev[0]["t_s"] < ev[1]["t_s"]
    ev = scenario.load("resistance_drop")["events"]
    assert ev[0]["do"] == "set" and ev[0]["r_skin_ohm"] < 1000
    assert scenario.load("short_one_tray")["load"]["contact"] == "short"


def test_defaults_filled_and_events_sorted():
    sc = scenario.validate({"name": "t", "events": [{"t_s": 5, "do": "immerse"}, {"t_s": 1, "do": "lift"}]})
    assert [e["do"] for e in sc["events"]] == ["lift", "immerse"]
    assert set(sc["load"]) == set(scenario.LOAD_KEYS)


@pytest.mark.parametrize(
    "data, words",
    [
        ([], "JSON object"),
        ({"description": "x"}, "'name'"),
        ({"name": "t", "colour": 1}, "unknown key 'colour'"),
        ({"name": "t", "load": {"r_skin": 3}}, "unknown load parameter 'r_skin'"),
        ({"name": "t", "load": {"r_series_ohm": -5}}, "r_series_ohm: must be a number"),
        ({"name": "t", "load": {"contact": "wet"}}, "contact: 'wet'"),
        ({"name": "t", "events": [{"t_s": 1, "do": "jump"}]}, "events[0]: 'do' is 'jump'"),
        ({"name": "t", "events": [{"do": "lift"}]}, "events[0]: 't_s'"),
        ({"name": "t", "events": [{"t_s": 1, "do": "lift", "r_skin_ohm": 3}]}, "takes no parameters"),
        ({"name": "t", "events": [{"t_s": 1, "do": "set"}]}, "needs at least one"),
        ({"name": "t", "events": [{"t_s": 1, "do": "set", "noise_frac": 2}]}, "noise_frac"),
    ],
)
def test_bad_scenarios_are_rejected_clearly(data, words):
    with pytest.raises(scenario.ScenarioError) as e:
        scenario.validate(data)
    assert words in str(e.value)


def test_bad_files(tmp_path):
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(scenario.ScenarioError, match="broken.json: not valid JSON"):
        scenario.load(str(bad))
    good = tmp_path / "mine.json"
    good.write_text(json.dumps({"name": "mine", "load": {"r_series_ohm": 700}}))
    assert scenario.load(str(good))["load"]["r_series_ohm"] == 700
    with pytest.raises(scenario.ScenarioError, match="no scenario named 'nope'.*palms"):
        scenario.load("nope")


def test_scenarios_load_under_micropython(mpy):
    r = mpy("import scenario\nfor n in scenario.names():\n    sc = scenario.load(n)\n    print(n, len(sc['events']))\n")
    for n in EXPECTED:
        assert n in r.stdout
