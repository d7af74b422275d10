"""Render the reference-hardware diagrams from source: `make docs` (python -m hw.docs).

Writes hw/diagrams/block_diagram.{png,svg} and hw/diagrams/output_stage.{png,svg} with
schemdraw on its matplotlib backend (pure Python; no Graphviz binary needed).

Pin numbers and bus addresses are read from firmware/pins.py, the one pin map, so a pin
changed there shows up here on the next `make docs`. pins.py is parsed, not imported: it is
constants only, and parsing spares us a `micropython` module on CPython.
"""
import argparse
import ast
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import schemdraw  # noqa: E402
import schemdraw.elements as elm  # noqa: E402
import schemdraw.flow as flow  # noqa: E402
import schemdraw.logic as logic  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PINS_FILE = ROOT / "firmware" / "pins.py"
OUT_DIR = ROOT / "hw" / "diagrams"
NAMES = ("block_diagram", "output_stage")

# Colours by role: power path, sensing, control from the MCU, safety (no MCU), USB.
C_POWER = "#b22222"
C_SENSE = "#1f5fa8"
C_CTRL = "#2e7d32"
C_SAFE = "#d35400"
C_USB = "#6a1b9a"


def load_pins(path=PINS_FILE):
    """NAME -> value for every `NAME = const(value)` in pins.py."""
    tree = ast.parse(Path(path).read_text(), filename=str(path))
    pins = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if isinstance(target, ast.Name) and isinstance(value, ast.Call) and getattr(value.func, "id", "") == "const":
            pins[target.id] = ast.literal_eval(value.args[0])
    return pins


def _gp(p, name):
    return "GP%d" % p[name]


def _box(d, xy, text, w=3.4, h=1.7, color="black", fs=8):
    return d.add(flow.Box(w=w, h=h).at(xy).anchor("center").label(text, fontsize=fs).color(color))


def _path(d, pts, color="black", ls="-", arrow="->"):
    """A wire through the given points, with an arrowhead on the last segment."""
    for i in range(len(pts) - 1):
        last = i == len(pts) - 2
        line = elm.Line(arrow=arrow if last else None) if last else elm.Line()
        d.add(line.at(pts[i]).to(pts[i + 1]).color(color).linestyle(ls))


def _note(d, xy, text, color="black", halign="center", fs=7):
    d.add(elm.Label().at(xy).label(text, fontsize=fs, color=color, halign=halign))


