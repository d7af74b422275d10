"""The safety case's links hold: hazards -> controls -> the tests and documents that verify them.

hw/hazards.csv is the hazards table as data (one row per control of a hazard; a hazard's
hazard/cause/effect/residual cells are on its first row). hw/safety_case.md carries the same
table, generated from the CSV between two markers; regenerate it after editing the CSV with

    .venv/bin/python tests/test_safety_case.py

What is enforced here:

- every firmware or software control names at least one pytest node id that EXISTS (found by
  parsing the named file with ast: fast, no collection run) and is not marked skip/xfail, or
  says "not yet verified: WHAT IS MISSING" (then its residual risk says so too). That the named tests
  PASS is shown by the same `make test` run that runs this file: a link to a failing test
  fails the suite there, not here.
- every hardware or procedure control names the document section that carries it, and the
  section exists (a markdown heading with exactly that text);
- the reverse link: every test function in the designated safety test files (SAFETY_FILES) is
  referenced by at least one hazard row, so every safety test names the hazard it covers
  through the table, without markers in files owned by others. A test there that is not
  safety-relevant must be listed, with its reason, in the file's exclusion set below.
- the hazards a unit of this kind must answer are all covered, and the IEC 62304 class is stated with a link
  to its justification in hw/README.md.
"""
import ast
import csv
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "hw" / "hazards.csv"
MD = ROOT / "hw" / "safety_case.md"
DRAFT = ROOT / "docs" / "safety_case_draft.md"

COLUMNS = ["id", "hazard", "cause", "effect", "control", "control_type", "verification", "residual_risk"]
TYPES = ("hardware", "firmware", "software", "procedure")
BEGIN = "<!-- hazards table: generated from hw/hazards.csv by tests/test_safety_case.py; do not edit -->"
END = "<!-- end of hazards table -->"
UNVERIFIED = re.compile(r"^not yet verified: (.+)$")
NODE = re.compile(r"^(tests/[\w/]+\.py)::([\w:]+)(\[[^\]]*\])?$")
SECTION = re.compile(r"^([\w/.-]+\.md) § (.+)$")

# The safety test files. Every test function in them must be referenced by a hazard row,
# except those listed here with the reason they are not safety tests.
SAFETY_FILES = {
    "tests/test_supervisor.py": {},
    "tests/test_sensing.py": {},
    "tests/test_firmware_e2e.py": {
        "test_mode_cycles_presets_in_idle_only": "panel behaviour in IDLE: no current flows",
        "test_pulsed_preset_gates_the_output_and_shows_the_average": "pulsed DC works and is shown; its "
        "averaged judgement is a supervisor test (HZ05)",
    },
    "tests/test_firmware_unit_e2e.py": {},
    "tests/test_bench_cmd.py": {
        "test_bench_on_the_virtual_unit_prints_make_bench_lines": "measurement tool, not a control",
        "test_bench_without_a_device_fails_in_one_line": "error path of a measurement tool",
        "test_bench_on_a_busy_port_fails_in_one_line": "error path of a measurement tool",
    },
}

# The hazards a unit of this kind must answer, each by words that must appear in a hazard's name.
REQUIRED = {
    "overcurrent": ["overcurrent"],
    "burn from current": ["burn from too high a current"],
    "burn from duration": ["burn from duration"],
    "burn from dose": ["burn from dose"],
    "burn from density": ["burn from current density"],
    "shock at start": ["shock", "at start"],
    "shock at stop": ["shock", "at stop"],
    "shock at polarity reversal": ["shock", "polarity reversal"],
    "shock at re-immersion": ["shock", "re-immersed"],
    "open circuit": ["open circuit"],
    "short circuit": ["short circuit"],
    "sensor failure": ["sensor failure"],
    "stuck output switch": ["stuck output switch"],
    "software hang": ["software hang"],
    "flash corruption": ["flash corruption"],
    "wrong or corrupt configuration": ["wrong or corrupt configuration"],
    "wrong or tampered firmware": ["wrong or tampered firmware"],
    "USB to a mains-powered computer": ["usb", "mains-powered computer"],
    "contraindications": ["contraindications"],
    "piercings": ["piercings"],
}


# --- reading the table ---------------------------------------------------------------------
def load_rows(path=CSV):
    """The CSV rows as dicts, hazard/cause/effect filled forward from each hazard's first row;
    each row also gets `refs`: its verification split at ' ; ', and `first`: True on a
    hazard's first row."""
    with open(path, newline="") as f:
        rd = csv.DictReader(f)
        assert rd.fieldnames == COLUMNS, rd.fieldnames
        rows = list(rd)
    last = None
    for r in rows:
        r["first"] = last is None or r["id"] != last["id"]
        if r["first"]:
            last = r
        else:
            for k in ("hazard", "cause", "effect"):
                assert not r[k], "%s: only a hazard's first row carries %s" % (r["id"], k)
                r[k] = last[k]
        r["refs"] = [x.strip() for x in r["verification"].split(" ; ") if x.strip()]
    return rows


