"""No host command strands a unit: every device command, run as a real `ionto` process against a
virtual unit, is cut short at random moments by Ctrl-C (SIGINT), SIGTERM, a closed terminal
(SIGHUP) or an unplugged cable (the pty vanishes), and each time:

- the command ends promptly (every wait has a deadline) with ONE line on stderr, no traceback,
  saying what was and was not done and where the unit was left;
- the unit is back in its application: its status line flows on the port, and its buttons work
  (START -> CONFIRM, STOP -> IDLE). After a signal the command gives it back itself; after an
  unplug nobody can, and the unit's lease on the host session (board.host_lease) brings it back.

A moment is a byte count: the virtual unit's supervisor delivers the signal (or pulls the cable)
exactly when that many more bytes have crossed the port, from the host or to it (sim.py
`interrupt`), so the test waits on events, not on a clock. Each command's byte counts come from
one uninterrupted run. `make test` runs one seeded moment per command (the kinds rotate over the
commands; IONTO_INTERRUPT_SEED picks another sample); the long campaign (`make test-interrupts`,
or IONTO_INTERRUPT_TRIALS=N) tries N moments of every kind on every command.
"""
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from ionto import link
from ionto.scripted import app_ready, paced, press, wait_for
from ionto.simctl import VirtualUnit, _repo_env

SEED = int(os.environ.get("IONTO_INTERRUPT_SEED", "20261203"))
KINDS = ("SIGINT", "SIGTERM", "SIGHUP", "unplug")
EXIT = {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129}

# name -> argv after `ionto` (PORT, TMP and VALUE are filled in per run)
COMMANDS = {
    "devices": ["devices", "--listen", "2"],
    "status": ["status", "--port", "PORT"],
    "clock sync": ["clock", "sync", "--port", "PORT"],
    "config show": ["config", "show", "--port", "PORT"],
    "config get": ["config", "get", "default_preset", "--port", "PORT"],
    "config pull": ["config", "pull", "-o", "TMP/pulled.json", "--port", "PORT"],
    "config set": ["config", "set", "presets[0].step_ua", "VALUE", "--yes", "--port", "PORT"],
    "config push": ["config", "push", "TMP/push.json", "--yes", "--port", "PORT"],
    "logs pull": ["logs", "pull", "--archive", "TMP/archive.sqlite", "--port", "PORT"],
    "flash": ["flash", "--port", "PORT"],
    "bench": ["bench", "--ticks", "50", "--i2c", "20", "--port", "PORT"],
    "monitor": ["monitor", "--duration", "3", "--no-plot", "--port", "PORT"],
}
_calibrated = {}


@pytest.fixture(scope="module")
def vu(fw_bundle, tmp_path_factory):
    with VirtualUnit(seed_from=fw_bundle, accel=0) as v:
        app_ready(v.ctl)
        # VBUS sense low, as behind a USB isolator: START is allowed with a host attached.
        v.ctl.usb(host_present=False)
        v.tmp = tmp_path_factory.mktemp("interrupt")
        v.value = 500
        # Deployed once as `ionto flash` does it (.mpy), so later flashes copy little.
        r = run(v, ["flash", "--port", v.port])
        assert r.returncode == 0, r.stderr
        app_ready(v.ctl)
        # One short session on the unit, so `logs pull` has a summary and a trace to fetch.
        press(v.ctl, "START", "START")
        wait_for(v.ctl, "app.s.state in (3, 4)", timeout=60)
        press(v.ctl, "STOP")
        wait_for(v.ctl, "app.s.state == 11", timeout=60)
        press(v.ctl, "STOP")
        yield v


def argv(vu, name):
    vu.value = 1000 if vu.value == 500 else 500  # every set/push changes something
    cfg_file = vu.tmp / "push.json"
    if name == "config push":
        cfg = json.loads(run(vu, ["config", "pull", "--port", vu.port]).stdout)
        cfg["presets"][0]["step_ua"] = vu.value
        cfg_file.write_text(json.dumps(cfg))
    if name == "logs pull":
        (vu.tmp / "archive.sqlite").unlink(missing_ok=True)  # a fresh archive: every file is fetched
    if name == "flash":
        # The manifest with one more newline: the same firmware (the unit's own check passes),
        # but not the bytes the host built, so flash writes the manifest, verifies and reboots.
        vu.ctl.exec("f = open('/manifest.json', 'a')\nf.write('\\n')\nf.close()")
    out = []
    for a in COMMANDS[name]:
        out.append(a.replace("PORT", vu.port).replace("TMP", str(vu.tmp)).replace("VALUE", str(vu.value)))
    return out


def run(vu, args, timeout=120):
    return subprocess.run([sys.executable, "-m", "ionto.cli"] + args, capture_output=True, text=True,
                          timeout=timeout, env=_repo_env())


def calibrate(vu, name):
    """Bytes from and to the host in one uninterrupted run of the command."""
    if name not in _calibrated:
        unit_back(vu)
        args = argv(vu, name)
        c0 = vu.ctl.status()["bytes"]
        r = run(vu, args)
        c1 = vu.ctl.status()["bytes"]
        assert r.returncode == 0, (name, r.stderr)
        _calibrated[name] = {k: c1[k] - c0[k] for k in c1}
        unit_back(vu)
    return _calibrated[name]


