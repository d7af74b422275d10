"""`make demo`: the product's main job on the virtual unit, start to finish.

A technician deploys the firmware onto a new (empty) unit with `ionto flash` and sets its
clock. Then a treatment, as a nurse runs it: palms in tap water, START and confirm, the
current raised twice, a hand lifted out of the water mid-session and put back, the session
runs to its end. Then an engineer plugs the laptop in, pulls the log into an archive with
`ionto logs pull` and plots the session from it. Prints what happens; writes a plot of set and
true current, display frames, the archive, the archived session's plot and a summary to --out.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from . import cli, words
from .fw import load
from .scripted import COLUMNS, Recorder, arm, armed_at, paced, press, state_name, wait_for, wait_virtual_s
from .simctl import SimError, VirtualUnit



def _frame(ctl, out, name):
    framepng = load("sim", "framepng")

    # The loop sends a changed page 16 bytes a tick (~130 ms for a whole page): let it land.
    wait_virtual_s(ctl, 0.5)

    f = ctl.frame()
    path = out / ("frame_%s.png" % name)
    framepng.save_png(str(path), bytes.fromhex(f["hex"]), on=f.get("on", True))
    return path


def _lines(ctl):
    return ctl.eval("app.b.display.text()")


def plot(rows, path, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r[0] / 1000 / 60 for r in rows]  # ms -> minutes
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True, height_ratios=(3, 1.4))
    ax1.plot(t, [r[7] / 1000 for r in rows], color="0.6", lw=1, ls="--", label="target (nurse)")
    ax1.plot(t, [r[3] / 1000 for r in rows], color="tab:blue", lw=1.2, label="ramp setpoint")
    ax1.plot(t, [r[1] / 1000 for r in rows], color="tab:red", lw=1, label="true current (plant)")
    ax1.set_ylabel("mA")
    ax1.legend(loc="upper right", fontsize=8)
    ax1.set_title(title)
    ax1.grid(alpha=0.3)
    # Polarity reversals and pauses marked where the firmware state changes.
    for i in range(1, len(rows)):
        if rows[i][5] != rows[i - 1][5]:
            ax1.axvline(t[i], color="tab:purple", lw=0.8, alpha=0.6)
        if rows[i][4] == 8 and rows[i - 1][4] != 8:  # session.PAUSED
            ax1.axvline(t[i], color="tab:orange", lw=0.8, alpha=0.8)
    ax2.plot(t, [r[6] / 1000 for r in rows], color="tab:green", lw=1)
    ax2.set_ylabel("electrode V")
    ax2.set_xlabel("minutes")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(out, scenario="hand_lifted", quiet=False):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    t_wall = time.monotonic()
    archive = out / "archive.sqlite"
    if archive.exists():
        archive.unlink()
    with VirtualUnit(seed_from=None, scenario=scenario, accel=0) as vu:
        c = vu.ctl
        say("a new virtual unit on %s (empty flash, scenario %s)" % (vu.port, scenario))
        say("$ ionto flash --port %s" % vu.port)
        _ionto(["flash", "--port", vu.port])
        say("$ ionto clock sync --port %s" % vu.port)
        _ionto(["clock", "sync", "--port", vu.port])
        # In the clinic the unit runs on its own isolated supply, no laptop attached.
        c.usb(host_present=False)
        wait_for(c, "app is not None and app.ticks > 50")
        rec = Recorder(c, period_ms=100)
        frames = [_frame(c, out, "1_idle")]
        say("idle:     " + " | ".join(x for x in _lines(c) if x))
        with paced(c):  # CONFIRM's 30 s must not run out while the frame is taken
            press(c, "START")
            frames.append(_frame(c, out, "2_confirm"))
            say("confirm:  " + " | ".join(x for x in _lines(c) if x))
            press(c, "START")
        wait_for(c, "app.s.state == 4", recorder=rec)  # TREAT: contact found, ramped up
        say("treating at %s after the ramp" % words.ma(c.eval("app.s.actual_ua")))
        wait_virtual_s(c, 30, rec)
        press(c, "UP")
        wait_virtual_s(c, 30, rec)
        press(c, "UP")
        wait_virtual_s(c, 40, rec)
        say("nurse raised the target twice: %s" % words.ma(c.eval("app.s.target_ua")))
        frames.append(_frame(c, out, "3_running"))
        # PAUSED: the hand came out. Its 20 s on the unit's clock would be gone in a poll or two
        # of this loop: from the moment it pauses the unit runs at 10x, then as fast again.
        arm(c, "a.s.state == 8", accel=10)
        wait_for(c, "app.s.state == 8", timeout=300, recorder=rec)
        frames.append(_frame(c, out, "4_paused"))
        armed_at(c)
        c.accel(0)
        say("hand lifted at %.0f s of treatment: paused, output to zero" % (c.eval("app.s.treat_ms") / 1000))
        wait_for(c, "app.s.state == 3 or app.s.state == 4", timeout=300, recorder=rec)
        say("hand back in the water: fresh ramp from zero")
        wait_for(c, "app.s.state == 10", timeout=600, recorder=rec)  # DONE
        wait_virtual_s(c, 2, rec)
        frames.append(_frame(c, out, "5_done"))
        rows = rec.pull()
        max_step, max_step_t, peak = rec.stats()
        s = c.eval("(app.s.dose_mamin(), app.s.end_reason, app.s.treat_ms, app.overruns, app.ticks)")
        fault = c.eval("app.s.fault")
        c.exec("import os")
        logs = c.eval("sorted(os.listdir('/log'))")
        vt = c.state()["now_us"] / 1e6
        # The engineer plugs the laptop in and archives the log.
        c.usb(host_present=True)
        say("")
        say("$ ionto logs pull --port %s --archive %s" % (vu.port, archive))
        _ionto(["logs", "pull", "--port", vu.port, "--archive", str(archive)])
    say("$ ionto logs list --archive %s" % archive)
    _ionto(["logs", "list", "--archive", str(archive)])
    session_png = out / "session.png"
    say("$ ionto logs plot 1 --archive %s -o %s" % (archive, session_png))
    _ionto(["logs", "plot", "1", "--archive", str(archive), "-o", str(session_png)])
    wall = time.monotonic() - t_wall
    (out / "trace.json").write_text(json.dumps({"columns": COLUMNS, "rows": rows}))
    plot(rows, out / "current.png", "Palms, tap water: a hand lifted mid-session (virtual unit)")
    summary = {
        "scenario": scenario,
        "treatment_s": s[2] // 1000,
        "dose_mamin": s[0],
        "end": s[1],
        "fault": fault,
        "peak_true_ma": round(peak / 1000, 2),
        "largest_2ms_step_ma": round(max_step / 1000, 3),
        "loop_overruns": s[3],
        "virtual_s": round(vt, 1),
        "wall_s": round(wall, 1),
        "unit_log_files": logs,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    say("")
    say("session complete: %s of treatment, dose %s, fault %s"
        % (words.mmss(s[2] // 1000), words.dose_mamin(s[0], 0), fault or "none"))
    say("peak true current %s; largest change within one 10 ms tick, hands steady in the water: %s"
        " (on re-immersion the output capacitance, charged to 5 V by the 50 uA contact probe,"
        " discharges into the skin for some microseconds: 0.5 uC)"
        % (words.ma(peak, 2), words.ma(max_step, 3)))
    say("%.0f virtual seconds in %.1f wall seconds (%.0fx real time)" % (vt, wall, vt / wall))
    say("unit's flash log: %s" % ", ".join(logs))
    say("wrote %s, %s, %s, %s and %d display frames"
        % (out / "current.png", session_png, archive, out / "summary.json", len(frames)))
    return summary


def _ionto(argv):
    """Run one `ionto` command as a user would type it; a failure stops the demo."""
    rc = cli.main(argv)
    sys.stdout.flush()
    if rc:
        raise SimError("`ionto %s` failed (exit %d)" % (" ".join(argv), rc))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="ionto demo", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo", help="folder for the plot, frames and summary")
    ap.add_argument("--scenario", default="hand_lifted", help="patient scenario (hw/sim/scenarios)")
    a = ap.parse_args(argv)
    try:
        run(a.out, a.scenario)
    except SimError as e:
        print("ionto demo: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
