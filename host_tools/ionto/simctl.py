"""Client for the virtual unit's control channel, and a context manager that runs one.

    from ionto.simctl import SimClient, VirtualUnit

    c = SimClient(".sim")              # a running `ionto sim --state-dir .sim`
    c.press("START"); c.state()["current_ua"]

    with VirtualUnit() as vu:          # a private unit server in a temporary state dir
        vu.port                        # for mpremote / SerialTransport
        vu.ctl.eval("1 + 1")           # TEST-ONLY backdoor into the unit's __main__

The protocol (JSON lines over STATE/control.sock) is described in ionto/unit_server/__init__.py.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class SimError(Exception):
    """The unit answered {"ok": false, "error": ...}, or could not be reached."""


class SimClient:
    def __init__(self, state_dir=".sim", timeout=10.0):
        self.path = str(Path(state_dir) / "control.sock")
        self.timeout = timeout
        self._sock = None
        self._buf = b""
        self._id = 0

    # --- transport -----------------------------------------------------------------------
    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            raise SimError("no virtual unit at %s (%s): is `ionto sim` running?" % (self.path, e.strerror or e))
        self._sock = s
        self._buf = b""

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def request(self, cmd, check=True, **fields):
        """Send one request, wait for its reply dict. check: raise SimError unless ok."""
        msg = dict(fields, cmd=cmd)
        if self._sock is None:
            self._connect()
        self._id += 1
        msg["id"] = self._id
        try:
            self._sock.sendall(json.dumps(msg).encode() + b"\n")
            while True:
                while b"\n" not in self._buf:
                    b = self._sock.recv(65536)
                    if not b:
                        raise SimError("the virtual unit closed the control channel")
                    self._buf += b
                line, self._buf = self._buf.split(b"\n", 1)
                reply = json.loads(line)
                if reply.get("id") == self._id:
                    break
        except (OSError, socket.timeout) as e:
            self.close()
            raise SimError("control channel: %s" % e)
        reply.pop("id", None)
        if check and not reply.get("ok"):
            raise SimError("%s: %s" % (cmd, reply.get("error", reply)))
        return reply

    # --- commands ------------------------------------------------------------------------
    def ping(self):
        return self.request("ping")

    def status(self):
        return self.request("status")

    def state(self):
        return self.request("state")

    def frame(self):
        return self.request("frame")

    def press(self, button, hold_ms=120, after_ms=0):
        """Press `button` now, or after_ms of the unit's time from now."""
        return self.request("press", button=button, hold_ms=hold_ms, after_ms=after_ms)

    def hold(self, button):
        return self.request("hold", button=button)

    def release(self, button):
        return self.request("release", button=button)

    def scenario(self, name=None, data=None):
        f = {}
        if name is not None:
            f["name"] = name
        if data is not None:
            f["data"] = data
        return self.request("scenario", **f)

    def fault(self, kind, **kw):
        """Board faults (i2c_nack, i2c_stuck, sensor_stuck value=uA, sensor_frozen value=uA
        (the INA219's register frozen; default: what it reads now), sensor_gain value=x,
        sensor_noise value=+-uA, sensor_drift value=uA/s, output_stuck_on,
        output_dead, limiter_trip) and unit faults (power_cut at=N, wdt_starve)."""
        return self.request("fault", kind=kind, **kw)

    def power_cut(self, at=1, seed=None, after_ms=None):
        """Cut the supply during the at-th write of the flash or the FRAM from now, or
        (after_ms) at a moment of virtual time from now, whatever is being done then."""
        kw = {"after_ms": after_ms} if after_ms is not None else {"at": at}
        if seed is not None:
            kw["seed"] = seed
        return self.fault("power_cut", **kw)

    def wdt_starve(self):
        return self.fault("wdt_starve")

    def clear_faults(self):
        return self.request("clear_faults")

    def patient(self, do, **kw):
        """The patient's side (hw/sim/patient.py): tray side=left|right in=bool, one_tray on,
        splash, slow_lift side s, sweat, soft_water on, cut on, reset."""
        return self.request("patient", do=do, **kw)

    def trace(self, since=0, fsince=0, bsince=0):
        """What the front panel reads (hw/sim/tracer.py): samples, frames and buzzer notes
        from those sequence numbers on."""
        return self.request("trace", since=since, fsince=fsince, bsince=bsince)

    def usb(self, host_present=None, isolated=None):
        return self.request("usb", host_present=host_present, isolated=isolated)

    def accel(self, x):
        return self.request("accel", x=x)

    def flash(self, worst_case=None):
        return self.request("flash") if worst_case is None else self.request("flash", worst_case=worst_case)

    def eval(self, expr, scope=None):
        """TEST-ONLY: evaluate in the unit's __main__ (scope="sim": the simulator's own globals).
        Returns the value if it is JSON, else its repr."""
        kw = {"expr": expr}
        if scope:
            kw["scope"] = scope
        r = self.request("eval", **kw)
        return r["value"] if "value" in r else r["repr"]

    def exec(self, code, scope=None):
        """TEST-ONLY: run statements in the unit's __main__ (or the simulator's, scope="sim")."""
        kw = {"code": code}
        if scope:
            kw["scope"] = scope
        return self.request("eval", **kw)

    def power_cycle(self):
        return self.request("power_cycle")

    def unplug(self):
        """The USB cable pulled: the host's port vanishes; the unit runs on."""
        return self.request("unplug")

    def replug(self):
        """The cable back in -> the new port."""
        return self.request("replug")["port"]

    def interrupt(self, after, pid=None, signum=None, direction="from_host", unplug=False):
        """TEST-ONLY: after `after` more bytes cross the port (from_host or to_host), send
        signum to pid, or unplug the cable."""
        f = {"after": after, "dir": direction, "action": "unplug" if unplug else "signal"}
        if not unplug:
            f.update(pid=pid, signal=signum)
        return self.request("interrupt", **f)

    def disarm(self):
        """Cancel an armed interruption that has not happened."""
        return self.request("interrupt", action="none")

    def stop(self):
        return self.request("stop")


