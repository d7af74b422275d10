"""`ionto config`: host-side validation with the firmware's own config.py (no unit needed), key
paths and diffs; then end to end against a virtual unit over its pty with the real mpremote
(link.py): push/pull round trip, a rejected configuration changes nothing (host-side and
unit-side), each change lands in the unit's event log, set/get, show."""
import json

import pytest

import cfgstore
import config
import logstore
import records
from ionto import cli, config_cmd
from ionto.errors import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_USAGE, IontoError
from ionto.link import Link
from ionto.scripted import app_ready


def ionto(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def write(tmp_path, name, doc):
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return str(p)


# --- host only -------------------------------------------------------------------------------
def test_the_firmware_modules_are_the_firmwares_own():
    # Imported from firmware/, never a copy, under ionto's own namespace (no top-level `config`
    # that another package could shadow), and the same module for every host command.
    assert config_cmd.firmware("config") is config_cmd.firmware("config")
    assert config_cmd.firmware("config").__name__ == "ionto.firmware.config"
    assert config_cmd.firmware("cfgstore").config is config_cmd.firmware("config")
    assert config_cmd.firmware("config").__file__ == str(config_cmd.FIRMWARE / "config.py")
    assert config_cmd.firmware("config").defaults() == config.defaults()  # the same code as the unit's


def test_validate_good_file(tmp_path, capsys):
    rc, out, err = ionto(capsys, "config", "validate", write(tmp_path, "c.json", config.defaults()))
    assert rc == 0, err
    assert "valid configuration" in out and "hands_feet, feet, armpits, glycopyrrolate" in out
    assert err == ""


def test_validate_accepts_a_file_saved_by_the_unit(tmp_path, capsys):
    # config.json copied off a unit: the JSON line and its crc32 line.
    rc, out, err = ionto(capsys, "config", "validate", write(tmp_path, "c.json", cfgstore.encode(config.defaults())))
    assert rc == 0, err
    # Edited without removing the crc32 line: a damaged input file, not silently accepted.
    text = cfgstore.encode(config.defaults()).replace("15000", "14000", 1)
    rc, out, err = ionto(capsys, "config", "validate", write(tmp_path, "d.json", text))
    assert rc == EXIT_USAGE
    assert "crc32" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("change, words", [
    (lambda c: c["presets"][1].update(duration_s=100), "presets[1].duration_s: 100 is out of range"),
    (lambda c: c["presets"][0].update(target_ua=100), "presets[0].target_ua: 100 is out of range"),
    # The ceiling can only tighten the firmware's hard limit (limits.ABS_MAX_UA).
    (lambda c: c["presets"][0].update(ceiling_ua=40000), "hard limit 30000"),
    (lambda c: c["presets"][2].update(target_ua=20000), "presets[2].target_ua: 20000 is above ceiling_ua 15000"),
    (lambda c: c["presets"][2].update(target_ua="8000"), "presets[2].target_ua: '8000' is not an integer"),
    (lambda c: c["presets"][3].update(reverse=1), "presets[3].reverse: 1 is not a boolean"),
    (lambda c: c.update(default_preset="nose"), "default_preset: 'nose' is not a preset"),
    (lambda c: c.update(presets={}), "presets: {} is not allowed"),
])
def test_validate_rejects_with_one_line_exit_8(tmp_path, capsys, change, words):
    cfg = config.defaults()
    change(cfg)
    rc, out, err = ionto(capsys, "config", "validate", write(tmp_path, "c.json", cfg))
    assert rc == EXIT_CONFIG
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ionto config: error: ")
    assert words in lines[0]
    assert words in out  # every problem, one per line, on stdout


def test_validate_many_problems_names_the_first_and_counts_the_rest(tmp_path, capsys):
    cfg = config.defaults()
    for p in cfg["presets"]:
        p["duration_s"] = 60
    p = write(tmp_path, "c.json", cfg)
    rc, out, err = ionto(capsys, "config", "validate", p)
    assert rc == EXIT_CONFIG
    assert "4 problems" in err and "and 1 more" in err
    assert len(out.strip().splitlines()) == 4
    # push: the same one line, and nothing is sent (the port is never opened).
    rc, out, err = ionto(capsys, "config", "push", p, "--yes", "--port", str(tmp_path / "no-such-port"))
    assert rc == EXIT_CONFIG
    assert "nothing sent" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ['{"schema": 1,', "", "not json at all", "[1, 2"])