def block_diagram(p):
    """Blocks and signal flow of the whole unit."""
    d = schemdraw.Drawing(show=False)
    d.config(fontsize=8, unit=2.5)
    fs_ma = p["SETPOINT_FULL_SCALE_UA"] / 1000
    lim_ma = p["HW_LIMIT_UA"] / 1000
    comp_v = p["COMPLIANCE_MV"] / 1000

    # Row 1: the current path, left to right.
    sup = _box(d, (0, 0), "Isolated supply\nIEC 60601-1 2xMOPP\nDC/DC -> %g V rail" % comp_v, color=C_POWER)
    fuse = _box(d, (4.5, 0), "Fuse F1\n50 mA fast\n5x20, 250 V", w=2.6, color=C_SAFE)
    ccs = _box(d, (9, 0), "Constant-current source\nop-amp + HV MOSFET\n0..%g mA, compliance ~%g V" % (fs_ma, comp_v),
               w=4.0, color=C_POWER)
    en = _box(d, (14.5, 0), "Enable switch K1\nphotoMOS, normally open\noff at reset (pull-down)", w=3.8,
              color=C_POWER)
    br = _box(d, (20, 0), "Polarity bridge\nphotoMOS H-bridge", w=3.4, color=C_POWER)
    el = _box(d, (25.5, 0), "Electrodes in trays\nskin + tap water\n~2..6 kOhm", w=3.4, color=C_POWER)
    for a, b in ((sup, fuse), (fuse, ccs), (ccs, en), (en, br), (br, el)):
        _path(d, [a.E, b.W], C_POWER)

    # Return path: through the bridge to the low-side shunt, then the INA219 below it.
    sh = _box(d, (25.5, -4.5), "Shunt 10 Ohm 0.1%\nlow side", w=3.4, color=C_SENSE)
    ina = _box(d, (25.5, -9.0), "INA219 @0x%02X\nPGA /8, 32 mA FS\ninputs <= 26 V" % p["INA219_ADDR"],
               w=3.4, color=C_SENSE)
    _path(d, [el.S, sh.N], C_POWER)
    _note(d, (el.S[0] + 0.2, -2.2), "return via\nthe bridge", C_POWER, "left")
    _path(d, [sh.S, ina.N], C_SENSE)

    # Electrode voltage: tapped between K1 and the bridge.
    jx = (en.E[0] + br.W[0]) / 2
    d.add(elm.Dot().at((jx, 0)).color(C_POWER))
    div = _box(d, (jx, -4.5), "Divider 100k / 5.1k\n-> ADC0 %s" % _gp(p, "PIN_ELECTRODE_ADC"), w=3.4,
               color=C_SENSE)
    _path(d, [(jx, 0), div.N], C_SENSE)
    clamp = _box(d, (jx + 3.0, 2.0), "Adaptive clamp + C3 10 nF: V <= need\n+ headroom, set by PWM %s" % _gp(p, "PIN_CLAMP_PWM"),
                 w=5.0, h=1.2, color=C_SAFE)
    _path(d, [(jx, 0), (jx, 2.0), clamp.W], C_SAFE)
    rs2 = _box(d, (30.0, -9.0), "RS2 %g Ohm\n-> ADC1 %s\n2nd channel" % (p["SENSE_MILLIOHM"] / 1000,
               _gp(p, "PIN_SENSE_ADC")), w=3.4, color=C_SENSE)
    _path(d, [(sh.E[0], sh.S[1] - 0.3), (rs2.N[0], sh.S[1] - 0.3), rs2.N], C_SENSE)

    # Hardware limiter above the path: watches the shunt, opens K1 itself, flags the MCU.
    lim = _box(d, (14.5, 3.9), "Hardware limiter: comparator\ntrips ~%g mA, latches K1 open\nwithout the MCU" % lim_ma,
               w=4.6, color=C_SAFE)
    _path(d, [sh.E, (28.6, sh.E[1]), (28.6, lim.E[1]), lim.E], C_SAFE)
    _note(d, (28.75, 2.0), "shunt\nvoltage", C_SAFE, "left")
    _path(d, [lim.S, en.N], C_SAFE)
    _note(d, (lim.S[0] + 0.15, 1.45), "TRIP", C_SAFE, "left")

    # Row 3: the microcontroller, the panel, USB.
    mcu = _box(d, (10, -10), "Raspberry Pi Pico (RP2040)\nMicroPython firmware:\nregulator, supervisor,\nwatchdog",
               w=7.0, h=3.0, color=C_CTRL)
    pan = _box(d, (0.5, -10), "Nurse panel\nSTART STOP UP DOWN MODE\nSSD1306 128x64 @0x%02X\nbuzzer, LED"
               % p["SSD1306_ADDR"], w=4.8, h=2.2, color=C_CTRL)
    host = _box(d, (1.0, -15.0), "USB host (PC)\nmay be mains-powered", w=4.0, color=C_USB)
    iso = _box(d, (10, -15.0), "USB isolator (ADuM3160)\nor VBUS interlock:\nno start while a host is present",
               w=5.0, color=C_USB)
    _path(d, [host.E, iso.W], C_USB)
    _path(d, [iso.N, mcu.S], C_USB)
    _note(d, (iso.N[0] + 0.15, -12.4), "USB data; VBUS sense %s" % _gp(p, "PIN_VBUS_SENSE"), C_USB, "left")
    _path(d, [mcu.W, pan.E], C_CTRL, arrow="<->")
    _note(d, ((mcu.W[0] + pan.E[0]) / 2, -9.3), "buttons %s..%s\nbuzzer %s, LED %s" % (
        _gp(p, "PIN_BTN_START"), _gp(p, "PIN_BTN_MODE"), _gp(p, "PIN_BUZZER"), _gp(p, "PIN_LED")), C_CTRL)

    # Measurements into the MCU.
    y_i2c = -9.0
    _path(d, [ina.W, (mcu.E[0], y_i2c)], C_SENSE)
    _note(d, (19.3, y_i2c + 0.35), "I2C%d %s/%s, 400 kHz" % (p["I2C_ID"], _gp(p, "I2C_SDA"), _gp(p, "I2C_SCL")),
          C_SENSE)
    _path(d, [div.S, (div.S[0], -10.2), (mcu.E[0], -10.2)], C_SENSE)
    _note(d, (div.S[0] + 0.15, -6.2), "electrode\nvoltage", C_SENSE, "left")

    # Control from the MCU into the current path (dashed).
    _path(d, [(8.0, mcu.N[1]), (8.0, ccs.S[1])], C_CTRL, ls="--")
    _note(d, (8.15, -3.2), "setpoint PWM %s\n2-pole RC filter" % _gp(p, "PIN_SETPOINT_PWM"), C_CTRL, "left")
    _path(d, [(13.2, mcu.N[1]), (13.2, en.S[1])], C_CTRL, ls="--")
    _note(d, (13.05, -3.2), "enable %s\npulse gate %s" % (_gp(p, "PIN_OUTPUT_ENABLE"), _gp(p, "PIN_PULSE_GATE")),
          C_CTRL, "right")
    _path(d, [(mcu.E[0], -11.0), (21.2, -11.0), (21.2, br.S[1])], C_CTRL, ls="--")
    _note(d, (21.35, -3.2), "polarity %s" % _gp(p, "PIN_POLARITY"), C_CTRL, "left")
    _path(d, [lim.W, (6.9, lim.W[1]), (6.9, mcu.N[1])], C_SAFE, ls="--")
    _note(d, (6.75, 2.4), "limit flag %s" % _gp(p, "PIN_HW_LIMIT"), C_SAFE, "right")

    _note(d, (13, 6.3), "Reference board: block diagram (hw/docs.py renders it from firmware/pins.py; "
          "nothing here has been built or measured)", fs=10)
    _note(d, (13, -17.0), "red: current path   blue: measurement   green: MCU control (dashed: signal)   "
          "orange: safety without the MCU   purple: USB")
    return d


