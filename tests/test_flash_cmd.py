"""`ionto flash` end to end on a virtual unit that starts EMPTY (no firmware on its flash), over
its pseudo-terminal with the real mpremote underneath (ionto/link.py), plus mpy_build on its own.

One module-scoped unit carries the story: first deployment, a redeploy that copies nothing,
a version change that copies one file, stale files, a tampered file the unit catches at boot,
and a refusal while a treatment runs (last: it leaves the unit STOPPED).
"""
import json
import shutil
from pathlib import Path

import pytest

from ionto import flash_cmd, link, mpy_build, uf2
from ionto.errors import (EXIT_FIRMWARE, EXIT_NO_DEVICE, EXIT_TREATING, EXIT_USAGE, IontoError)
from ionto.scripted import paced, press, wait_for
from ionto.simctl import VirtualUnit

from conftest import FIRMWARE, run_mpy

from helpers import bytes_received

N_FILES = len([p for p in FIRMWARE.glob("*.py") if p.name not in mpy_build.FROZEN_ONLY])
UNIX_MPY = 2822  # the virtual unit's sys.implementation._mpy: .mpy 6.3, x64


@pytest.fixture(scope="module")
def vu():
    with VirtualUnit(seed_from=None, accel=0) as v:
        yield v


@pytest.fixture(autouse=True)
def _short_waits(monkeypatch):
    # The virtual unit's pty never goes away on reset; a board would need the longer wait.
    monkeypatch.setattr(flash_cmd, "REBOOT_WAIT_S", 6.0)
    monkeypatch.setattr(flash_cmd, "SERIAL_WAIT_S", 15.0)


def flash(*argv):
    """`ionto flash ARGV` in-process, through cli.main -> exit code."""
    from ionto import cli

    return cli.main(["flash"] + list(argv))


def deployed(vu):
    """The tests after the first need the application on the unit: a no-op once it is there,
    and lets any one of them run alone (-k)."""
    flash_cmd.deploy(vu.port)
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)


def info(port):
    with link.Link.open(port) as u:
        u.enter()
        return u.hostcmd("info")


def _tree(tmp_path, version=None, name="fw"):
    """A copy of firmware/, optionally with another VERSION."""
    d = tmp_path / name
    shutil.copytree(FIRMWARE, d, ignore=shutil.ignore_patterns("__pycache__"))
    if version:
        (d / "version.py").write_text('VERSION = "%s"\n' % version)
    return d


# --- mpy_build ------------------------------------------------------------------------------
def test_mpy_version_decoding():
    assert mpy_build.decode(UNIX_MPY) == (6, 3, "x64")
    assert mpy_build.decode(0x1306) == (6, 3, "armv6m")  # rp2 RP2040, MicroPython 1.23+
    assert mpy_build.decode(6) == (6, 0, "none")


def test_bundle_is_mpy_except_main_and_boot_and_loads_under_micropython(tmp_path):
    b = mpy_build.build(UNIX_MPY, dest=tmp_path / "out")
    assert b.mpy_version == (6, 3)
    assert "main.py" in b.files and "boot.py" in b.files and "app.mpy" in b.files
    assert not [n for n in b.files if n.endswith(".py") and n not in ("main.py", "boot.py")]
    assert not [n for n in b.files if n.startswith("_boot")]  # frozen into the runtime, not deployed
    assert len(b.files) == N_FILES
    assert b.files["app.mpy"][:4] == b"M\x06\x00\x1f"  # .mpy 6, bytecode only (no arch/sub-version), 31-bit ints
    man = json.loads(b.manifest_text)
    assert sorted(man["files"]) == b.names() and man["files"]["app.mpy"] == b.sha256("app.mpy")
    # Deterministic: the same sources give the same bytes (redeploys copy nothing).
    assert mpy_build.build(UNIX_MPY).files == b.files
    # MicroPython imports the compiled modules and its own integrity check accepts the bundle.
    r = run_mpy("import integrity, version\nprint(version.VERSION, integrity.check(%r))" % str(tmp_path / "out"),
                path=(tmp_path / "out",))
    assert r.returncode == 0, r.stderr
    assert "0.1.0 (True, 'firmware 0.1.0 intact (%d files)')" % len(b.files) in r.stdout
    assert not (tmp_path / "out" / "integrity.py").exists()  # it really ran the .mpy


