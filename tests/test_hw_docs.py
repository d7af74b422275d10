"""The reference-hardware documents agree with the code they describe.

- hw/docs.py renders both diagrams (PNG and SVG) from firmware/pins.py;
- hw/parts.csv parses, has the required columns and real-looking part numbers;
- hw/README.md's pin table quotes every constant of pins.py with its value;
- hw/calibration.md's INA219 figures follow from the shunt in pins.py;
- docs/nurse_guide.md names every fault code of firmware/limits.py with its display text.
"""
import argparse
import csv
import math
import re
from pathlib import Path

import pytest

import limits  # firmware/, through tests/shims (conftest puts both on sys.path)
import pins
from hw import docs as hwdocs

ROOT = Path(__file__).resolve().parent.parent

HW = ROOT / "hw"
README = HW / "README.md"
PARTS = HW / "parts.csv"
CALIBRATION = HW / "calibration.md"
NURSE = ROOT / "docs" / "nurse_guide.md"
TECH = ROOT / "docs" / "technician_guide.md"
SAFETY = ROOT / "hw" / "safety_case.md"

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def pin_constants():
    """NAME -> value for the public constants of pins.py, as imported (through the shim)."""
    return {k: v for k, v in vars(pins).items() if k.isupper() and isinstance(v, int)}


def is_gpio(name):
    return name.startswith("PIN_") or name in ("I2C_SDA", "I2C_SCL")


def quoted(name, value):
    """The ways the README may write a constant's value."""
    if is_gpio(name):
        return {"GP%d" % value}
    if name.endswith("_ADDR"):
        return {"0x%02X" % value, "0x%02x" % value}
    return {str(value), "{:_}".format(value), "{:,}".format(value)}


# --- Diagrams ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("diagrams")
    return out, hwdocs.render(out)


def test_docs_render_png_and_svg(rendered):
    out, written = rendered
    names = sorted(p.name for p in written)
    assert names == sorted("%s.%s" % (n, e) for n in hwdocs.NAMES for e in ("png", "svg"))
    for path in written:
        assert path.parent == out and path.stat().st_size > 10_000, path
        head = path.read_bytes()[:200]
        if path.suffix == ".png":
            assert head.startswith(PNG_MAGIC)
        else:
            assert b"<svg" in path.read_bytes()[:2000]


