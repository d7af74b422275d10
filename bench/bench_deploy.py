"""Figures for `ionto flash`, in one run.

The unit starts as `ionto sim` seeds it: the firmware as .py sources with their manifest, the
application running. Per repetition:
- full deploy: `ionto flash --port PORT` with the application running: every module goes over
  as .mpy (the sources they replace are removed); includes the read-only listen for a
  treatment, asking the mpy version, compiling, hashing, copying, manifest, verification, the
  event-log note, the reboot and the version check;
- redeploy with nothing changed: the same command again (hashes only, no reboot);
- mpremote: a plain `mpremote connect PORT fs cp -r DIR :` of the same .mpy bundle (into a
  folder of its own) - it interrupts the application the same way;
then the unit is put back to its sources. Once more on an EMPTY flash (nothing runs, so the
listen waits its full LISTEN_S before it can be sure no treatment runs), on a second new unit.
Both tools run as subprocesses (a fresh interpreter each, as a user runs them); medians of REPS.
Goals: full deploy / mpremote <= 1.0, redeploy / full deploy <= 0.25.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPS = 3
_FLASH = ("import argparse, sys\n"
          "from ionto import flash_cmd\n"
          "from ionto.errors import IontoError\n"
          "p = argparse.ArgumentParser(prog='ionto flash')\n"
          "flash_cmd.add_arguments(p)\n"
          "try:\n"
          "    sys.exit(flash_cmd.run(p.parse_args(sys.argv[1:])))\n"
          "except IontoError as e:\n"
          "    sys.exit('ionto flash: error: ' + e.message)\n")


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "host_tools") + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _timed(cmd, env):
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd[:4]), r.returncode, (r.stderr or r.stdout)[-300:]))
    return dt, r.stdout


def _restore(port, seed):
    """Back to the .py sources of `seed`, no mpremote folder."""
    from ionto import link

    with link.Link.open(port) as u:
        u.enter()
        for name, _size, is_dir in u.listdir("/"):
            if is_dir and name == "fw":
                u.exec("import os\nfor _n in os.listdir('/fw'):\n os.remove('/fw/' + _n)\nos.rmdir('/fw')")
            elif not is_dir and (name.endswith(".py") or name.endswith(".mpy") or name == "manifest.json"):
                u.remove("/" + name)
        for p in sorted(seed.iterdir()):
            u.write_file("/" + p.name, p.read_bytes())
        u.reboot(wait=10)


def run():
    sys.path.insert(0, str(ROOT / "host_tools"))
    from ionto import firmware_build, link, mpy_build
    from ionto.simctl import VirtualUnit

    env = _env()
    mpremote = str(Path(sys.executable).with_name("mpremote"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    seed = tmp / "seed"
    firmware_build.build(seed)
    with VirtualUnit(seed_from=seed, accel=0) as vu:
        with link.Link.open(vu.port) as u:
            u.listen(5.0, want=("ST", "ID"))  # the application is up
            u.enter()
            mpy = u.eval("__import__('sys').implementation._mpy")
        bundle_dir = tmp / "fw"
        bundle = mpy_build.build(mpy, dest=bundle_dir)
        flash = [sys.executable, "-c", _FLASH, "--port", vu.port]
        cp, full, redo, copy_only = [], [], [], []
        for _ in range(REPS):
            # The copy and verification alone (no reboot, no version check after it): what a
            # plain `fs cp` does, plus the hash check, read-back and manifest.
            dt, text = _timed(flash + ["--no-reboot"], env)
            assert "copied" in text, text
            copy_only.append(dt)
            _restore(vu.port, seed)
            dt, text = _timed(flash, env)
            assert "unit reports %s after reboot" % bundle.version in text, text
            full.append(dt)
            dt, text = _timed(flash, env)
            assert "already up to date" in text, text
            redo.append(dt)
            cp.append(_timed([mpremote, "connect", vu.port, "fs", "cp", "-r", str(bundle_dir), ":"], env)[0])
            _restore(vu.port, seed)
    with VirtualUnit(seed_from=None, accel=0) as vu:  # a new unit (ionto sim reseeds a flash without main.py)
        empty, text = _timed([sys.executable, "-c", _FLASH, "--port", vu.port], env)
        assert "copied        %d" % len(bundle.files) in text, text
    m_cp, m_full, m_redo, m_copy = (statistics.median(x) for x in (cp, full, redo, copy_only))
    nbytes = sum(len(b) for b in bundle.files.values()) + len(bundle.manifest_text)
    return [
        ("deploy_bundle_files", len(bundle.files), "files"),
        ("deploy_bundle_bytes", nbytes, "B"),
        ("deploy_mpremote_cp_s", round(m_cp, 3), "s"),
        ("deploy_full_s", round(m_full, 3), "s"),
        ("redeploy_unchanged_s", round(m_redo, 3), "s"),
        ("deploy_full_vs_mpremote_ratio", round(m_full / m_cp, 3), "x (goal <= 1.0; includes the reboot and "
         "version check a copy does not do)"),
        ("deploy_no_reboot_s", round(m_copy, 3), "s (compile, hash check, copy, read-back, manifest; no reboot)"),
        ("deploy_no_reboot_vs_mpremote_ratio", round(m_copy / m_cp, 3), "x"),
        ("redeploy_vs_full_ratio", round(m_redo / m_full, 3), "x (goal <= 0.25)"),
        ("deploy_empty_unit_s", round(empty, 3), "s"),
        ("deploy_empty_vs_mpremote_ratio", round(empty / m_cp, 3), "x"),
    ]


if __name__ == "__main__":
    for name, value, unit in run():
        print("%s: %s %s" % (name, value, unit))