def test_older_unit_gets_its_own_mpy_version_and_unknown_ones_are_refused(monkeypatch):
    b = mpy_build.build(6 | (1 << 8))  # MicroPython 1.20: .mpy 6.1
    assert b.mpy_version == (6, 1) and b.files["ramp.mpy"][:2] == b"M\x06"
    assert mpy_build.build(5).files["ramp.mpy"][:2] == b"M\x05"  # MicroPython 1.12 .. 1.18
    with pytest.raises(IontoError) as e:
        mpy_build.build(7)
    assert e.value.code == EXIT_FIRMWARE and ".mpy version 7" in e.value.message
    # Only a 6.3 compiler at hand: bytecode for a 6.1 unit still comes from it (same version).
    only63 = [Path(c[0]) for c in mpy_build.compilers() if c[1] == (6, 3)]
    monkeypatch.setattr(mpy_build, "_candidates", lambda: only63)
    assert mpy_build.compiler_for(6 | (1 << 8))[1] == (6, 3)


def test_compiled_modules_are_cached_by_source_and_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("IONTO_CACHE", str(tmp_path / "cache"))
    src = _tree(tmp_path)
    first = mpy_build.build(UNIX_MPY, src=src)
    cached = sorted((tmp_path / "cache").glob("*.mpy"))
    assert len(cached) == sum(1 for n in first.files if n.endswith(".mpy"))
    again = mpy_build.build(UNIX_MPY, src=src)
    assert again.files == first.files and again.manifest_text == first.manifest_text
    (src / "ramp.py").write_text((src / "ramp.py").read_text() + "\n\ndef _changed():\n    return 1\n")
    changed = mpy_build.build(UNIX_MPY, src=src)
    assert len(list((tmp_path / "cache").glob("*.mpy"))) == len(cached) + 1  # only ramp compiled anew
    assert changed.files["ramp.mpy"] != first.files["ramp.mpy"]
    assert all(changed.files[n] == first.files[n] for n in first.files if n not in ("ramp.mpy",))


def test_a_bundle_built_before_comes_from_the_cache_checked_against_its_manifest(tmp_path, monkeypatch):
    monkeypatch.setenv("IONTO_CACHE", str(tmp_path / "cache"))
    src = _tree(tmp_path)
    first = mpy_build.build(UNIX_MPY, src=src)
    again = mpy_build.build(UNIX_MPY, src=src)
    assert again.files == first.files and again.manifest_text == first.manifest_text
    assert again.manifest == first.manifest and again.version == first.version
    (kept,) = (tmp_path / "cache" / "bundles").glob("*.json")
    kept.write_text(kept.read_text().replace(first.sha256("app.mpy"), "0" * 64))  # damaged
    assert mpy_build.build(UNIX_MPY, src=src).manifest_text == first.manifest_text  # built afresh
    (src / "version.py").write_text('VERSION = "0.1.1-test"\n')
    changed = mpy_build.build(UNIX_MPY, src=src)
    assert changed.version == "0.1.1-test" and changed.files["version.mpy"] != first.files["version.mpy"]
    assert len(list((tmp_path / "cache" / "bundles").glob("*.json"))) == 2


def test_a_module_that_does_not_compile_is_a_firmware_error(tmp_path):
    src = _tree(tmp_path)
    (src / "ramp.py").write_text("def broken(:\n")
    with pytest.raises(IontoError) as e:
        mpy_build.build(UNIX_MPY, src=src)
    assert e.value.code == EXIT_FIRMWARE and "ramp.py" in e.value.message


def test_stale_names_never_include_data():
    b = mpy_build.build(UNIX_MPY)
    on_unit = {n: None for n in ("app.py", "app.mpy", "main.mpy", "gone.mpy", "config.json", "config.bak", "log",
                                 "notes.txt", "manifest.json", "ramp.mpy.part", "x.py")}
    old = ["gone.mpy", "config.json", "notes.txt", "log", "manifest.json"]
    assert flash_cmd.stale_names(on_unit, b, old) == ["app.py", "gone.mpy", "main.mpy", "ramp.mpy.part"]


# --- onto the virtual unit --------------------------------------------------------------------
def test_flash_onto_an_empty_unit_then_it_boots_the_app(empty_unit, capsys):
    vu = empty_unit
    with link.Link.open(vu.port) as u:
        assert u.listen(1.0) is None  # nothing runs: an empty flash
        u.enter()
        assert u.listdir("/") == []
    rc = flash("--port", vu.port)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "copied        %d" % N_FILES in out and "removed        0" in out
    assert "firmware 0.1.0 (.mpy 6.3)" in out and "verified" in out and "unit reports 0.1.0 after reboot" in out
    # The app runs from the .mpy files, passes its self-test with the integrity check.
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)
    assert vu.ctl.eval("app.s.selftest_ok") is True
    assert vu.ctl.eval("sys.modules['app'].__file__") in ("app.mpy", "/app.mpy")
    with link.Link.open(vu.port) as u:
        st = u.listen(3.0, want=("ST",))
        assert st is not None and st.state == "IDLE"
        u.enter()
        names = sorted(e[0] for e in u.listdir("/") if not e[2])
        man = json.loads(u.read_file("/manifest.json"))
    assert "app.mpy" in names and "app.py" not in names and "main.py" in names
    assert sorted(man["files"]) == sorted(n for n in names if n != "manifest.json")
    i = info(vu.port)
    assert i["version"] == "0.1.0" and i["integrity"][0] is True and i["mpy"] == UNIX_MPY