def test_diagrams_label_the_pins_from_pins_py(rendered):
    out, _ = rendered
    p = pin_constants()
    block = (out / "block_diagram.svg").read_text()
    stage = (out / "output_stage.svg").read_text()
    for name in ("PIN_SETPOINT_PWM", "PIN_OUTPUT_ENABLE", "PIN_POLARITY", "PIN_PULSE_GATE", "PIN_HW_LIMIT",
                 "PIN_ELECTRODE_ADC"):
        assert "GP%d" % p[name] in block, name
        assert "GP%d" % p[name] in stage, name
    assert "GP%d" % p["PIN_VBUS_SENSE"] in block
    assert "0x%02X" % p["INA219_ADDR"] in stage
    # The limiter's reference is derived, not typed: 35 mA through 10 ohm.
    assert "%d mV" % (p["HW_LIMIT_UA"] * p["SHUNT_MILLIOHM"] // 1_000_000) in stage


def test_a_pin_changed_in_pins_py_changes_the_diagrams(tmp_path):
    src = (ROOT / "firmware" / "pins.py").read_text()
    assert "PIN_OUTPUT_ENABLE = const(17)" in src or "PIN_OUTPUT_ENABLE = const(%d)" % pins.PIN_OUTPUT_ENABLE in src
    moved = re.sub(r"PIN_OUTPUT_ENABLE = const\(\d+\)", "PIN_OUTPUT_ENABLE = const(21)", src)
    fake = tmp_path / "pins.py"
    fake.write_text(moved)
    assert hwdocs.load_pins(fake)["PIN_OUTPUT_ENABLE"] == 21
    hwdocs.render(tmp_path / "out", pins_file=fake)
    assert "GP21 enable" in (tmp_path / "out" / "output_stage.svg").read_text()


def test_load_pins_parses_what_python_imports():
    assert hwdocs.load_pins() == pin_constants()


def test_committed_diagrams_exist_and_quote_the_current_pins():
    p = pin_constants()
    for name in hwdocs.NAMES:
        png = HW / "diagrams" / (name + ".png")
        svg = HW / "diagrams" / (name + ".svg")
        assert png.read_bytes().startswith(PNG_MAGIC)
        text = svg.read_text()
        # Stale images after a pin change: run `make docs` and commit them.
        assert "GP%d" % p["PIN_OUTPUT_ENABLE"] in text and "GP%d" % p["PIN_POLARITY"] in text, name


# --- Parts list -------------------------------------------------------------------------
REQUIRED_COLUMNS = ["ref", "qty", "part_number", "manufacturer", "description", "why"]
# Part numbers as manufacturers write them: letters, digits and a few separators, with a digit.
PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.#/+,\-]{2,39}$")


@pytest.fixture(scope="module")
def parts():
    with PARTS.open(newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == REQUIRED_COLUMNS
        return list(reader)


def test_parts_rows_are_complete(parts):
    assert len(parts) >= 20
    refs = [r["ref"] for r in parts]
    assert len(refs) == len(set(refs)), "duplicate refs"
    for r in parts:
        for col in REQUIRED_COLUMNS:
            assert r[col] and r[col].strip() == r[col], (r["ref"], col)
        assert int(r["qty"]) > 0, r["ref"]
        assert PART_RE.match(r["part_number"]) and re.search(r"\d", r["part_number"]), r["part_number"]
        assert len(r["why"]) >= 20, r["ref"]


@pytest.mark.parametrize("needle", [
    "SC0915",  # Raspberry Pi Pico
    "INA219AIDCNR",
    "OPA197",
    "TLV3201",
    "AQY214EH",  # enable photoMOS
    "AQW214EH",  # polarity bridge
    "TNPW080510R0BEEA",  # 10 ohm 0.1 % shunt
    "0217.050",  # fuse
    "LT8331",  # 60 V boost
    "REM3-",  # 2xMOPP DC/DC
    "GSM25E12",  # 2xMOPP medical adapter
    "ADuM4160",  # USB isolator (variant B)
    "B3F-1000",  # buttons
])
def test_parts_list_has(parts, needle):
    assert any(needle in r["part_number"] for r in parts), needle


def test_parts_list_describes_display_buzzer_and_electrodes(parts):
    text = " ".join(r["description"] for r in parts)
    for word in ("SSD1306", "128x64", "Piezo", "Electrode", "2xMOPP"):
        assert word in text, word


# --- Pin table --------------------------------------------------------------------------
ROW_RE = re.compile(r"^\|\s*`(\w+)`\s*\|\s*([^|]*?)\s*\|", re.M)


def test_readme_pin_table_quotes_every_constant_of_pins_py():
    table = dict(ROW_RE.findall(README.read_text()))
    consts = pin_constants()
    missing = sorted(set(consts) - set(table))
    assert not missing, "add these to the pin table in hw/README.md: %s" % missing
    wrong = {n: (table[n], sorted(quoted(n, v))) for n, v in consts.items() if table[n] not in quoted(n, v)}
    assert not wrong, "hw/README.md pin table disagrees with firmware/pins.py: %s" % wrong
    extra = sorted(n for n in table if (is_gpio(n) or n.endswith("_ADDR")) and n not in consts)
    assert not extra, "pins in hw/README.md that pins.py does not have: %s" % extra


def test_readme_states_what_was_not_built():
    text = README.read_text()
    assert "Not built, not measured" in text
    assert "Intended class: B" in text
    for control in ("Hardware current limiter", "Fuse F1", "pull-down", "watchdog", "2 × MOPP", "60 V rail"):
        assert control in text, control


# --- Calibration ------------------------------------------------------------------------
def test_calibration_follows_from_the_shunt():
    text = CALIBRATION.read_text()
    shunt_ohm = pins.SHUNT_MILLIOHM / 1000
    full_scale_ma = 320 / shunt_ohm  # PGA /8: +-320 mV
    assert full_scale_ma > limits.ABS_MAX_UA / 1000, "the ceiling must trip inside the INA219's range"
    current_lsb = 1e-6  # A, the round value above 32 mA / 2**15
    assert current_lsb >= full_scale_ma / 1000 / 2 ** 15
    cal = math.trunc(0.04096 / (current_lsb * shunt_ohm))
    assert "%d = 0x%04X" % (cal, cal) in text
    assert "**%g mA**" % full_scale_ma in text
    # Config register: PGA /8, BADC 12-bit, SADC 12-bit (x1 or x2), shunt continuous.
    for sadc in (0b0011, 0b1001):
        cfg = (0b11 << 11) | (0b0011 << 7) | (sadc << 3) | 0b101
        assert "0x%04X" % cfg in text
    lim_mv = pins.HW_LIMIT_UA * pins.SHUNT_MILLIOHM // 1_000_000
    assert "%d mV" % lim_mv in text


def test_calibration_page_agrees_with_the_driver():
    import ina219

    text = CALIBRATION.read_text()
    pga, fs_counts, lsb_na, cal, plsb_nw = ina219.calibration(pins.SHUNT_MILLIOHM, 32_000)
    assert (pga, fs_counts, lsb_na) == (3, 32_000, 1_000)  # /8, 320 mV, 1 uA
    assert "%d = 0x%04X" % (cal, cal) in text
    assert "**%d µW**" % (plsb_nw // 1000) in text
    for fast in (False, True):
        drv = ina219.INA219(None, pins.INA219_ADDR, pins.SHUNT_MILLIOHM, fast=fast)
        assert "**0x%04X**" % drv.config_value in text, fast


# --- Guides -----------------------------------------------------------------------------
def _fault_rows(text):
    """Code -> the guide's table row for it (rows start with `| <code> |`)."""
    return {int(m.group(1)): m.group(0) for m in re.finditer(r"^\|\s*(\d+)\s*\|.*$", text, re.M)}


def test_nurse_guide_covers_every_fault_code_with_its_display_text():
    rows = _fault_rows(NURSE.read_text())
    codes = [f[0] for f in limits.FAULTS]
    assert codes, "limits.FAULTS is empty"
    missing = [c for c in codes if c not in rows]
    assert not missing, "fault codes missing from docs/nurse_guide.md: %s" % missing
    for code, _name, line1, line2, _todo in limits.FAULTS:
        assert line1 in rows[code], (code, line1)
        assert line2 in rows[code], (code, line2)
    stray = sorted(set(rows) - set(codes))
    assert not stray, "codes in the nurse guide that limits.py does not define: %s" % stray


def test_nurse_guide_names_every_state_limit_reason_and_end_reason():
    import session

    text = NURSE.read_text()
    for name in session.STATE_NAMES + session.END_TEXT:
        assert name in text, name
    for _code, short, _long in limits.LIMIT_REASONS:
        assert short in text, short


def test_nurse_guide_has_the_checks_and_the_course():
    text = NURSE.read_text()
    for word in ("pregnan", "epilep", "metal implant", "pacemaker", "piercing", "jewellery", "cut"):
        assert word in text.lower(), word
    assert "1, 2, 4, 7, 10, 15 and 22" in text and "Tuesday" in text
    for beep in ("one beep", "three beeps", "two short beeps"):
        assert beep in text, beep
    assert "0.5 mA" in text


def _ionto_grammar():
    """cli.COMMANDS as argparse builds them -> {command: (option strings, {action: option strings})}."""
    from ionto import cli

    def opts(parser):
        return {o for act in parser._actions for o in act.option_strings}

    def subparsers(parser):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return subs[0].choices if subs else {}

    out = {}
    for name, sp in subparsers(cli.build_parser()).items():
        out[name] = (opts(sp), {act: opts(asp) for act, asp in subparsers(sp).items()})
    return out


def _ionto_lines(text):
    """The `ionto ...` command lines the guide shows: in fenced blocks (continuation lines
    joined, comments dropped), indented code and inline code spans."""
    lines, fenced, buf = [], False, ""
    for ln in text.splitlines():
        if ln.strip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or ln.startswith("    "):
            ln = buf + ln.split("#")[0].strip()
            if ln.endswith("\\"):
                buf = ln[:-1] + " "
                continue
            buf = ""
            if ln.startswith("ionto "):
                lines.append(ln)
    lines += [c.strip() for c in re.findall(r"`([^`\n]+)`", text) if c.strip().startswith("ionto ")]
    return lines


def test_technician_guide_names_every_ionto_command_and_action():
    """Every command cli.py registers, and every action of those that have actions, is shown in
    the guide as `ionto COMMAND [ACTION]`; and it lists every exit code of errors.py."""
    from ionto import errors

    text = TECH.read_text()
    shown = _ionto_lines(text)
    for cmd, (_opts, actions) in _ionto_grammar().items():
        assert any(ln.split()[1] == cmd for ln in shown), "the technician guide never shows `ionto %s`" % cmd
        for act in actions:
            assert any(ln.split()[1:3] == [cmd, act] for ln in shown), \
                "the technician guide never shows `ionto %s %s`" % (cmd, act)
    for code, name in errors.NAMES.items():
        assert re.search(r"^\| %d \| %s \|" % (code, name), text, re.M), "exit code %d %s not in the table" % (code, name)
    assert "Designed" not in text and "not implemented" not in text.lower()


def test_technician_guide_claims_only_ionto_syntax_that_exists():
    """Every `ionto ...` line in the guide names a command cli.py registers, an action that
    command has, and only options argparse knows for it (a guide written from memory, or left
    behind by a change of the tools, fails here)."""
    from ionto import cli

    grammar = _ionto_grammar()
    top = {o for act in cli.build_parser()._actions for o in act.option_strings}  # --help, --version
    shown = _ionto_lines(TECH.read_text())
    assert len(shown) > 30, shown
    bad = []
    for ln in shown:
        toks = ln.split()
        cmd = toks[1]
        if cmd == "..." or cmd in top or cmd.rstrip(":").isupper():
            continue  # `ionto --help`, `ionto --version`, `ionto COMMAND --help`: the general forms
        if cmd not in grammar:
            bad.append((ln, "no command %r" % cmd))
            continue
        known, actions = grammar[cmd]
        if actions and len(toks) > 2 and not toks[2].startswith("-"):
            named = [toks[2]] + [toks[i + 1] for i, t in enumerate(toks[:-1]) if t == "/"]
            for act in named:
                if act not in actions:
                    bad.append((ln, "no action %r of ionto %s" % (act, cmd)))
            if named[0] in actions:
                known = known | actions[named[0]]
        for t in toks[2:]:
            flag = t.split("=")[0].strip("[]")
            if re.match(r"^--?[A-Za-z]", flag) and flag not in known:
                bad.append((ln, "no option %s of ionto %s" % (flag, cmd)))
    assert not bad, "\n".join("%s: %s" % b for b in bad)


def test_safety_case_covers_the_hazards():
    # The links from each control to its tests are enforced by tests/test_safety_case.py.
    text = SAFETY.read_text().lower()
    for hazard in ("overcurrent", "burn", "shock", "open circuit", "short circuit", "sensor", "stuck",
                   "hang", "flash corruption", "configuration", "firmware", "usb", "contraindication",
                   "piercing"):
        assert hazard in text, hazard
