"""The files ionto ships beside its Python code, found through the package.

    FIRMWARE  the unit's firmware (MicroPython sources, deployed by `ionto flash`, imported on the
              host by ionto.fw, run by the virtual unit)
    SIM       the virtual unit's simulated hardware (hw/sim: machine, plant, sensor and display
              models, scenarios, courses, exercises), run under the MicroPython unix port
    RP2       the emulated Pico (hw/rp2: our rp2 image, the RP2040 emulator's script, the board model)
    BENCH     bench/mpy_onboard.py, the benchmark `ionto bench` runs on a unit

They are package data of `ionto` (ionto/firmware, ionto/hw, ionto/bench): a wheel or a plain
`pip install .` copies them into the package; in the repository those three names are links
to the top-level firmware/, hw/ and bench/ folders, so a checkout and an install look alike.
"""
from pathlib import Path

# The package's own folder (what importlib.resources.files("ionto") names for an installed or
# checked-out package, without importing importlib.resources at every command's start).
PACKAGE = Path(__file__).parent
FIRMWARE = (PACKAGE / "firmware").resolve()
SIM = (PACKAGE / "hw" / "sim").resolve()
RP2 = (PACKAGE / "hw" / "rp2").resolve()
BENCH = (PACKAGE / "bench").resolve()