def test_reflash_with_nothing_changed_copies_nothing(vu, capsys):
    deployed(vu)
    r = flash_cmd.deploy(vu.port)
    assert r.copied == [] and r.removed == [] and not r.rebooted
    assert len(r.unchanged) == N_FILES
    assert r.integrity[0] is True
    rc = flash("--port", vu.port)
    out = capsys.readouterr().out
    assert rc == 0 and "already up to date, integrity ok" in out and "copied         0" in out
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)  # the app runs again


def test_one_changed_file_copies_it_and_the_manifest_and_the_unit_reports_the_version(vu, tmp_path):
    deployed(vu)
    src = _tree(tmp_path, version="0.1.1-test")
    dry = flash_cmd.deploy(vu.port, dry_run=True, src=src)
    assert dry.copied == ["version.mpy"] and dry.dry_run
    r = flash_cmd.deploy(vu.port, src=src)
    assert r.copied == ["version.mpy"] and r.removed == []
    assert r.old_version == "0.1.0" and r.version == "0.1.1-test"
    assert r.rebooted and r.reported == "0.1.1-test" and r.logged is True
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)
    assert vu.ctl.eval("app.s.selftest_ok") is True
    with link.Link.open(vu.port) as u:
        u.enter()
        events = b"".join(u.read_file("/log/" + n) for n, _s, d in u.listdir("/log") if n.startswith("events"))
    assert b"ionto flash 0.1.0 -> 0.1.1-test: 1 copied, 0 removed" in events  # our note
    assert b"0.1.0 -> 0.1.1-test" in events  # and the unit's own at boot


def test_stale_firmware_files_go_and_data_stays(vu, capsys):
    deployed(vu)
    with link.Link.open(vu.port) as u:
        u.enter()
        u.write_file("/app.py", b"raise RuntimeError('a stale source would shadow app.mpy')\n")
        u.write_file("/notes.txt", b"technician's notes\n")
        man = json.loads(u.read_file("/manifest.json"))
        man["files"]["gone.mpy"] = "0" * 64
        u.write_file("/gone.mpy", b"M\x06\x03\x1f")
        u.write_file("/manifest.json", json.dumps(man).encode())
    rc = flash("--port", vu.port)  # back to firmware/ (0.1.0) as well
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "app.py, gone.mpy" in out and "unit reports 0.1.0" in out
    with link.Link.open(vu.port) as u:
        u.enter()
        names = [e[0] for e in u.listdir("/")]
        assert "app.py" not in names and "gone.mpy" not in names
        assert u.read_file("/notes.txt") == b"technician's notes\n"
        assert "log" in names
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)
    assert vu.ctl.eval("app.s.selftest_ok") is True


def test_a_tampered_file_is_found_by_the_unit_at_boot_and_flash_repairs_it(vu, capsys):
    deployed(vu)
    with link.Link.open(vu.port) as u:
        u.enter()
        main = u.read_file("/main.py")
        u.write_file("/main.py", main + b"# tampered\n")
        u.reboot()
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)
    assert vu.ctl.eval("app.s.selftest_ok") is False  # the self-test failed...
    vu.ctl.usb(host_present=False)
    press(vu.ctl, "START")
    assert vu.ctl.eval("app.s.state") == 0  # ...so START is refused: still IDLE
    vu.ctl.usb(host_present=True)
    i = info(vu.port)
    assert i["integrity"] == [False, "firmware file changed: main.py"]
    rc = flash("--port", vu.port)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "copied         1" in out and "main.py" in out
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)
    assert vu.ctl.eval("app.s.selftest_ok") is True


def test_no_device_and_bad_ports(vu, tmp_path, monkeypatch, capsys):
    assert flash("--port", str(tmp_path / "ttyNOPE")) == EXIT_NO_DEVICE
    assert "no device at" in capsys.readouterr().err
    monkeypatch.setenv("IONTO_SIM_REGISTRY", str(tmp_path / "none"))  # no virtual unit running
    monkeypatch.setattr(link, "find_units", lambda include_virtual=True: [])
    assert flash() == EXIT_NO_DEVICE
    assert "no unit found" in capsys.readouterr().err
    assert flash("--port", "/dev/null") == EXIT_NO_DEVICE