def test_malformed_json_is_a_usage_error(tmp_path, capsys, text):
    p = write(tmp_path, "c.json", text)
    for argv in (["config", "validate", p], ["config", "push", p, "--yes", "--port", "/nonexistent"]):
        rc, out, err = ionto(capsys, *argv)
        assert rc == EXIT_USAGE
        assert "not valid JSON" in err and len(err.strip().splitlines()) == 1


def test_wrong_top_level_type_is_invalid(tmp_path, capsys):
    rc, out, err = ionto(capsys, "config", "validate", write(tmp_path, "c.json", "[1, 2]"))
    assert rc == EXIT_CONFIG
    assert "is not an object" in err


def test_missing_file(tmp_path, capsys):
    rc, out, err = ionto(capsys, "config", "validate", str(tmp_path / "nope.json"))
    assert rc == EXIT_USAGE
    assert "cannot read" in err


def test_key_paths():
    cfg = config.defaults()
    assert config_cmd.split_key("presets[0].target_ua") == ["presets", "0", "target_ua"]
    assert config_cmd.split_key("presets.hands_feet.target_ua") == ["presets", "hands_feet", "target_ua"]
    for key in ("presets[1].target_ua", "presets.feet.target_ua", "presets[feet].target_ua", "presets.1.target_ua"):
        cont, k, path = config_cmd.resolve(cfg, key)
        assert path == "presets[1].target_ua"  # cfgstore's form, as in the event log
        assert cont[k] == 18000
    assert config_cmd.get_value(cfg, "default_preset") == "hands_feet"
    assert config_cmd.get_value(cfg, "presets.armpits")["ceiling_ua"] == 15000
    for key, code in (("presets[9].target_ua", EXIT_NOT_FOUND), ("presets.nose.target_ua", EXIT_NOT_FOUND),
                      ("presets[0].colour", EXIT_NOT_FOUND), ("presets[0].pulsed.freq_hz", EXIT_NOT_FOUND),
                      ("volume", EXIT_NOT_FOUND), ("presets[0]..x", EXIT_USAGE), ("", EXIT_USAGE),
                      (".presets", EXIT_USAGE)):
        with pytest.raises(IontoError) as e:
            config_cmd.get_value(cfg, key)
        assert e.value.code == code, key
    with pytest.raises(IontoError) as e:
        config_cmd.get_value(cfg, "presets.nose")
    assert "hands_feet" in e.value.message  # says which presets there are


def test_set_value_and_value_parsing():
    cfg = config.defaults()
    assert config_cmd.parse_value("12000") == 12000
    assert config_cmd.parse_value("true") is True
    assert config_cmd.parse_value("feet") == "feet"
    assert config_cmd.parse_value('{"freq_hz": 1000, "duty_pct": 50}') == {"freq_hz": 1000, "duty_pct": 50}
    new, path = config_cmd.set_value(cfg, "presets.armpits.pulsed", {"freq_hz": 1000, "duty_pct": 50})
    assert path == "presets[2].pulsed"
    assert cfg["presets"][2]["pulsed"] is False  # a copy was changed
    assert config.validate(new)[0]
    d = config_cmd.diff(cfg, new)
    assert d == [("presets[2].pulsed", "false", "-"), ("presets[2].pulsed.duty_pct", "-", "50"),
                 ("presets[2].pulsed.freq_hz", "-", "1000")]
    text = config_cmd.format_diff(config_cmd.diff(cfg, config_cmd.set_value(cfg, "presets[0].target_ua", 12000)[0]))
    assert "presets[0].target_ua  15000 -> 12000" in text


def test_canonical_order_and_show_text():
    cfg = config.defaults()
    shuffled = json.loads(json.dumps({k: cfg[k] for k in reversed(list(cfg))}))
    shuffled["presets"] = [{k: p[k] for k in reversed(list(p))} for p in shuffled["presets"]]
    assert config_cmd.dumps(shuffled) == config_cmd.dumps(cfg)
    assert list(json.loads(config_cmd.dumps(shuffled))) == ["schema", "isolated_usb", "default_preset", "presets"]
    text = config_cmd.describe(cfg, "config.bak", ["using the previous configuration (config.bak): x"])
    assert "PREVIOUS configuration" in text and "hands_feet*" in text and "glycopyrrolate" in text


# --- end to end on a virtual unit ---------------------------------------------------------------
ready = app_ready


