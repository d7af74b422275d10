# Frozen modules of our rp2 MicroPython build (hw/rp2/README.md says how to build it).
#
# Replaces the port's own manifest (ports/rp2/boards/manifest.py) so that the stock _boot.py,
# which formats the flash whenever mounting fails, is NOT frozen: ours is. Everything _boot.py
# needs when the filesystem does not mount is frozen with it (only frozen code exists then).
# hw/sim/unit.py reads the module("...") lines below (one per line, name first) to give the
# virtual unit the same frozen modules: keep that shape.

# From the port: the rp2 module's Python half (PIO assembler, Flash, ...). Not _boot.py.
freeze("$(PORT_DIR)/modules", "rp2.py")
include("$(MPY_DIR)/extmod/asyncio")

# Ours, from firmware/ (paths relative to this file).
module("_boot.py", base_path="../../firmware")
module("fsmount.py", base_path="../../firmware")
module("pins.py", base_path="../../firmware")
module("limits.py", base_path="../../firmware")
module("ssd1306.py", base_path="../../firmware")
module("display.py", base_path="../../firmware")