def test_runtime_refused_before_any_board_is_touched(tmp_path, capsys):
    boot = tmp_path / "RPI-RP2"
    boot.mkdir()
    (boot / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n")
    good = uf2.make(bytes(4000))
    cases = {
        "wrong.uf2": (uf2.make(bytes(4000), family=uf2.RP2350_ARM_S), "wrong firmware"),
        "trunc.uf2": (good[:-512], "truncated"),
        "gap.uf2": (good[:512] + good[1024:], "gap"),
        "corrupt.uf2": (good[:512] + b"\0" * 4 + good[516:], "magic"),
    }
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        rc = flash("--runtime", str(tmp_path / name), "--bootsel-dir", str(boot), "--port", str(tmp_path / "tty"))
        err = capsys.readouterr().err
        assert rc == EXIT_FIRMWARE and words in err and len(err.strip().splitlines()) == 1, (name, err)
    assert sorted(p.name for p in boot.iterdir()) == ["INFO_UF2.TXT"]  # nothing copied
    assert flash("--runtime", str(tmp_path / "none.uf2"), "--bootsel-dir", str(boot)) == EXIT_USAGE
    (tmp_path / "good.uf2").write_bytes(good)
    assert flash("--runtime", str(tmp_path / "good.uf2"), "--bootsel-dir", str(tmp_path / "nope")) == EXIT_USAGE
    assert flash("--runtime", str(tmp_path / "good.uf2"), "--bootsel-dir", str(tmp_path)) == EXIT_NO_DEVICE
    assert flash("--runtime", str(tmp_path / "good.uf2"), "--bootsel-dir", str(boot), "--dry-run") == 0
    assert "would go onto the RPI-RP2 BOOTSEL drive" in capsys.readouterr().out
    assert sorted(p.name for p in boot.iterdir()) == ["INFO_UF2.TXT"]


def test_runtime_onto_a_new_board_then_the_app(tmp_path, monkeypatch, capsys):
    """A board in BOOTSEL mode takes the UF2, restarts as a serial device (a fresh, empty virtual
    unit appearing in a private registry), and gets the application."""
    monkeypatch.setenv("IONTO_SIM_REGISTRY", str(tmp_path / "sims"))
    boot = tmp_path / "RP2350"
    boot.mkdir()
    (boot / "INFO_UF2.TXT").write_text("UF2 Bootloader v1.0\nModel: Raspberry Pi RP2350\nBoard-ID: RP2350\n")
    data = uf2.make(b"\xff" * 256, family=uf2.RP2350_ABSOLUTE) + uf2.make(bytes(range(256)) * 20,
                                                                          family=uf2.RP2350_ARM_S)
    (tmp_path / "mp.uf2").write_bytes(data)
    board = VirtualUnit(seed_from=None, accel=0)
    real_copy = uf2.copy_to

    def copy_then_restart(*a, **kw):
        # The ROM restarts the chip once the last block is in: then the USB serial port appears.
        r = real_copy(*a, **kw)
        assert (boot / "ionto-runtime.uf2").stat().st_size == len(data)
        board.start()
        return r

    monkeypatch.setattr(uf2, "copy_to", copy_then_restart)
    try:
        rc = flash("--runtime", str(tmp_path / "mp.uf2"), "--bootsel-dir", str(boot))
        out, err = capsys.readouterr()
        assert rc == 0, err
        assert (boot / "ionto-runtime.uf2").read_bytes() == data
        assert "RP2350 absolute, RP2350 ARM-S" in err and "unit reports 0.1.0 after reboot" in out
        wait_for(board.ctl, "app is not None and app.ticks > 20", timeout=30)
        assert board.ctl.eval("app.s.selftest_ok") is True
    finally:
        board.stop()


def test_refuses_while_a_treatment_runs_and_sends_nothing(vu, capsys):
    deployed(vu)
    c = vu.ctl
    c.usb(host_present=False)  # behind the USB isolator: START allowed
    wait_for(c, "app is not None and app.ticks > 50", timeout=30)
    press(c, "START", "START")
    wait_for(c, "app.s.state in (3, 4)", timeout=60)
    with paced(c):  # 10x while the host works: the treatment is still running after
        before = c.eval("app.ticks")
        sent = bytes_received(c)
        rc = flash("--port", vu.port)
        err = capsys.readouterr().err
        assert rc == EXIT_TREATING and "treatment is running" in err and "nothing was sent" in err
        with pytest.raises(IontoError) as e:  # a dry run is refused alike
            flash_cmd.deploy(vu.port, dry_run=True)
        assert e.value.code == EXIT_TREATING
        assert bytes_received(c) == sent  # not one byte reached the unit
        assert c.eval("app.ticks") > before and c.eval("app.s.state") in (3, 4)  # carried on, never interrupted
    press(c, "STOP")
    wait_for(c, "app.s.state == 11", timeout=60)
    c.usb(host_present=True)
