"""Render the architecture diagram of docs/architecture.md: `make docs`.

One picture of the whole product: the host tools, the serial line with its two protocols (the
read-only status channel and the REPL), the two stand-ins for a board (the virtual unit's
processes and channels, the emulated Pico) and the firmware's layers. Drawn with matplotlib
(already a dependency; no Graphviz binary needed); the SVG carries no date and fixed ids, so a
re-render of unchanged source is byte-identical and tests/test_architecture_doc.py can tell a
stale picture.
"""
import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent
NAME = "architecture"

C_HOST = "#6a1b9a"
C_LINE = "#1f5fa8"
C_SIM = "#2e7d32"
C_FW = "#b22222"
C_SAFE = "#d35400"
C_GREY = "#555555"


def _group(ax, x, y, w, h, title, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.15",
                                fc=color + "10", ec=color, lw=1.6))
    ax.text(x + 0.12, y + h - 0.12, title, color=color, fontsize=10.5, fontweight="bold", va="top")


def _box(ax, x, y, w, h, title, lines=(), color="black", fs=8.4):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                fc="white", ec=color, lw=1.1))
    ax.text(x + w / 2, y + h - 0.1, title, ha="center", va="top", fontsize=fs + 0.8, fontweight="bold",
            color=color)
    if lines:
        ax.text(x + w / 2, y + h - 0.42, "\n".join(lines), ha="center", va="top", fontsize=fs, color="#222222",
                linespacing=1.25)
    return (x, y, w, h)


def _arrow(ax, a, b, color, text=None, both=False, ls="-", txt_xy=None, fs=7, rad=0.0):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="<|-|>" if both else "-|>", mutation_scale=11, color=color,
                                 lw=1.3, ls=ls, connectionstyle="arc3,rad=%s" % rad, shrinkA=2, shrinkB=2))
    if text:
        tx, ty = txt_xy or ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)
        ax.text(tx, ty, text, fontsize=fs, color=color, ha="center", va="center",
                bbox=dict(fc="white", ec="none", pad=0.6))