def hazards(rows):
    """id -> its rows, in order."""
    out = {}
    for r in rows:
        out.setdefault(r["id"], []).append(r)
    return out


# --- finding tests without running pytest --------------------------------------------------
_TREES = {}


def _tree(rel):
    if rel not in _TREES:
        p = ROOT / rel
        _TREES[rel] = ast.parse(p.read_text(), str(p)) if p.exists() else None
    return _TREES[rel]


def _marks(decorators):
    """Names of the pytest marks among decorators: 'skip', 'xfail', 'parametrize', ..."""
    out = set()
    for d in decorators:
        node = d.func if isinstance(d, ast.Call) else d
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name):
            parts.append(node.id)
        out.update(parts)
    return out


def _module_marks(tree):
    out = set()
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            vals = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            out |= _marks(vals)
    return out


def _skips_inside(fn):
    """True if the body calls pytest.skip / xfail / importorskip (a test that may not run)."""
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                node.func.attr in ("skip", "xfail", "importorskip"):
            return True
    return False


def find_test(ref):
    """The problem with a pytest node id, or None if it names a test that exists and runs."""
    m = NODE.match(ref)
    if not m:
        return "not a node id (tests/FILE.py::test_name)"
    rel, names, params = m.group(1), m.group(2).split("::"), m.group(3)
    tree = _tree(rel)
    if tree is None:
        return "no such file"
    if _module_marks(tree) & {"skip", "skipif", "xfail"}:
        return "the whole module is skip/xfail-marked"
    scope = tree.body
    fn = None
    for i, name in enumerate(names):
        want = ast.ClassDef if i < len(names) - 1 else (ast.FunctionDef, ast.AsyncFunctionDef)
        found = [n for n in scope if isinstance(n, want) and n.name == name]
        if not found:
            return "no %s %s" % ("class" if i < len(names) - 1 else "function", name)
        fn = found[-1]
        scope = fn.body
    if not fn.name.startswith("test_"):
        return "not a test function"
    marks = _marks(fn.decorator_list)
    if marks & {"skip", "skipif", "xfail"}:
        return "marked skip/xfail"
    if _skips_inside(fn):
        return "calls pytest.skip/xfail"
    if params and "parametrize" not in marks:
        return "parameters given but the test is not parametrized"
    return None


def functions_in(rel):
    tree = _tree(rel)
    assert tree is not None, "safety test file missing: %s" % rel
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name.startswith("test_")]


def find_section(ref):
    """The problem with a 'path.md § Heading' reference, or None if the heading exists."""
    m = SECTION.match(ref)
    if not m:
        return "not a section reference (path.md § Heading)"
    p = ROOT / m.group(1)
    if not p.exists():
        return "no such document"
    heads = {ln.lstrip("#").strip() for ln in p.read_text().splitlines() if ln.startswith("#")}
    if m.group(2) not in heads:
        return "no heading %r" % m.group(2)
    return None


# --- rendering the markdown table ----------------------------------------------------------
def _cell(s):
    return s.replace("|", "\\|").replace("\n", " ")


def _ref_md(ref):
    return "`%s`" % ref if NODE.match(ref) else _cell(ref)