def app_running(ctl, timeout=30):
    """main.py's loop runs: its tick count moves (a unit at its REPL keeps the old `app` with
    its count frozen; a restarted one counts afresh)."""
    wait_for(ctl, "globals().get('app') is not None", timeout=timeout)
    t0 = ctl.eval("app.ticks")
    wait_for(ctl, "globals().get('app') is not None and app.ticks != %d" % t0, timeout=timeout)


def unit_back(vu, timeout=30):
    """The unit runs its application: the status line flows on its port and the buttons work."""
    app_running(vu.ctl, timeout=timeout)
    with link.Link.open(vu.port) as u:
        st = u.listen(5, min_st=1)
    assert st is not None, "no status line: the unit is not in its application"
    if vu.ctl.eval("app.s.state") in (10, 11):  # DONE or STOPPED: STOP returns to IDLE
        press(vu.ctl, "STOP")
    wait_for(vu.ctl, "app.s.state == 0", timeout=timeout)
    with paced(vu.ctl):  # CONFIRM's 30 s must not run out before the host sees it
        press(vu.ctl, "START")
        wait_for(vu.ctl, "app.s.state == 1", timeout=timeout)  # CONFIRM: START was taken
        press(vu.ctl, "STOP")
    wait_for(vu.ctl, "app.s.state == 0", timeout=timeout)


def port_open(p, port, timeout=60):
    """Wait until process p holds `port` open (or has ended)."""
    want = os.path.realpath(port)
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        try:
            for fd in os.listdir("/proc/%d/fd" % p.pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (p.pid, fd)) == want:
                        return
                except OSError:
                    pass
        except OSError:
            return
        time.sleep(0.002)


def trial(vu, name, kind, rng):
    counts = calibrate(vu, name)
    # A moment: a byte from the host (none for the read-only monitor and devices listing), or
    # one of what the unit sends.
    direction = "from_host" if counts["from_host"] and rng.random() < 0.7 else "to_host"
    after = rng.randint(1, max(1, counts[direction]))
    args = argv(vu, name)
    p = subprocess.Popen([sys.executable, "-m", "ionto.cli"] + args, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_repo_env())
    try:
        # The moment counts from when the command has the port open (before that it has sent
        # nothing, and the interpreter starting up is not ionto's to handle).
        port_open(p, vu.port)
        if kind == "unplug":
            vu.ctl.interrupt(after, direction=direction, unplug=True)
        else:
            vu.ctl.interrupt(after, pid=p.pid, signum=int(getattr(signal, kind)), direction=direction)
        try:
            out, err = p.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            pytest.fail("%s hung after %s at %s byte %d: %s" % (name, kind, direction, after, err[-500:]))
    finally:
        vu.ctl.disarm()  # if the command ended before the moment
    where = "%s, %s at %s byte %d of %d" % (name, kind, direction, after, counts[direction])
    lines = err.strip().splitlines()
    assert "Traceback" not in err, where + "\n" + err
    if p.returncode != 0:
        assert len(lines) == 1, where + "\n" + err
    unplugged = not vu.ctl.status()["plugged"]
    if kind == "unplug":
        assert p.returncode in (0, 3, 6, 9) or (name == "devices"), where + "\n" + err
        if unplugged:
            # Nobody is left to give the unit back: its lease runs out (virtual time, sped up).
            vu.ctl.accel(500)
            try:
                app_running(vu.ctl, timeout=60)
            finally:
                vu.ctl.accel(0)
            vu.port = vu.ctl.replug()
    else:
        assert p.returncode in (0, EXIT[kind]) or (p.returncode != 0 and "error" in err), where + "\n" + err
        if p.returncode == EXIT[kind]:
            line = lines[0]
            assert "interrupted by" in line and ("done" in line or "nothing was changed" in line), where + "\n" + line
            assert "the unit on" in line or name == "devices", where + "\n" + line
        # The command gave the unit back itself: no lease, no accel, no help.
    unit_back(vu)
    print("%s -> %s: %s" % (where, p.returncode, err.strip()))
    return p.returncode, err


def _fast_plan():
    rng = random.Random(SEED)
    names = list(COMMANDS)
    return [(n, KINDS[(i + SEED) % len(KINDS)], rng.randrange(1 << 30)) for i, n in enumerate(names)]


@pytest.mark.parametrize("name, kind, seed", _fast_plan(), ids=lambda v: str(v).replace(" ", "-"))
def test_interrupting_a_command_gives_the_unit_back(vu, name, kind, seed):
    trial(vu, name, kind, random.Random(seed))


TRIALS = int(os.environ.get("IONTO_INTERRUPT_TRIALS", "0"))


@pytest.mark.slow
@pytest.mark.skipif(not TRIALS, reason="the long campaign: IONTO_INTERRUPT_TRIALS=N (moments per command and "
                    "kind; about 3 s each), e.g. `make test-interrupts`")
@pytest.mark.parametrize("name", list(COMMANDS), ids=lambda v: v.replace(" ", "-"))
@pytest.mark.parametrize("kind", KINDS)
def test_interrupting_every_command_at_many_moments(vu, name, kind):
    rng = random.Random("%d %s %s" % (SEED, name, kind))
    for _ in range(TRIALS):
        trial(vu, name, kind, rng)
