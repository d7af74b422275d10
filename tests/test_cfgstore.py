"""firmware/cfgstore.py: atomic replace, backup, fallback, refusal and change diffs (CPython on a
temp dir), and the same under MicroPython on VfsLfs2 (storage_checks.cfg_on_littlefs)."""
import copy
import json
import os

import cfgstore
import config
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture
def store(tmp_path):
    return cfgstore.CfgStore(str(tmp_path))


def _tweak(target):
    c = config.defaults()
    c["presets"][0]["target_ua"] = target
    return c


def test_new_unit_runs_on_defaults(store):
    cfg, src, errs = store.load()
    assert (cfg, src, errs) == (config.defaults(), "defaults", [])


def test_save_then_load_and_backup_kept(store, tmp_path):
    ok, errs, d = store.save(_tweak(16000))
    assert ok and errs == []
    assert d == [("presets[0].target_ua", "15000", "16000")]
    assert not (tmp_path / "config.bak").exists()  # nothing was on flash before
    ok, errs, d = store.save(_tweak(17000))
    assert d == [("presets[0].target_ua", "16000", "17000")]
    assert cfgstore.decode((tmp_path / "config.bak").read_bytes())[0] == _tweak(16000)
    assert not (tmp_path / "config.tmp").exists() and not (tmp_path / "config.btm").exists()
    fresh = cfgstore.CfgStore(str(tmp_path))
    assert fresh.load() == (_tweak(17000), "config.json", [])


def test_invalid_config_is_refused_and_changes_nothing(store, tmp_path):
    store.save(_tweak(16000))
    before = (tmp_path / "config.json").read_bytes()
    ok, errs, d = store.save(_tweak(999_999))
    assert not ok and errs and d == []
    assert (tmp_path / "config.json").read_bytes() == before


def test_on_change_callback_gets_old_and_new(store):
    seen = []
    c = _tweak(15000)
    c["presets"][1]["reverse"] = False
    store.save(c, on_change=lambda *a: seen.append(a))
    assert seen == [("presets[1].reverse", "true", "false")]


def test_corrupt_config_falls_back_to_backup_and_says_so(store, tmp_path):
    store.save(_tweak(16000))
    store.save(_tweak(17000))
    p = tmp_path / "config.json"
    b = bytearray(p.read_bytes())
    i = b.index(b"17000")
    b[i] = ord("2")  # still valid JSON and a valid config: only the CRC tells
    p.write_bytes(bytes(b))
    cfg, src, errs = cfgstore.CfgStore(str(tmp_path)).load()
    assert cfg == _tweak(16000) and src == "config.bak"
    assert "config.bak" in errs[0] and "checksum" in errs[0]


def test_no_valid_file_refuses_with_words(store, tmp_path):
    store.save(_tweak(16000))
    (tmp_path / "config.json").write_bytes(b"\x00\xff garbage")
    cfg, src, errs = cfgstore.CfgStore(str(tmp_path)).load()
    assert cfg is None and src == "none"
    assert errs[0].startswith("no valid configuration: config.json:")


def test_missing_config_with_a_backup_uses_the_backup(store, tmp_path):
    store.save(_tweak(16000))
    store.save(_tweak(17000))
    os.remove(tmp_path / "config.json")
    cfg, src, errs = cfgstore.CfgStore(str(tmp_path)).load()
    assert cfg == _tweak(16000) and src == "config.bak" and "missing" in errs[0]


def test_hand_written_json_without_crc_is_accepted(tmp_path):
    c = _tweak(12000)
    (tmp_path / "config.json").write_text(json.dumps(c, indent=2))
    assert cfgstore.CfgStore(str(tmp_path)).load() == (c, "config.json", [])


def test_diff_covers_added_and_removed_presets():
    a = config.defaults()
    b = copy.deepcopy(a)
    b["presets"].pop()
    d = cfgstore.diff(a, b)
    assert ("presets[3].name", '"glycopyrrolate"', "-") in d


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=20,
)
_FIELDS = config._PRESET_KEYS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_FIELDS + ("schema", "isolated_usb", "default_preset", "presets")), value=_json,
       raw=st.booleans())
def test_fuzzed_configs_through_load(tmp_path, field, value, raw):
    # One field replaced by junk, written as the unit would (with its CRC) or by hand: load()
    # never raises and returns the file only if config.validate accepts it, else the backup.
    d = tmp_path / ("f%d" % abs(hash((field, repr(value), raw))))
    d.mkdir(exist_ok=True)
    s = cfgstore.CfgStore(str(d))
    assert s.save(_tweak(16000))[0]
    c = config.defaults()
    if field in _FIELDS:
        c["presets"][0][field] = value
    else:
        c[field] = value
    text = json.dumps(c) if raw else cfgstore.encode(c)
    (d / "config.json").write_text(text)
    (d / "config.bak").write_text(cfgstore.encode(_tweak(14000)))
    cfg, src, errs = cfgstore.CfgStore(str(d)).load()
    if config.validate(c)[0]:
        assert (cfg, src, errs) == (c, "config.json", [])
    else:
        assert (cfg, src) == (_tweak(14000), "config.bak") and errs


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=300))
def test_random_bytes_as_config_never_load(tmp_path, data):
    (tmp_path / "config.json").write_bytes(data)
    (tmp_path / "config.bak").write_bytes(data)
    cfg, src, errs = cfgstore.CfgStore(str(tmp_path)).load()
    assert cfg is None or config.validate(cfg)[0]
    if cfg is None:
        assert src == "none" and errs


def test_on_littlefs_under_micropython(mpy, tmp_path):
    r = mpy("import storage_checks; storage_checks.cfg_on_littlefs(%r)" % str(tmp_path / "c.img"))
    assert r.stdout.startswith("OK cfg")