def output_stage(p):
    """The output stage as a schematic: every element the safety case leans on."""
    d = schemdraw.Drawing(show=False)
    d.config(fontsize=9, unit=2.5)
    comp_v = p["COMPLIANCE_MV"] / 1000
    # 35 000 uA through 10 000 mOhm = 350 mV; integer maths keeps the label exact.
    lim_mv = p["HW_LIMIT_UA"] * p["SHUNT_MILLIOHM"] // 1_000_000
    shunt_ohm = p["SHUNT_MILLIOHM"] / 1000

    # Supply: the isolated rail. Its ground is the patient-side (isolated) ground, not earth.
    d.add(elm.Ground().at((0, 0)))
    d.add(elm.SourceV().up().at((0, 0)).label("%g V\nisolated\nDC/DC\n2xMOPP" % comp_v, loc="bottom"))
    d.add(elm.Line().up(0.5))
    d.add(elm.Fuse().right().label("F1 50 mA", loc="bottom").color(C_SAFE))
    d.add(elm.Line().right(1.0))
    cc = d.add(elm.SourceI().right().label("CC source\ncompliance ~%g V" % comp_v, loc="bottom").color(C_POWER))
    d.add(elm.Line().right(1.0))
    k1 = d.add(elm.Switch().right().label("K1 enable\nphotoMOS, N.O.", loc="bottom").color(C_POWER))
    node_a = d.add(elm.Dot())
    d.add(elm.Line().right(2.5))

    # Polarity bridge: four photoMOS switches in an H around the load; GP18 closes S1+S4 or S2+S3.
    top = d.add(elm.Dot())
    d.add(elm.Switch().down().at(top.center).label("S1", loc="bottom"))
    mid_l = d.add(elm.Dot())
    d.add(elm.Switch().down().label("S2", loc="bottom"))
    bot = d.add(elm.Dot())
    # Load: electrode A in one tray, the skin (R parallel C), electrode B in the other tray.
    d.add(elm.Line().at(mid_l.center).right(0.6))
    d.add(elm.Dot(open=True).label("A", loc="bottom"))
    d.add(elm.RBox().right().label("tray A\n+ water", loc="bottom", fontsize=7).color(C_POWER))
    skin = d.add(elm.Resistor().right().label("skin R", loc="bottom", fontsize=7).color(C_POWER))
    d.add(elm.Line().at(skin.start).up(0.9).color(C_POWER))
    d.add(elm.Capacitor().right().label("skin C", loc="top", fontsize=7).color(C_POWER))
    d.add(elm.Line().down(0.9).color(C_POWER))
    d.add(elm.RBox().at(skin.end).right().label("tray B\n+ water", loc="bottom", fontsize=7).color(C_POWER))
    d.add(elm.Dot(open=True).label("B", loc="bottom"))
    d.add(elm.Line().right(0.6))
    mid_r = d.add(elm.Dot())
    top_r = (mid_r.center[0], top.center[1])
    d.add(elm.Switch().at(top_r).down().label("S3", loc="top"))
    d.add(elm.Switch().at(mid_r.center).down().label("S4", loc="top"))
    bot_r = d.add(elm.Dot())
    d.add(elm.Line().at(top.center).to(top_r))
    d.add(elm.Line().at(bot.center).to(bot_r.center))
    _note(d, ((top.center[0] + top_r[0]) / 2, top.center[1] + 0.6),
          "polarity bridge: photoMOS H, %s (S1+S4 or S2+S3; driven only while K1 is; switched at zero current)"
          % _gp(p, "PIN_POLARITY"), fs=8)

    # Return path: bottom of the bridge through the shunt to isolated ground (low side).
    d.add(elm.Line().at(bot.center).down(0.5))
    tap = d.add(elm.Dot())
    d.add(elm.Line().down(1.4))
    sh_top = d.add(elm.Dot())
    shunt = d.add(elm.Resistor().down().label("R_SH\n%g Ohm\n0.1%%" % shunt_ohm, loc="bottom").color(C_SENSE))
    # RS2 in series: the second, independent current channel, straight into ADC1 through an RC.
    rs2_top = d.add(elm.Dot().color(C_SENSE))
    d.add(elm.Resistor().down().label("RS2\n%g Ohm" % (p["SENSE_MILLIOHM"] / 1000), loc="bottom").color(C_SENSE))
    d.add(elm.Ground())
    d.add(elm.Line().at(rs2_top.center).left(1.2).color(C_SENSE))
    _note(d, (rs2_top.center[0] - 1.3, rs2_top.center[1]), "RC -> ADC1 %s\n2nd current channel" % _gp(p, "PIN_SENSE_ADC"),
          C_SENSE, "right", fs=8)

    # INA219 across the shunt: both inputs sit within ~0.35 V of ground, far below its 26 V limit.
    x_ina = sh_top.center[0] + 3.0
    ina = d.add(elm.Ic(pins=[elm.IcPin(name="IN+", side="L", slot="2/2"), elm.IcPin(name="IN-", side="L", slot="1/2"),
                             elm.IcPin(name="SDA", side="B", slot="1/2"), elm.IcPin(name="SCL", side="B", slot="2/2")],
                       size=(2.4, 2.4), pinspacing=1.0, leadlen=0.5)
                .label("INA219\n@0x%02X\nPGA /8" % p["INA219_ADDR"], fontsize=8)
                .at((x_ina, sh_top.center[1])).anchor("IN+").right().color(C_SENSE))
    _path(d, [sh_top.center, ina["IN+"]], C_SENSE, arrow=None)
    _path(d, [ina["IN-"], (sh_top.center[0] + 1.2, ina["IN-"][1]), (sh_top.center[0] + 1.2, shunt.end[1]),
              shunt.end], C_SENSE, arrow=None)
    d.add(elm.Dot().at(shunt.end).color(C_SENSE))
    _note(d, ((ina["SDA"][0] + ina["SCL"][0]) / 2, ina["SDA"][1] - 0.9),
          "I2C%d %s/%s\nlow side: inputs <= 26 V" % (p["I2C_ID"], _gp(p, "I2C_SDA"), _gp(p, "I2C_SCL")), C_SENSE, fs=8)

    # Hardware limiter: comparator on the shunt against a fixed reference, latched in hardware.
    cmp_ = d.add(elm.Opamp(leads=True).right().flip().at((x_ina + 5.0, sh_top.center[1] - 0.2)).anchor("in2")
                 .color(C_SAFE))
    _note(d, (cmp_.center[0] - 0.2, cmp_.center[1] - 1.3), "TLV3201", C_SAFE)
    _path(d, [tap.center, (cmp_.in2[0] - 0.6, tap.center[1]), (cmp_.in2[0] - 0.6, cmp_.in2[1]), cmp_.in2], C_SAFE,
          arrow=None)
    d.add(elm.Line().at(cmp_.in1).left(0.8).color(C_SAFE))
    d.add(elm.SourceV().down().reverse().color(C_SAFE).label("ref\n%d mV" % lim_mv, loc="bottom", fontsize=8))
    d.add(elm.Ground())
    d.add(elm.Line().at(cmp_.out).right(0.6).color(C_SAFE))
    latch = d.add(elm.Ic(pins=[elm.IcPin(name="CLK", side="L"), elm.IcPin(name="CLR", side="B", invert=True),
                               elm.IcPin(name="Q", side="R", slot="1/2"), elm.IcPin(name="/Q", side="R", slot="2/2")],
                         size=(2.8, 2.2), leadlen=0.4).label("latch\n'1G74", fontsize=7, loc="top")
                  .anchor("CLK").right().color(C_SAFE))
    _path(d, [latch["CLR"], (latch["CLR"][0], latch["CLR"][1] - 0.6)], C_SAFE, arrow=None)
    _note(d, (latch["CLR"][0], latch["CLR"][1] - 1.0), "cleared only while\n%s is low" %
          _gp(p, "PIN_OUTPUT_ENABLE"), C_SAFE, fs=7)
    d.add(elm.Line().at(latch["Q"]).right(0.8).color(C_SAFE))
    _note(d, (latch["Q"][0] + 0.9, latch["Q"][1]), "TRIP -> open drain ->\n%s flag (low = tripped)" %
          _gp(p, "PIN_HW_LIMIT"), C_SAFE, "left")
    not_trip = latch["/Q"]
    _note(d, (not_trip[0] + 0.9, not_trip[1]), "NOT TRIP -> K1 gate", C_SAFE, "left")
    d.add(elm.Line().at(not_trip).right(0.8).color(C_SAFE))
    _note(d, (cmp_.in2[0] - 0.5, cmp_.in2[1] + 1.0), "trips at %d mV = %g mA" % (lim_mv, p["HW_LIMIT_UA"] / 1000),
          C_SAFE, "left")

    # K1 drive: enable AND NOT TRIP -> photoMOS LED; the 10k pull-down holds it open at reset.
    gate = d.add(logic.And(inputs=2).right().at((k1.center[0] - 0.6, k1.center[1] + 4.0)).anchor("out").color(C_CTRL))
    _path(d, [gate.out, (k1.center[0], gate.out[1]), (k1.center[0], k1.center[1] + 0.45)], C_CTRL)
    d.add(elm.Line().at(gate.in1).left(3.0).color(C_CTRL))
    _note(d, (gate.in1[0] - 3.1, gate.in1[1]), "%s enable" % _gp(p, "PIN_OUTPUT_ENABLE"), C_CTRL, "right")
    pd = d.add(elm.Dot().at((gate.in1[0] - 2.2, gate.in1[1])).color(C_CTRL))
    d.add(elm.Resistor().at(pd.center).down(1.2).label("10k\npull-down", loc="top", fontsize=7).color(C_CTRL))
    d.add(elm.Ground().color(C_CTRL))
    d.add(elm.Line().at(gate.in2).left(0.6).color(C_SAFE))
    _note(d, (gate.in2[0] - 0.7, gate.in2[1] + 0.05), "NOT TRIP", C_SAFE, "right")

    # Setpoint: PWM, two-pole RC filter, then the pulse-gate switch (Vset or 0 V) into the source.
    sp_y = cc.center[1] + 1.6
    sw = d.add(elm.Switch().at((cc.center[0] - 4.2, sp_y)).right().label("pulse gate", loc="top", fontsize=7)
               .color(C_CTRL))
    _path(d, [sw.end, (cc.center[0], sp_y), (cc.center[0], cc.center[1] + 0.55)], C_CTRL)
    _note(d, (sw.start[0] - 0.15, sp_y), "setpoint PWM %s %d kHz\n-> 2-pole RC (~100 Hz)" % (
        _gp(p, "PIN_SETPOINT_PWM"), p["SETPOINT_PWM_FREQ"] // 1000), C_CTRL, "right")
    _note(d, (sw.center[0], sp_y - 0.75), "%s AND enable" % _gp(p, "PIN_PULSE_GATE"), C_CTRL, fs=7)

    # Electrode-voltage divider from the bridge top into ADC0.
    d.add(elm.Line().at(node_a.center).down(1.2).color(C_SENSE))
    d.add(elm.Resistor().down().label("%dk" % (p["DIVIDER_TOP_OHM"] // 1000), loc="bottom", fontsize=8)
          .color(C_SENSE))
    adc = d.add(elm.Dot().color(C_SENSE))
    d.add(elm.Resistor().down().label("%.1fk" % (p["DIVIDER_BOTTOM_OHM"] / 1000), loc="bottom", fontsize=8)
          .color(C_SENSE))
    d.add(elm.Ground())
    d.add(elm.Line().at(adc.center).left(1.0).color(C_SENSE))
    _note(d, (adc.center[0] - 1.1, adc.center[1]), "ADC0 %s" % _gp(p, "PIN_ELECTRODE_ADC"), C_SENSE, "right", fs=8)

    # C3 and the adaptive clamp on the node: it holds V at what the load needs plus headroom.
    d.add(elm.Line().at(node_a.center).right(1.2).color(C_SAFE))
    cn = d.add(elm.Dot().color(C_SAFE))
    d.add(elm.Capacitor().at(cn.center).down().label("C3\n10 nF", loc="bottom", fontsize=8).color(C_SAFE))
    d.add(elm.Ground())
    _note(d, (cn.center[0] + 0.3, cn.center[1] + 1.6), "C3 + adaptive clamp (shunt to ground, set by PWM %s -> RC):\n"
          "the node never holds more than the load's need + headroom" % _gp(p, "PIN_CLAMP_PWM"), C_SAFE, "left", fs=7)

    _note(d, (-1.0, -4.6), "Output stage of the reference design (not built, not measured). "
          "Grounds are the isolated patient-side ground.\n"
          "CC source: a low-side op-amp turns Vset into a control current; a high-side op-amp on a floating 12 V rail\n"
          "and a P-MOSFET regulate on their own sense resistor (see hw/README.md). The shunt feeds only the INA219\n"
          "and the limiter, so one shorted resistor cannot blind both the regulation and the measurement.",
          halign="left", fs=8)
    return d


def _save(fig, path):
    """Save one figure; SVGs carry no date and fixed ids so re-renders diff cleanly."""
    kw = {"bbox_inches": "tight", "pad_inches": 0.15, "facecolor": "white"}
    if path.suffix == ".svg":
        kw["metadata"] = {"Date": None}
    else:
        kw["dpi"] = 110
        kw["metadata"] = {"Software": None}
    fig.savefig(str(path), **kw)


def render(out_dir=OUT_DIR, pins_file=PINS_FILE):
    """Draw both diagrams into out_dir as PNG and SVG; returns the paths written."""
    matplotlib.rcParams["svg.hashsalt"] = "ionto-hw-docs"
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, and smaller
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    p = load_pins(pins_file)
    written = []
    for name, build in zip(NAMES, (block_diagram, output_stage)):
        fig = build(p).draw(show=False).getfig()
        for ext in (".png", ".svg"):
            path = out_dir / (name + ext)
            _save(fig, path)
            written.append(path)
        plt.close(fig)
    return written


def main(argv=None):
    ap = argparse.ArgumentParser(description="Render the reference-hardware diagrams (hw/diagrams).")
    ap.add_argument("--out", default=str(OUT_DIR), help="output folder (default: hw/diagrams)")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    for path in render(args.out):
        print("wrote %s" % path)
    print("docs: %.1f s" % (time.monotonic() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
