"""How fast the virtual unit runs a 40-minute session, and an mpremote exec's
round trip over its pseudo-terminal.

- in-process (tests/mpy/fwsim.py): the firmware and the simulated board in one interpreter;
- the virtual unit process (`ionto sim`, accel 0, firmware seeded from a build) driven through
  its control channel as `make demo` does, rate read from its virtual clock;
- mpremote: SerialTransport on the unit's pty, enter_raw_repl once, median of N exec("pass").
A 40-minute session is projected from the TREAT rate: wall to reach TREAT (measured) +
(2400 s of treatment + 30 s ramp-down) / rate; and, outside quick mode, one is run whole as a
clinic would (the preset set to 40 minutes with `ionto config set`, START, confirm, DONE).
"""
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import _mpy as M

ROOT = Path(__file__).resolve().parent.parent
REST_S = 2400 + 30


def _bundle():
    # The firmware build the virtual unit is seeded from, made once per run.
    sys.path.insert(0, str(ROOT / "host_tools"))
    from ionto import firmware_build

    bundle = Path(tempfile.mkdtemp(prefix="bench-fw-"))
    firmware_build.build(bundle)
    return bundle


def _unit_figures(q, out, bundle):
    from ionto.scripted import press, wait_for
    from ionto.simctl import VirtualUnit

    with VirtualUnit(seed_from=bundle, scenario="palms", accel=0) as vu:
        c = vu.ctl
        if not q:
            c.usb(host_present=False)  # in the clinic: no laptop, START allowed
            wait_for(c, "app is not None and app.ticks > 50")
            t0 = time.monotonic()
            press(c, "START", "START")
            wait_for(c, "app.s.state == 4", timeout=240)
            to_treat = time.monotonic() - t0
            v0 = c.state()["now_us"]
            w0 = time.monotonic()
            while c.state()["now_us"] - v0 < 180e6 and time.monotonic() - w0 < 60:
                time.sleep(0.5)
            v1 = c.state()["now_us"]
            w1 = time.monotonic()
            x = (v1 - v0) / 1e6 / (w1 - w0)
            out.append(("sim_unit_treat_x_real_time", round(x, 1), "virtual s / wall s (ionto sim process, TREAT, %.0f virtual s)" % ((v1 - v0) / 1e6)))
            out.append(("sim_unit_session40_projected_wall_s", round(to_treat + REST_S / x, 1), "s (measured %.1f s to TREAT + 40 min at the TREAT rate; goal < 30)" % to_treat))
            # The firmware ignores a host's Ctrl-C during a treatment: end it first.
            press(c, "STOP")
            wait_for(c, "app.s.state == 11", timeout=120)
        from mpremote.transport_serial import SerialTransport

        t = SerialTransport(vu.port, baudrate=115200)
        try:
            t.enter_raw_repl()
            n = 20 if q else 200
            ms = []
            for _ in range(n):
                a = time.perf_counter()
                t.exec("pass")
                ms.append((time.perf_counter() - a) * 1000)
            t.exit_raw_repl()
        finally:
            t.close()
        out.append(("sim_mpremote_exec_rtt_ms_median", round(statistics.median(ms), 2), "ms (exec('pass') over the pty, n=%d)" % n))
        out.append(("sim_mpremote_exec_rtt_ms_p90", round(sorted(ms)[int(len(ms) * 0.9) - 1], 2), "ms"))


def _session40(bundle, out):
    from ionto.scripted import press, wait_for
    from ionto.simctl import VirtualUnit

    with VirtualUnit(seed_from=bundle, scenario="palms", accel=0) as vu:
        c = vu.ctl
        wait_for(c, "app is not None and app.ticks > 50")
        ionto = Path(sys.executable).parent / "ionto"
        r = subprocess.run([str(ionto), "config", "set", "presets.hands_feet.duration_s", "2400", "--yes",
                            "--port", vu.port], capture_output=True, text=True, timeout=120)
        if r.returncode:
            M.say("  session40: ionto config set failed: %s" % (r.stderr.strip() or r.stdout.strip()))
            return
        c.usb(host_present=False)  # in the clinic: no laptop, START allowed
        wait_for(c, "app is not None and app.ticks > 50 and app.s.preset.duration_ms == 2_400_000")
        v0 = c.state()["now_us"]
        t0 = time.monotonic()
        press(c, "START", "START")
        wait_for(c, "app.s.state == 10", timeout=300)  # DONE
        wall = time.monotonic() - t0
        v = (c.state()["now_us"] - v0) / 1e6
    out.append(("sim_unit_session40_wall_s", round(wall, 1),
                "s (a whole 40-minute session run on the ionto sim process, START to DONE: %.0f virtual s; goal < 30)" % v))


def run(quick=None):
    q = M.quick(quick)
    out = []
    M.say("sim: in-process speed on a 40-minute session")
    r = M.run("mpy_speed.py", *(("slice_s=10", "fast=1") if q else ("slice_s=180",)))
    if r:
        x = r["x_real_time"]
        out.append(("sim_inproc_treat_x_real_time", round(x, 1), "virtual s / wall s (fwsim, TREAT, %.0f virtual s; goal >= 100)" % r["slice_virtual_s"]))
        out.append(("sim_inproc_to_treat_x_real_time", round(r["to_treat_virtual_s"] / r["to_treat_wall_s"], 1), "virtual s / wall s (START to TREAT, per-tick observer on)"))
        out.append(("sim_inproc_session40_projected_wall_s", round(r["to_treat_wall_s"] + REST_S / x, 1), "s (measured %.1f s to TREAT + 40 min at the TREAT rate; goal < 30)" % r["to_treat_wall_s"]))
    M.say("sim: virtual unit process%s and mpremote exec round trip" % ("" if not q else " (quick: RTT only)"))
    bundle = _bundle()
    _unit_figures(q, out, bundle)
    if not q:
        M.say("sim: a whole 40-minute session on the virtual unit process")
        _session40(bundle, out)
    return out
