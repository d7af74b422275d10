"""Simulated clinic courses on the virtual unit, for `make demo-course` and the course tests.

A course is data (hw/sim/courses/*.json): its label, site, start (a Tuesday), plan, and per
session the course day, the clinic time it starts, the patient's load (a scenario's "load" and
"events", hw/sim/scenario.py), the nurse's presses and the visit recorded that day. build()
runs every session on one virtual unit as a nurse would (START, confirm, presses; the session
ends on its dose), with the unit's clock set to that day and time in the clinic's zone, then
archives them with `ionto logs pull` and enrols, links, plans and visits with `ionto course`,
exactly the commands a clinic types. Sessions are short (a 3 mA.min dose cap, a 10 s ramp) so a
course runs in well under a minute; the analyses' windows are set to match in each plan.
"""
import datetime as _dt
import json
import tempfile
import time
from pathlib import Path

from . import cli, clinictime
from .shipped import SIM
from .scripted import app_ready, arm, armed_at, paced, press, wait_for
from .simctl import SimError, VirtualUnit

COURSES_DIR = SIM / "courses"
CLINIC_TZ = "Europe/Berlin"
OPERATOR = "RN07"
NO = ",".join("%s=no" % k for k in ("pregnancy", "epilepsy", "pacemaker", "metal_implants", "heart_disease",
                                    "impaired_sensation", "broken_skin", "age"))
# The unit's hands_feet preset for short sessions: dose cap 3 mA.min ends each in ~20-40 s.
PRESET = {"target_ua": 10000, "ceiling_ua": 12000, "step_ua": 1000, "ramp_up_s": 10, "ramp_down_s": 5,
          "reverse": False, "dose_cap_mamin": 3}

_SET_CLOCK = """
import machine, time
_o = time.time()
_g = time.gmtime(%d)
machine.RTC().datetime((_g[0], _g[1], _g[2], _g[6], _g[3], _g[4], _g[5], 0))
log.set_clock(%d, int(_o))
log.flush()
"""


def load(name):
    p = Path(name) if str(name).endswith(".json") else COURSES_DIR / ("%s.json" % name)
    return json.loads(p.read_text())


def _ionto(argv, say):
    say("$ ionto " + " ".join(str(a) for a in argv))
    rc = cli.main([str(a) for a in argv])
    if rc:
        raise SimError("`ionto %s` failed (exit %d)" % (" ".join(str(a) for a in argv), rc))


def _idle(c):
    app_ready(c)
    wait_for(c, "app.s.state == 0", timeout=60)
    c.usb(host_present=False)  # the clinic's isolated supply: START allowed


def run_session(c, spec, unix_start):
    """One session as the nurse runs it -> the unit's session number."""
    c.scenario(data={"name": "course_day_%d" % spec["day"], "description": "",
                     "load": spec.get("load", {}), "events": spec.get("events", [])})
    presses = spec.get("presses", [])
    if presses:
        # The nurse's presses, timed from the moment the unit is at its target (or held below
        # it, LIMITED), on the unit's own clock: sent from here one by one, a host slower than
        # the virtual unit's seconds would stretch "one second later" into five, and the session
        # could end on its dose before the raised target is reached.
        arm(c, "a.s.state == 4 or a.s.limited", [(p["after_s"] * 1000, p["button"]) for p in presses])
    with paced(c):  # the session starts at the clinic time just set, not a host's stall later
        c.exec(_SET_CLOCK % (unix_start, unix_start))
        press(c, "START", "START")
    wait_for(c, "app.s.state in (10, 11) and not log.pending()", timeout=180)  # DONE or STOPPED, on flash
    n = c.eval("log.session")
    if presses and armed_at(c) is None:
        raise SimError("course day %d: the session ended before it reached its target; the presses "
                       "%s were not made" % (spec["day"], ", ".join(p["button"] for p in presses)))
    press(c, "STOP")
    wait_for(c, "app.s.state == 0", timeout=30)
    return n