def draw():
    fig, ax = plt.subplots(figsize=(17, 11))
    ax.set_xlim(0, 17)
    ax.set_ylim(0, 11)
    ax.axis("off")
    ax.text(0.1, 10.85, "ionto: how the pieces talk", fontsize=14, fontweight="bold", va="top")
    ax.text(0.1, 10.5, "one serial line per unit carries two protocols; a unit is a Pico, the virtual unit or the "
            "emulated Pico, and the same firmware runs on each", fontsize=8.5, color=C_GREY, va="top")

    # --- host tools -----------------------------------------------------------------------------
    _group(ax, 0.1, 0.2, 4.4, 10.0, "Host (CPython): host_tools/ionto", C_HOST)
    _box(ax, 0.3, 8.35, 4.0, 1.35, "ionto CLI (cli.py)", [
        "flash, config, logs, status, clock, devices,", "report, course, visits, bench, sim, pico, panel",
        "one error path; words.py: every word shown"], C_HOST)
    _box(ax, 0.3, 5.85, 4.0, 2.1, "link.py, rawrepl.py, transfer.py", [
        "Ctrl-C out of main.py (refused while treating)", "raw REPL: Ctrl-A, exec, Ctrl-D; a deadline",
        "on every wait; hostcmd.py, unit_side/*.py;", "bulk transfer with CRC32 and SHA-256;",
        "leaving: soft reboot back into main.py", "(a hard reset after a treatment)"], C_HOST)
    _box(ax, 0.3, 4.15, 4.0, 1.35, "monitor.py: the status channel", [
        "port opened read-only and locked:", "it cannot send a byte; @ST/@EV/@ID parsed",
        "(statusline.py) into words, chart, CSV"], C_HOST)
    _box(ax, 0.3, 2.45, 4.0, 1.35, "panel.py + panel_hub.py", [
        "front panel in a browser: http + SSE,", "buttons, patient, faults, live chart",
        "(through the control channel)"], C_HOST)
    _box(ax, 0.3, 0.45, 4.0, 1.6, "archive.sqlite, reports", [
        "logs pull: sessions, samples, events", "course, visits, report --html/--pdf",
        "firmware_build + mpy_build: .mpy bundle"], C_HOST)
    _arrow(ax, (2.3, 8.35), (2.3, 7.95), C_HOST)

    # --- the serial line ------------------------------------------------------------------------
    _group(ax, 4.75, 3.7, 2.6, 6.5, "Serial line", C_LINE)
    _box(ax, 4.9, 6.95, 2.3, 2.55, "REPL (host -> unit)", [
        "Ctrl-C: stop main.py", "(ignored in a treatment)", "Ctrl-A raw, Ctrl-D run",
        "OK ... \\x04 ... \\x04 >", "host lease 120 s:", "a vanished host, and", "the unit restarts its app"],
        C_LINE, fs=7.6)
    _box(ax, 4.9, 4.0, 2.3, 2.7, "status (unit -> host)", [
        "@ST state, time left,", "target, set, actual,", "polarity, fault, limit,", "volts, dose, session",
        "@EV ticks name a b", "@ID serial version", "written by app.py"], C_LINE, fs=7.6)
    ax.text(6.05, 9.88, "USB CDC on a Pico,\na pty for the stand-ins", fontsize=7, ha="center", va="top",
            color=C_LINE)
    _arrow(ax, (4.3, 7.0), (4.9, 8.2), C_LINE, both=True)
    _arrow(ax, (7.2, 5.2), (4.3, 4.85), C_LINE, rad=0.0)

    # --- the stand-ins for a board ---------------------------------------------------------------
    _group(ax, 7.6, 0.2, 4.4, 10.0, "Stand-ins for a board", C_SIM)
    host = _box(ax, 7.8, 7.95, 4.0, 1.75, "ionto sim: the unit server (unit_server/)", [
        "owns the pty master; restarts the unit on a", "reset or power cut; counts bytes; interrupts",
        "at the n-th byte (tests); control.sock:", "JSON lines (simctl.py)"], C_SIM)
    unit = _box(ax, 7.8, 3.9, 4.0, 3.55, "micropython hw/sim/unit.py", [
        "the unix port from PyPI, the firmware on a", "LittleFS image (flash.py, power cuts)",
        "repl.py: friendly, raw, raw-paste REPL", "machine.py mock + time.py on vclock.py",
        "(virtual time; accel 0 = as fast as it can)", "simboard.py: plant (output stage, skin),",
        "INA219, SSD1306, FRAM, buttons, buzzer", "patient.py, tracer.py (for the panel)"], C_SIM)
    _arrow(ax, (9.3, 7.95), (9.3, 7.45), C_SIM, "stdin/stdout pipes", txt_xy=(10.55, 7.7))
    _arrow(ax, (11.0, 7.45), (11.0, 7.95), C_SIM, ls="--")
    ax.text(11.65, 7.7, "ctl\nFIFOs", fontsize=6.8, color=C_SIM, ha="center", va="center")
    _box(ax, 7.8, 0.45, 4.0, 3.0, "ionto pico: the emulated Pico", [
        "our rp2 image (hw/rp2/image, pinned,", "frozen: _boot fsmount pins limits", "ssd1306 display)",
        "on rp2040js (node, hw/rp2/emu)", "board in Python (picoboard.py):", "the same plant and chip models,",
        "over a pipe; QSPI flash modelled", "the judge of time and memory"], C_SIM)
    _arrow(ax, (7.2, 8.3), (7.8, 8.8), C_LINE, "pty", both=True, txt_xy=(7.45, 8.85))
    _arrow(ax, (7.2, 5.3), (7.8, 2.0), C_LINE, "pty", both=True, txt_xy=(7.45, 3.1), rad=0.0)
    _arrow(ax, (4.3, 3.1), (7.8, 8.3), C_SIM, "control channel (buttons, patient, faults, trace)", ls="--",
           txt_xy=(6.05, 3.3), rad=-0.25)

    # --- firmware layers ------------------------------------------------------------------------
    _group(ax, 12.25, 0.2, 4.65, 10.0, "Firmware (MicroPython): firmware/", C_FW)
    layers = [
        ("boot.py, main.py", ["mount, config, self-test, run app; any", "exception or Ctrl-C: output off"]),
        ("app.py: the 10 ms loop", ["one sensor read a tick, one slow job", "(display, status, log); gc in its slot"]),
        ("session.py: the treatment", ["states, ramps, reversal, pause, stop,", "events; ramp.py, regulator.py"]),
        ("drivers", ["ina219, output, buttons, display+ssd1306,", "buzzer, fram; preallocated, no allocation"]),
        ("board.py: the only door to machine", ["pins.py, watchdog, host lease, clock kept"]),
    ]
    y = 9.7
    for i, (t, lines) in enumerate(layers):
        w = 3.05 if i < 3 else 4.25
        _box(ax, 12.45, y - 1.25, w, 1.25, t, lines, C_FW, fs=8.0)
        if i:
            _arrow(ax, (12.45 + 1.5, y + 0.3), (12.45 + 1.5, y), C_FW)
        y -= 1.55
    _box(ax, 15.62, 6.55, 1.15, 3.15, "supervisor", ["safety:", "vetoes the", "regulator,", "latches", "faults;",
                                                  "limits.py", "as data"], C_SAFE, fs=7.2)
    _arrow(ax, (15.62, 7.0), (15.5, 7.0), C_SAFE)
    _box(ax, 12.45, 0.45, 4.25, 1.55, "storage: logstore, logfiles, logretain", [
        "summary at CONFIRM, samples in RAM,", "written only with the output off; journal.py on",
        "FRAM every second; cfgstore atomic; records"], C_FW, fs=8.0)
    _arrow(ax, (14.5, 2.0), (14.5, 2.35), C_FW, both=True)
    _arrow(ax, (12.0, 5.6), (12.45, 5.6), C_SIM, "runs", txt_xy=(12.15, 5.85), fs=6.5)
    _arrow(ax, (12.0, 2.0), (12.45, 2.6), C_SIM, "runs", txt_xy=(12.15, 2.55), fs=6.5)
    return fig


def render(out_dir=OUT_DIR):
    """Write architecture.png and architecture.svg into out_dir; -> the paths written."""
    matplotlib.rcParams["svg.hashsalt"] = "ionto-architecture"
    matplotlib.rcParams["svg.fonttype"] = "none"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig = draw()
    written = []
    for ext, kw in ((".png", {"dpi": 100, "metadata": {"Software": None}}), (".svg", {"metadata": {"Date": None}})):
        path = out_dir / (NAME + ext)
        fig.savefig(str(path), facecolor="white", bbox_inches="tight", pad_inches=0.1, **kw)
        written.append(path)
    plt.close(fig)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description="Render docs/architecture.{png,svg}.")
    ap.add_argument("--out", default=str(OUT_DIR), help="output folder (default: docs/)")
    args = ap.parse_args(argv)
    for path in render(args.out):
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