def render(rows):
    out = [BEGIN, "",
           "| ID | Hazard | Cause | Effect (harm) | Control | Type | Verification | Residual risk |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lead = [r["id"], r["hazard"], r["cause"], r["effect"]] if r["first"] else ["", "", "", ""]
        out.append("| " + " | ".join(_cell(x) for x in lead + [r["control"], r["control_type"]]) + " | "
                   + "<br>".join(_ref_md(x) for x in r["refs"]) + " | " + _cell(r["residual_risk"]) + " |")
    gaps = [r for r in rows if any(UNVERIFIED.match(x) for x in r["refs"])]
    out += ["", "### Controls not yet verified", ""]
    for r in gaps:
        out.append("- **%s** (%s, %s): %s. %s" % (r["id"], r["hazard"], r["control_type"], r["control"],
                                                  r["residual_risk"]))
    out += ["", END]
    return "\n".join(out)


def md_block(text):
    a = text.index(BEGIN)
    b = text.index(END) + len(END)
    return text[a:b]


# --- tests ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rows():
    return load_rows()


def test_table_is_well_formed(rows):
    ids = list(hazards(rows))
    assert ids == ["HZ%02d" % (i + 1) for i in range(len(ids))], "ids run HZ01, HZ02, ... in order"
    assert len(set(ids)) == len(ids)
    for r in rows:
        where = "%s / %s" % (r["id"], r["control"][:40])
        assert r["control"] and r["refs"], where
        assert r["control_type"] in TYPES, where
        if r["first"]:
            assert r["hazard"] and r["cause"] and r["effect"] and r["residual_risk"], where


def test_every_required_hazard_is_in_the_table(rows):
    names = [r["hazard"].lower() for r in rows if r["first"]]
    for what, words in REQUIRED.items():
        assert any(all(w in n for w in words) for n in names), "no hazard row for %s" % what


def test_firmware_and_software_controls_name_tests_that_exist_and_run(rows):
    bad = []
    for r in rows:
        if r["control_type"] not in ("firmware", "software"):
            continue
        gaps = [x for x in r["refs"] if UNVERIFIED.match(x)]
        if gaps:
            # An honest gap: the only reference, and the residual risk says it is open.
            if len(r["refs"]) != 1:
                bad.append((r["id"], r["control"], "'not yet verified' must stand alone"))
            if "not yet verified" not in r["residual_risk"]:
                bad.append((r["id"], r["control"], "residual risk must say it is not yet verified"))
            continue
        nodes = [x for x in r["refs"] if NODE.match(x)]
        if not nodes:
            bad.append((r["id"], r["control"], "names no test"))
        for x in r["refs"]:
            problem = find_test(x) if NODE.match(x) else find_section(x)
            if problem:
                bad.append((r["id"], x, problem))
    assert not bad, "\n".join("%s: %s: %s" % b for b in bad)


def test_hardware_and_procedure_controls_name_their_document_section(rows):
    bad = []
    for r in rows:
        if r["control_type"] not in ("hardware", "procedure"):
            continue
        if not any(SECTION.match(x) for x in r["refs"]):
            bad.append((r["id"], r["control"], "names no document section"))
        for x in r["refs"]:
            problem = find_test(x) if NODE.match(x) else find_section(x)
            if problem:
                bad.append((r["id"], x, problem))
        if r["control_type"] == "hardware" and not r["first"]:
            # Nothing in hw/ was built: every hardware control says so.
            assert "not built" in r["residual_risk"].lower(), r["id"] + " " + r["control"]
    assert not bad, "\n".join("%s: %s: %s" % b for b in bad)


def test_every_safety_test_is_referenced_by_a_hazard(rows):
    referenced = {}
    for r in rows:
        for x in r["refs"]:
            m = NODE.match(x)
            if m:
                referenced.setdefault((m.group(1), m.group(2)), []).append(r["id"])
    missing = []
    for rel, excluded in SAFETY_FILES.items():
        names = functions_in(rel)
        for name in excluded:
            assert name in names, "%s: excluded test %s no longer exists: drop it from SAFETY_FILES" % (rel, name)
            assert (rel, name) not in referenced, "%s::%s is both excluded and referenced" % (rel, name)
        for name in names:
            if name not in excluded and (rel, name) not in referenced:
                missing.append("%s::%s" % (rel, name))
    assert not missing, ("safety tests that name no hazard: reference each from a row of hw/hazards.csv "
                         "(or, if not safety-relevant, exclude it with its reason in tests/test_safety_case.py):\n  "
                         + "\n  ".join(missing))


def test_markdown_table_is_generated_from_the_csv(rows):
    text = MD.read_text()
    assert BEGIN in text and END in text
    assert md_block(text) == render(rows), "hw/safety_case.md is out of date: run .venv/bin/python tests/test_safety_case.py"


def test_software_safety_class_is_stated_with_its_justification():
    text = MD.read_text()
    assert re.search(r"IEC 62304 software safety class[^\n]*\*\*B\*\*", text)
    assert "hw/README.md" in text and "Software safety class (IEC 62304)" in text
    assert find_section("hw/README.md § Software safety class (IEC 62304)") is None
    readme = (ROOT / "hw" / "README.md").read_text()
    assert "**Intended class: B**" in readme


def test_the_draft_is_retired_and_points_here(rows):
    text = DRAFT.read_text()
    assert "hw/safety_case.md" in text and "hw/hazards.csv" in text
    assert "| 1 |" not in text  # no second copy of the table to drift
    # Its index of hazards (kept so old links still find their hazard) matches the table.
    index = re.findall(r"^- (HZ\d\d): (.+)$", text, re.M)
    assert index == [(r["id"], r["hazard"]) for r in rows if r["first"]]


def test_link_checker_rejects_what_it_should():
    assert find_test("tests/test_supervisor.py::test_absolute_ceiling_trips_at_once") is None
    assert find_test("tests/test_supervisor.py::test_no_such_thing") == "no function test_no_such_thing"
    assert find_test("tests/no_such_file.py::test_x") == "no such file"
    assert find_test("tests/test_supervisor.py::test_arm_only_tightens[0]") is None  # parametrized
    assert "not parametrized" in find_test("tests/test_supervisor.py::test_short_circuit[0]")
    assert find_test("tests/test_safety_case.py::render") == "not a test function"
    assert find_section("hw/README.md § Output stage") is None
    assert find_section("hw/README.md § No such heading").startswith("no heading")
    src = "import pytest\n@pytest.mark.skip\ndef test_a():\n    pass\ndef test_b():\n    pytest.skip('x')\n"
    tree = ast.parse(src)
    a, b = tree.body[1], tree.body[2]
    assert "skip" in _marks(a.decorator_list) and _skips_inside(b)


if __name__ == "__main__":  # regenerate the table in hw/safety_case.md from the CSV
    text = MD.read_text()
    new = text.replace(md_block(text), render(load_rows()))
    if new != text:
        MD.write_text(new)
        print("hw/safety_case.md: table regenerated", file=sys.stderr)