def build(archive, names=("responder", "non_responder"), say=None, bundle=None):
    """Run the courses on a fresh virtual unit into `archive` -> {name: {"label", "sessions":
    [SERIAL:N ...], "course": the course data}}."""
    say = say or (lambda *a: None)
    from . import firmware_build

    courses = [load(n) for n in names]
    clock = clinictime.ClinicClock(CLINIC_TZ)
    tmp = tempfile.mkdtemp(prefix="ionto-course-")
    if bundle is None:
        bundle = Path(tmp) / "bundle"
        firmware_build.build(bundle)
    cfg_path = Path(tmp) / "unit.json"
    result = {}
    with VirtualUnit(seed_from=bundle, accel=0) as vu:
        c = vu.ctl
        _idle(c)
        from .fw import firmware

        cfg = firmware("config").defaults()
        cfg["presets"][0].update(PRESET)
        cfg_path.write_text(json.dumps(cfg))
        _ionto(["config", "push", cfg_path, "--yes", "--operator", "TE03", "--port", vu.port], say)
        _idle(c)
        serial = None
        for crs in courses:
            start = _dt.date.fromisoformat(crs["start"])
            refs = []
            for spec in crs["sessions"]:
                day = start + _dt.timedelta(days=spec["day"] - 1)
                hh, mm = (int(x) for x in spec["time"].split(":"))
                t = clock.unix(day, hh, mm)
                t0 = time.monotonic()
                n = run_session(c, spec, t)
                refs.append(n)
                say("%s day %d (%s %s %s): session %d, %.1f s" % (crs["label"], spec["day"], day.isoformat(),
                                                                   spec["time"], CLINIC_TZ, n,
                                                                   time.monotonic() - t0))
            result[crs["name"]] = {"label": crs["label"], "numbers": refs, "course": crs}
        serial = c.eval("__import__('binascii').hexlify(__import__('machine').unique_id()).decode().upper()")
        c.usb(host_present=True)
        _ionto(["logs", "pull", "--port", vu.port, "--archive", archive], say)
    _ionto(["course", "tz", CLINIC_TZ, "--archive", archive], say)
    for crs in courses:
        r = result[crs["name"]]
        r["sessions"] = ["%s:%d" % (serial, n) for n in r["numbers"]]
        lab = crs["label"]
        _ionto(["course", "new", lab, "--start", crs["start"], "--site", crs["site"], "--checklist", NO,
                "--archive", archive], say)
        plan = crs.get("plan", {})
        argv = ["course", "plan", lab, "--operator", "DR02", "--archive", archive]
        if plan.get("maintenance_every_days"):
            argv += ["--maintenance-every", plan["maintenance_every_days"]]
        if plan.get("maintenance_count"):
            argv += ["--maintenance-count", plan["maintenance_count"]]
        if "trend_after_s" in plan:
            argv += ["--trend-window", "%d,%d" % (plan["trend_after_s"], plan["trend_len_s"])]
        if "hold_s" in plan:
            argv += ["--hold-s", plan["hold_s"]]
        _ionto(argv, say)
        _ionto(["course", "link", lab, *r["sessions"], "--archive", archive], say)
        for spec in crs["sessions"]:
            v = spec.get("visit")
            if not v:
                continue
            argv = ["course", "visit", lab, "--day", spec["day"], "--hdss", v["hdss"], "--reaction", v["reaction"],
                    "--checklist", "unchanged", "--operator", OPERATOR, "--archive", archive]
            if v.get("note"):
                argv += ["--note", v["note"]]
            _ionto(argv, say)
    r0 = result
    r0["serial"] = serial
    return r0


def main(argv=None):
    """`make demo-course`: both simulated courses on a virtual unit, then their reports."""
    import argparse
    import sys

    ap = argparse.ArgumentParser(prog="python -m ionto.coursesim", description=main.__doc__)
    ap.add_argument("--out", default="out/demo", help="folder for the archive and the reports")
    ap.add_argument("--today", default="2026-12-10", help="the report's date (the courses are in Nov-Dec 2026)")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    arch = out / "course_archive.sqlite"
    if arch.exists():
        arch.unlink()
    say = lambda *x: print(*x, flush=True)  # noqa: E731
    t0 = time.monotonic()
    try:
        r = build(str(arch), say=say)
        for name in ("responder", "non_responder"):
            lab = r[name]["label"]
            _ionto(["report", lab, "--today", a.today, "--archive", arch, "--html", out / ("course_%s.html" % lab),
                    "--pdf", out / ("course_%s.pdf" % lab), "--json", out / ("course_%s.json" % lab)], say)
            _ionto(["report", lab, "--today", a.today, "--archive", arch], say)
    except SimError as e:
        print("ionto demo-course: %s" % e, file=sys.stderr)
        return 1
    say("%d sessions on the virtual unit, archived, enrolled and reported in %.0f s; reports in %s"
        % (sum(len(r[n]["sessions"]) for n in ("responder", "non_responder")), time.monotonic() - t0, out))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
