"""`ionto config set/push` against a virtual unit: the [y/N] question never holds the unit at its
REPL (its application and buttons run while the technician decides), a configuration changed
meanwhile is not overwritten, and a unit that loses power mid-write ends the command within its
deadline with one line saying whether the old or the new configuration is on the unit."""
import json
import subprocess
import sys

import pytest

from ionto import cli, config_cmd, link
from ionto.errors import EXIT_CONFIG, EXIT_UNIT
from ionto.scripted import app_ready, paced, press, wait_for
from ionto.simctl import VirtualUnit, _repo_env


@pytest.fixture(scope="module")
def vu(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, accel=0) as v:
        app_ready(v.ctl)
        v.ctl.usb(host_present=False)  # as behind a USB isolator: START allowed with a host attached
        yield v


def ionto_proc(*args, timeout=90):
    return subprocess.run([sys.executable, "-m", "ionto.cli"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=_repo_env())


def unit_cfg(vu):
    r = ionto_proc("config", "pull", "--port", vu.port)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def app_running(ctl, timeout=30):
    wait_for(ctl, "globals().get('app') is not None", timeout=timeout)
    t0 = ctl.eval("app.ticks")
    wait_for(ctl, "globals().get('app') is not None and app.ticks != %d" % t0, timeout=timeout)


def test_the_question_is_asked_with_the_unit_in_its_application(vu, capsys, monkeypatch):
    step = config_cmd.get_value(unit_cfg(vu), "presets[0].step_ua")
    new = 1000 if step != 1000 else 500
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    seen = {}

    def answer(question):
        # While the technician reads the diff: the application runs, its status line flows and
        # the nurse's buttons work.
        app_running(vu.ctl)
        with link.Link.open(vu.port) as u:
            seen["status"] = u.listen(5, min_st=1)
        with paced(vu.ctl):  # CONFIRM's 30 s must not run out before the host sees it
            press(vu.ctl, "START")
            seen["after_start"] = wait_for(vu.ctl, "app.s.state == 1 and 1")
            press(vu.ctl, "STOP")
        wait_for(vu.ctl, "app.s.state == 0")
        seen["question"] = question
        return "y"

    monkeypatch.setattr("builtins.input", answer)
    app_ready(vu.ctl)
    rc = cli.main(["config", "set", "presets[0].step_ua", str(new), "--port", vu.port])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert seen["status"] is not None and seen["status"].state == "IDLE" and seen["after_start"]
    assert "apply to the unit" in seen["question"] and "saved on the unit" in out
    assert config_cmd.get_value(unit_cfg(vu), "presets[0].step_ua") == new


def test_a_configuration_changed_while_asking_is_not_overwritten(vu, capsys, monkeypatch):
    step = config_cmd.get_value(unit_cfg(vu), "presets[0].step_ua")
    mine, theirs = (700, 800) if step not in (700, 800) else (600, 900)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)

    def answer(question):
        # Someone else changes the unit while the question waits (the unit is free meanwhile).
        r = ionto_proc("config", "set", "presets[0].step_ua", theirs, "--yes", "--port", vu.port)
        assert r.returncode == 0, r.stderr
        return "y"

    monkeypatch.setattr("builtins.input", answer)
    app_ready(vu.ctl)
    rc = cli.main(["config", "set", "presets[0].step_ua", str(mine), "--port", vu.port])
    out, err = capsys.readouterr()
    assert rc == EXIT_CONFIG and len(err.strip().splitlines()) == 1
    assert "changed while you were deciding" in err
    assert config_cmd.get_value(unit_cfg(vu), "presets[0].step_ua") == theirs


@pytest.mark.parametrize("cut_at", [1, 2, 3, 4, 6])
def test_power_lost_mid_push_says_which_configuration_is_on_the_unit(vu, tmp_path, cut_at):
    old = unit_cfg(vu)
    new = json.loads(json.dumps(old))
    new["presets"][0]["step_ua"] = 500 if old["presets"][0]["step_ua"] != 500 else 1000
    f = tmp_path / "new.json"
    f.write_text(json.dumps(new))
    app_ready(vu.ctl)
    boots = vu.ctl.status()["boots"]
    # The supply fails at the cut_at-th flash block write or erase from now: inside config_put.
    vu.ctl.power_cut(at=cut_at)
    r = ionto_proc("config", "push", f, "--yes", "--port", vu.port)
    vu.ctl.exec("pass")  # (a request after the restart: the cut is spent or cleared by it)
    now = unit_cfg(vu)
    lines = r.stderr.strip().splitlines()
    if vu.ctl.status()["boots"] == boots:
        # The save needed fewer writes than cut_at: it finished before the cut could happen.
        assert r.returncode == 0, r.stderr
        assert now == new
        vu.ctl.clear_faults()
        return
    assert r.returncode in (0, EXIT_UNIT), r.stderr
    print("cut at %d -> %d: %s" % (cut_at, r.returncode, r.stderr.strip()))
    if r.returncode == EXIT_UNIT:
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "restarted during the command" in lines[0]
        if now == new:
            assert "the NEW configuration is on the unit" in lines[0]
        else:
            assert now == old and "the OLD configuration is still on the unit" in lines[0]
    else:
        assert now == new  # the unit answered before it lost power: saved


def test_ctrl_c_at_the_question_leaves_the_configuration_unchanged(vu, capsys, monkeypatch):
    cur = unit_cfg(vu)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)

    def answer(question):
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", answer)
    app_ready(vu.ctl)
    new = 1000 if config_cmd.get_value(cur, "presets[0].step_ua") != 1000 else 500
    rc = cli.main(["config", "set", "presets[0].step_ua", str(new), "--port", vu.port])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 130 and len(lines) == 1, err
    assert "interrupted by Ctrl-C while asking whether to apply" in lines[0]
    assert "the configuration on the unit is unchanged" in lines[0]
    app_running(vu.ctl)
    assert unit_cfg(vu) == cur