def _repo_env():
    # The unit server runs from this checkout even when ionto is not installed.
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


class VirtualUnit:
    """Run `ionto sim` as a subprocess in a temporary state dir, for tests and demos.

    Starts it in its own process group and stops the whole group on exit; it also stops by
    itself if this process dies (its stdin is a lifeline): nothing leaks.
    """

    def __init__(self, state_dir=None, scenario="palms", accel=0, fresh=True, seed_from=None,
                 flash_worst_case=False, start_timeout=20.0):
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="ionto-sim-")
            state_dir = self._tmp
        self.state_dir = Path(state_dir)
        self.args = ["--state-dir", str(self.state_dir), "--scenario", scenario, "--accel", str(accel), "--quiet",
                     "--stdin-lifeline"]
        if fresh:
            self.args.append("--fresh")
        self.args += ["--seed-from", str(seed_from)] if seed_from else ["--no-seed"]
        if flash_worst_case:
            self.args.append("--flash-worst-case")
        self.start_timeout = start_timeout
        self.proc = None
        self.port = None
        self.ctl = None

    @property
    def image(self):
        return self.state_dir / "flash.img"

    def start(self):
        port_file = self.state_dir / "port"
        if port_file.exists():
            port_file.unlink()
        self.proc = subprocess.Popen([sys.executable, "-m", "ionto.cli", "sim"] + self.args,
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=_repo_env(),
                                     start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace").strip()
                raise SimError("ionto sim exited %s: %s" % (self.proc.returncode, err))
            if port_file.exists() and (self.state_dir / "control.sock").exists():
                try:
                    self.ctl = SimClient(self.state_dir)
                    self.ctl.ping()
                    break
                except SimError as e:
                    self.ctl = None
                    if "the unit is off" in str(e):
                        log = self.log()[-2000:]
                        self.stop()
                        raise SimError("the virtual unit did not start: %s\n%s" % (e, log))
            if time.monotonic() > deadline:
                self.stop()
                raise SimError("ionto sim did not come up in %.0f s" % self.start_timeout)
            time.sleep(0.02)
        self.port = port_file.read_text().strip()
        return self

    def wait_ready(self, timeout=10.0):
        """After a reset: wait until the unit answers again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.ctl.ping()
            except SimError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def log(self):
        p = self.state_dir / "unit.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self):
        unit_pid = None
        if self.ctl is not None:
            try:
                unit_pid = self.ctl.status().get("unit_pid")
            except SimError:
                pass
            self.ctl.close()
            self.ctl = None
        p = self.proc
        if p is not None and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)  # the server stops its unit on the way out
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            except ProcessLookupError:
                pass
        if p is not None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            p.wait()
            for f in (p.stdin, p.stderr):
                if f:
                    f.close()
        self.proc = None
        # The unit has its own process group; the server stops it, and it ends itself
        # when its stdin closes. Make sure, in case it hung where it could not notice.
        if unit_pid:
            try:
                cmdline = Path("/proc/%d/cmdline" % unit_pid).read_bytes()
                if b"unit.py" in cmdline:
                    os.kill(unit_pid, signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