@pytest.fixture
def vu(vu):
    """The module's unit (conftest) with the built-in defaults on it again, whatever ran before."""
    unit = vu
    ready(unit.ctl)
    with Link.open(unit.port) as u:
        u.enter()
        names = {n for n, _s, _d in u.listdir("/")}
        for f in ("config.json", "config.bak", "config.btm", "config.tmp"):
            if f in names:
                u.remove("/" + f)
    ready(unit.ctl)
    return unit


def unit_events(port):
    """The unit's event log, read off its flash and decoded with firmware/records.py."""
    out = []
    with Link.open(port) as u:
        names = {n for n, _s, _d in u.listdir("/log")}
        for f in ("events.old", "events.log"):
            if f in names:
                out += records.read(u.read_file("/log/" + f))
    return sorted(out, key=lambda r: r["seq"])


def config_changes(port):
    return [r["text"] for r in unit_events(port) if r["type"] == "text" and r["code"] == logstore.L_CONFIG]


def pull(capsys, vu):
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "pull", "--port", vu.port)
    assert rc == 0, err
    return json.loads(out)


def test_push_then_pull_round_trips_and_is_logged(vu, tmp_path, capsys):
    cfg = config.defaults()
    cfg["presets"][0]["target_ua"] = 12000
    cfg["presets"][2]["pulsed"] = {"freq_hz": 2000, "duty_pct": 50}
    cfg["default_preset"] = "feet"
    p = write(tmp_path, "new.json", cfg)
    before = config_changes(vu.port)
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "push", p, "--yes", "--port", vu.port)
    assert rc == 0, err
    # The diff was shown before applying, in cfgstore's paths.
    assert "presets[0].target_ua" in out and "15000 -> 12000" in out
    assert '"hands_feet" -> "feet"' in out
    assert "saved on the unit" in out
    assert pull(capsys, vu) == cfg
    # Each change went into the unit's event log, old -> new.
    new = config_changes(vu.port)[len(before):]
    assert "presets[0].target_ua 15000 -> 12000" in new
    assert 'default_preset "hands_feet" -> "feet"' in new
    assert len(new) == len(config_cmd.diff(config.defaults(), cfg))
    # The unit's application runs on it after the soft reset: the default preset is selected.
    ready(vu.ctl)
    assert vu.ctl.eval("app.s.preset.name") == "feet"
    assert vu.ctl.eval("app.s.presets[0].target_ua") == 12000
    # Pushing the same again changes nothing and writes nothing.
    n = len(config_changes(vu.port))
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "push", p, "--yes", "--port", vu.port)
    assert rc == 0, err
    assert "no change" in out and "saved" not in out
    assert len(config_changes(vu.port)) == n
    # show reads the same, and says where it came from.
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "show", "--port", vu.port)
    assert rc == 0, err
    assert "configuration from config.json" in out and "feet*" in out and "2000 Hz 50 %" in out
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "show", "--json", "--port", vu.port)
    assert rc == 0 and json.loads(out) == cfg
    # pull -o writes a file that validates and pushes back unchanged.
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "pull", "-o", str(tmp_path / "pulled.json"), "--port", vu.port)
    assert rc == 0, err
    assert json.loads((tmp_path / "pulled.json").read_text()) == cfg


def test_invalid_push_changes_nothing(vu, tmp_path, capsys, monkeypatch):
    cur = pull(capsys, vu)
    n = len(config_changes(vu.port))
    bad = json.loads(json.dumps(cur))
    bad["presets"][0]["ceiling_ua"] = 40000  # above the hard limit
    p = write(tmp_path, "bad.json", bad)
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "push", p, "--yes", "--port", vu.port)
    assert rc == EXIT_CONFIG and "nothing sent" in err and "hard limit" in err
    assert pull(capsys, vu) == cur
    # The unit validates again on its own: with the host's check bypassed, it refuses too.
    monkeypatch.setattr(config_cmd, "load_file", lambda path: (bad, []))
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "push", p, "--yes", "--port", vu.port)
    assert rc == EXIT_CONFIG
    assert "the unit rejected the configuration" in err and "hard limit" in err
    assert len(err.strip().splitlines()) == 1
    assert pull(capsys, vu) == cur
    assert len(config_changes(vu.port)) == n


