"""Shared test plumbing: paths for CPython unit tests and a runner for MicroPython scripts."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
SIM = ROOT / "hw" / "sim"
SHIMS = ROOT / "tests" / "shims"
MPY_TESTS = ROOT / "tests" / "mpy"

# CPython unit tests import firmware modules and the simulation directly. The shims come
# first so `micropython.const` resolves to ours, not Adafruit Blinka's look-alike.
for p in (str(ROOT), str(ROOT / "host_tools"), str(SIM), str(FIRMWARE), str(SHIMS)):
    if p not in sys.path:
        sys.path.insert(0, p)

# Virtual units started by tests register in a private directory (`ionto devices` in a test
# never sees a developer's own `ionto sim`), the archive defaults to a scratch file, and a
# developer's IONTO_PORT never steers a test.
import tempfile  # noqa: E402

_SCRATCH = tempfile.mkdtemp(prefix="ionto-tests-")
os.environ["IONTO_SIM_REGISTRY"] = os.path.join(_SCRATCH, "sims")
os.environ["IONTO_ARCHIVE"] = os.path.join(_SCRATCH, "archive.sqlite")
os.environ["IONTO_CACHE"] = os.path.join(_SCRATCH, "mpy-cache")
os.environ.pop("IONTO_PORT", None)


def micropython_exe():
    """The unix-port `micropython` installed beside this interpreter (the project's .venv)."""
    exe = Path(sys.executable).with_name("micropython")
    if not exe.exists():
        pytest.fail("micropython executable not found next to %s: run `make test`" % sys.executable)
    return str(exe)


def run_mpy(script, *, path=(SIM, FIRMWARE), heapsize=None, timeout=120, args=(), cwd=None):
    """Run a MicroPython script file (or source text) under the unix port.

    `path` becomes MICROPYPATH, so hw/sim/machine.py and time.py replace the built-ins as a
    board's would be. Returns the CompletedProcess; callers assert on returncode and output.
    """
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(p) for p in path] + [str(MPY_TESTS), ".frozen"])
    cmd = [micropython_exe()]
    if heapsize:
        cmd += ["-X", "heapsize=%s" % heapsize]
    if isinstance(script, Path) or (isinstance(script, str) and script.endswith(".py") and "\n" not in script):
        cmd.append(str(script))
    else:
        cmd += ["-c", script]
    cmd += list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@pytest.fixture
def mpy():
    """Fixture form of run_mpy that fails the test with MicroPython's output on a non-zero exit."""

    def _run(script, **kw):
        r = run_mpy(script, **kw)
        if r.returncode != 0:
            pytest.fail("micropython exited %d\n--- stdout\n%s\n--- stderr\n%s" % (r.returncode, r.stdout, r.stderr))
        return r

    return _run


@pytest.fixture(scope="session")
def fw_bundle(tmp_path_factory):
    """firmware/ built as a deployment puts it on a unit (files + manifest), once per run."""
    from ionto import firmware_build

    d = tmp_path_factory.mktemp("fw") / "bundle"
    firmware_build.build(d)
    return d


@pytest.fixture(scope="module")
def vu(fw_bundle):
    """One virtual unit per test module, the firmware on it and its application running, shared
    by the module's tests (each brings it to the state it needs). A module that needs another
    kind (time acceleration, its own configuration) defines its own `vu`."""
    from ionto.scripted import app_ready
    from ionto.simctl import VirtualUnit

    with VirtualUnit(seed_from=fw_bundle, scenario="palms", accel=0) as v:
        app_ready(v.ctl)
        yield v


@pytest.fixture
def new_unit(fw_bundle):
    """A virtual unit of its own, as it leaves the factory with the firmware on it (no clock set,
    no session, no configuration written), its application running: for the tests that need a
    unit nothing else has touched."""
    from ionto.scripted import app_ready
    from ionto.simctl import VirtualUnit

    with VirtualUnit(seed_from=fw_bundle, scenario="palms", accel=0) as v:
        app_ready(v.ctl)
        yield v


@pytest.fixture
def empty_unit():
    """A virtual unit of its own with an empty flash (no firmware), at its REPL."""
    from ionto.simctl import VirtualUnit

    with VirtualUnit(seed_from=None, accel=0) as v:
        yield v


# --- MicroPython check scripts, one pytest case per section ---------------------------------
# A check script (tests/mpy/*_checks.py) registers its sections with checkrun.section and runs
# them all in one interpreter, printing "@CHECK ok|FAIL NAME" for each: the script runs once per
# test session and each section is reported as its own case, so one failure hides no other.
_SECTION_RUNS = {}


def mpy_sections(script):
    """The names of a check script's sections, in order, read from its source (collection time)."""
    import ast

    tree = ast.parse((MPY_TESTS / script).read_text())
    return [n.name for n in tree.body if isinstance(n, ast.FunctionDef)
            and any(ast.unparse(d) == "checkrun.section" for d in n.decorator_list)]


def mpy_section(script, name, **kw):
    """Fail unless section `name` of `script` passed under the unix port (the script runs once)."""
    if script not in _SECTION_RUNS:
        _SECTION_RUNS[script] = run_mpy(MPY_TESTS / script, **kw)
    r = _SECTION_RUNS[script]
    lines = r.stdout.splitlines()
    if "@CHECK ok %s" % name in lines:
        return r
    for i, ln in enumerate(lines):
        if ln.startswith("@CHECK FAIL %s:" % name):
            rest = [x for x in lines[i + 1:] if not x.startswith("@CHECK")][:30]
            pytest.fail("%s: %s\n%s" % (script, ln, "\n".join(rest)), pytrace=False)
    pytest.fail("%s: section %s never ran (exit %d)\n--- stdout\n%s\n--- stderr\n%s"
                % (script, name, r.returncode, r.stdout[-3000:], r.stderr[-3000:]), pytrace=False)
