# Mounting the flash filesystem without ever destroying it.
#
#     import fsmount
#     ok, words = fsmount.mount_root(rp2.Flash())    # _boot.py, at every reset
#
# rp2's stock _boot.py formats the flash whenever LittleFS does not mount: one damaged block
# and every session log on the unit is silently gone. Here only a blank chip (every block
# erased, as a new unit leaves the factory) is formatted. A filesystem that does not mount is
# left exactly as it is and nothing is mounted: no firmware runs from it, so the unit cannot
# treat, and the technician can save the raw image before formatting deliberately
# (hw/rp2/README.md). Runs on the board (frozen) and in the virtual unit (hw/sim/unit.py).
import vfs

# rp2's filesystem parameters (ports/rp2/modules/_boot.py): LittleFS2, 256-byte programs.
PROGSIZE = 256
_IOCTL_BLOCK_COUNT = 4
_IOCTL_BLOCK_SIZE = 5

# The last outcome (ok, words), for main.py and the REPL; (False, "not mounted yet") before.
state = (False, "not mounted yet")


def _erased(bdev, n, buf, ff):
    bdev.readblocks(n, buf)
    return buf == ff


def is_blank(bdev):
    """True only if every block reads erased (0xFF): a chip that never held a filesystem."""
    count = bdev.ioctl(_IOCTL_BLOCK_COUNT, 0)
    size = bdev.ioctl(_IOCTL_BLOCK_SIZE, 0)
    buf = bytearray(size)
    ff = b"\xff" * size
    # LittleFS's superblock pair lives in blocks 0 and 1: a quick no for any used chip.
    for n in (0, 1):
        if not _erased(bdev, n, buf, ff):
            return False
    # Both erased: anything written further on means a damaged filesystem, not a new chip.
    for n in range(2, count):
        if not _erased(bdev, n, buf, ff):
            return False
    return True


def mount_root(bdev, path="/"):
    """Mount bdev's LittleFS at path. Returns (ok, words); never formats a used chip and
    never raises for a filesystem that does not mount."""
    global state
    fresh = False
    try:
        if is_blank(bdev):
            vfs.VfsLfs2.mkfs(bdev, progsize=PROGSIZE)
            fresh = True
        vfs.mount(vfs.VfsLfs2(bdev, progsize=PROGSIZE), path)
    except Exception as e:  # OSError from LittleFS; anything else is no better a reason to format
        state = (False, "flash filesystem does not mount (%s %s): not formatted, kept for the technician"
                 % (type(e).__name__, e))
        return state
    state = (True, "new unit: flash formatted" if fresh else "mounted")
    return state