def test_set_and_get(vu, capsys):
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "set", "presets.armpits.duration_s", "1500", "--yes", "--port", vu.port)
    assert rc == 0, err
    assert "presets[2].duration_s" in out and "1200 -> 1500" in out
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "get", "presets[2].duration_s", "--port", vu.port)
    assert (rc, out) == (0, "1500\n")
    assert "presets[2].duration_s 1200 -> 1500" in config_changes(vu.port)
    # A plain string value, printed bare.
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "set", "default_preset", "armpits", "-y", "--port", vu.port)
    assert rc == 0, err
    ready(vu.ctl)
    assert ionto(capsys, "config", "get", "default_preset", "--port", vu.port)[:2] == (0, "armpits\n")
    cur = pull(capsys, vu)
    # Out of range on the host: exit 8, nothing sent.
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "set", "presets.armpits.duration_s", "100", "--yes", "--port", vu.port)
    assert rc == EXIT_CONFIG and "duration_s" in err and "nothing sent" in err
    # No such key: exit 11.
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "set", "presets.nose.target_ua", "1000", "--yes", "--port", vu.port)
    assert rc == EXIT_NOT_FOUND and "no preset 'nose'" in err
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "get", "presets[0].colour", "--port", vu.port)
    assert rc == EXIT_NOT_FOUND
    # No terminal to confirm on and no --yes: not applied.
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "set", "presets[0].step_ua", "1000", "--port", vu.port)
    assert rc == EXIT_USAGE and "--yes" in err
    assert "presets[0].step_ua" in out  # the diff was still shown
    assert pull(capsys, vu) == cur


def test_asks_on_a_terminal(vu, capsys, monkeypatch):
    cur = pull(capsys, vu)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    asked = []
    monkeypatch.setattr("builtins.input", lambda q: asked.append(q) or "n")
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "set", "presets[0].step_ua", "1000", "--port", vu.port)
    assert rc == 0, err
    assert asked and "apply to the unit" in asked[0]
    assert "not applied: nothing written" in out
    assert pull(capsys, vu) == cur
    monkeypatch.setattr("builtins.input", lambda q: "y")
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "set", "presets[0].step_ua", "1000", "--port", vu.port)
    assert rc == 0 and "saved on the unit" in out
    assert config_cmd.get_value(pull(capsys, vu), "presets[0].step_ua") == 1000


def test_damaged_config_json_shows_the_previous_one_and_a_push_repairs_it(vu, tmp_path, capsys):
    for step in (700, 800):  # two saves: config.bak holds the first
        ready(vu.ctl)
        assert ionto(capsys, "config", "set", "presets[1].step_ua", str(step), "-y", "--port", vu.port)[0] == 0
    cur = pull(capsys, vu)
    ready(vu.ctl)
    with Link.open(vu.port) as u:
        names = {n for n, _s, _d in u.listdir("/")}
        assert "config.bak" in names
        bak, _e = cfgstore.decode(u.read_file("/config.bak"))
        u.write_file("/config.json", b'{"schema": 1, "presets": [')  # torn by hand
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "show", "--port", vu.port)
    assert rc == 0, err
    assert "config.bak: the PREVIOUS configuration" in out and "unit says:" in out
    assert bak["presets"][1]["step_ua"] == 700 and cur["presets"][1]["step_ua"] == 800
    assert pull(capsys, vu) == bak
    # Pushing the previous one again changes no value but repairs config.json.
    p = write(tmp_path, "bak.json", bak)
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "push", p, "--yes", "--port", vu.port)
    assert rc == 0, err
    assert "runs on config.bak" in out and "saved on the unit" in out
    ready(vu.ctl)
    rc, out, err = ionto(capsys, "config", "show", "--port", vu.port)
    assert "configuration from config.json" in out


@pytest.mark.parametrize("change, words", [
    (("reverse", True), "reverse: true is not allowed for glycopyrrolate"),
    (("ceiling_ua", 9_000), "above the glycopyrrolate ceiling"),
    (("dose_cap_mamin", 100), "above the glycopyrrolate dose cap"),
    (("polarity", 1), "under the wrong electrode"),
])
def test_a_drug_preset_breaking_its_rules_is_refused_in_one_line(tmp_path, capsys, change, words):
    cfg = config.defaults()
    g = cfg["presets"][3]
    g["name"] = "drug_pad"  # the rules follow the declared solution, not the name
    g[change[0]] = change[1]
    rc, out, err = ionto(capsys, "config", "validate", write(tmp_path, "c.json", cfg))
    assert rc == EXIT_CONFIG
    lines = [ln for ln in err.strip().splitlines() if words in ln]
    assert len(lines) == 1, err
