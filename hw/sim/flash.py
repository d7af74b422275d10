# The Pico's QSPI flash as a LittleFS2 block device over an image file.
#
# Runs on MicroPython (the virtual unit mounts it as '/') and on CPython (tests). Implements the
# extended block protocol vfs.VfsLfs2 uses: readblocks(n, buf, off), writeblocks(n, buf, off),
# ioctl(op, arg). Shaped like rp2's filesystem partition on a Pico: 4096-byte erase blocks,
# 352 of them (1408 KiB), programmed in 256-byte pages; mount with VfsLfs2(dev, progsize=256)
# as rp2's _boot.py does.
#
# NOR semantics: programming can only clear bits (new = old & data), erase sets a block to 0xFF.
# Every write reaches the file before the call returns (unbuffered), so the image survives a
# killed process exactly as flash survives a power cut.
#
# Timing (Winbond W25Q16 family, the Pico's flash; charged to vclock because on rp2 the chip
# runs flash operations with interrupts off and the other core parked):
#   page program (256 B):   typical 0.7 ms, worst case 3 ms
#   sector erase (4 KiB):   typical 45 ms,  worst case 400 ms
# A writeblocks() call is one blackout: all its pages back to back, as rp2's flash_range_program.
#
# Power cuts: arm_power_cut(n) makes the n-th following block write or erase the last one. It
# lands partially (a seeded prefix of the data, or of the erase), then the device is dead: the
# on_power_cut hook runs (the virtual unit kills its process there), or PowerCut is raised
# (it propagates out of the VfsLfs2 call that was writing). The count and the cut belong to a
# Power (one supply): pass the same Power to the FRAM journal model (fram_model.py) and the
# n-th write of either device is the one the cut lands in.
import sys

import vclock

try:
    from micropython import const
except ImportError:  # CPython without the test shims (the host supervisor)

    def const(x):
        return x


BLOCK_SIZE = const(4096)
BLOCK_COUNT = const(352)  # 1408 KiB, the Pico's filesystem partition
PAGE_SIZE = const(256)

# Durations in microseconds: (page program, sector erase).
TIMING_TYPICAL = (700, 45_000)
TIMING_WORST = (3_000, 400_000)

_IOCTL_INIT = const(1)
_IOCTL_DEINIT = const(2)
_IOCTL_SYNC = const(3)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)
_IOCTL_BLOCK_ERASE = const(6)

# After the cut the device is dead and every access fails with EIO, quietly: LittleFS's file
# finalizers may still try to flush during gc, where an exception could only be printed.
_EIO = const(-5)

_ERASED = b"\xff" * BLOCK_SIZE
_MPY = sys.implementation.name == "micropython"


class PowerCut(Exception):
    """The supply went away in the middle of a flash operation."""


def _open(path, mode):
    # CPython: unbuffered so every write is in the file when the call returns. MicroPython's
    # unix FileIO is unbuffered already (and its flush() is an fsync, which we don't want).
    if _MPY:
        return open(path, mode)
    return open(path, mode, buffering=0)


def create_image(path, blocks=BLOCK_COUNT):
    """Write a fully erased image (all 0xFF), as a new chip comes from the factory."""
    with _open(path, "wb") as f:
        for _ in range(blocks):
            f.write(_ERASED)


class _Rand:
    # xorshift32: the same cut lands in the same place on both runtimes for a given seed.
    def __init__(self, seed):
        self.s = (seed & 0xFFFFFFFF) or 0x9E3779B9

    def below(self, n):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s % n if n > 0 else 0


class Power:
    """The unit's supply as the nonvolatile devices see it: counts their write operations
    (block writes and erases, FRAM write transactions) and cuts during the n-th once armed."""

    def __init__(self, seed=1, on_power_cut=None):
        self.on_power_cut = on_power_cut
        self.rand = _Rand(seed)
        self.cut_in = 0  # ops left until the cut; 0 = not armed
        self.dead = False
        self.ops = 0

    def arm(self, n, seed=None):
        if seed is not None:
            self.rand = _Rand(seed)
        self.cut_in = n

    def tick(self):
        # Count one write operation; True if the power goes during it.
        self.ops += 1
        if self.cut_in:
            self.cut_in -= 1
            if self.cut_in == 0:
                return True
        return False

    def die(self):
        self.dead = True
        self.cut_in = 0
        if self.on_power_cut is not None:
            self.on_power_cut()
        raise PowerCut("power cut")


class Flash:
    """Block device over an image file (opened now and kept open: the unit remounts '/')."""

    def __init__(self, path, blocks=BLOCK_COUNT, timing=TIMING_TYPICAL, seed=1, on_power_cut=None, power=None):
        self.path = path
        self.blocks = blocks
        self.page_us, self.erase_us = timing
        self.power = power if power is not None else Power(seed, on_power_cut)
        self._f = _open(path, "r+b")
        self._old = bytearray(BLOCK_SIZE)
        self.reset_stats()

    @property
    def dead(self):
        return self.power.dead

    @property
    def _cut_in(self):
        return self.power.cut_in

    @property
    def _rand(self):
        return self.power.rand

    def reset_stats(self):
        self.ops = 0  # block writes + erases, the unit power cuts count in
        self.bytes_programmed = 0
        self.pages_programmed = 0
        self.blocks_erased = 0
        self.longest_blackout_us = 0

    def stats(self):
        return {
            "ops": self.ops,
            "bytes_programmed": self.bytes_programmed,
            "pages_programmed": self.pages_programmed,
            "blocks_erased": self.blocks_erased,
            "longest_blackout_us": self.longest_blackout_us,
            "power_cut_armed": self._cut_in,
            "dead": self.dead,
        }

    def set_worst_case(self, worst=True):
        self.page_us, self.erase_us = TIMING_WORST if worst else TIMING_TYPICAL

    def arm_power_cut(self, n, seed=None):
        """Cut the power during the n-th block write or erase from now (n >= 1; 0 disarms)."""
        self.power.arm(n, seed)

    def close(self):
        self._f.close()

    def is_blank(self):
        # LittleFS keeps its superblock pair in blocks 0 and 1.
        buf = bytearray(BLOCK_SIZE)
        for n in (0, 1):
            self.readblocks(n, buf)
            if buf != _ERASED:
                return False
        return True

    # --- block protocol ------------------------------------------------------------------

    def readblocks(self, n, buf, off=0):
        if self.dead:
            return _EIO
        self._check(n, off, len(buf))
        f = self._f
        f.seek(n * BLOCK_SIZE + off)
        f.readinto(buf)

    def writeblocks(self, n, buf, off=None):
        if self.dead:
            return _EIO
        if off is None:
            # Simple protocol: whole blocks, erased first (rp2's Flash.writeblocks does this).
            for i in range(len(buf) // BLOCK_SIZE):
                self._erase(n + i)
                self._program(n + i, memoryview(buf)[i * BLOCK_SIZE : (i + 1) * BLOCK_SIZE], 0)
        else:
            self._program(n, buf, off)

    def ioctl(self, op, arg):
        if op == _IOCTL_BLOCK_COUNT:
            return self.blocks
        if op == _IOCTL_BLOCK_SIZE:
            return BLOCK_SIZE
        if op == _IOCTL_BLOCK_ERASE:
            if self.dead:
                return _EIO
            self._erase(arg)
            return 0
        if op in (_IOCTL_INIT, _IOCTL_DEINIT, _IOCTL_SYNC):
            return 0
        return None

    # --- internals ----------------------------------------------------------------------

    def _check(self, n, off, size):
        if n < 0 or off < 0 or n * BLOCK_SIZE + off + size > self.blocks * BLOCK_SIZE:
            raise OSError(5)  # EIO, as a bad address would be

    def _tick(self):
        # Count one operation; True if the power goes during it.
        self.ops += 1
        return self.power.tick()

    def _blackout(self, us):
        if us > self.longest_blackout_us:
            self.longest_blackout_us = us
        vclock.charge(us)

    def _program(self, n, data, off):
        size = len(data)
        self._check(n, off, size)
        cut = self._tick()
        if cut:
            size = self._rand.below(size)  # only a prefix made it to the chip
            data = memoryview(data)[:size]
        pos = n * BLOCK_SIZE + off
        f = self._f
        old = memoryview(self._old)[:size]
        f.seek(pos)
        f.readinto(old)
        if old == _ERASED[:size]:
            out = data
        else:
            # Programming only clears bits: what was 0 stays 0.
            out = bytearray(data)
            for i in range(size):
                out[i] &= old[i]
        f.seek(pos)
        f.write(out)
        # Pages touched, each one program cycle.
        pages = (off + size + PAGE_SIZE - 1) // PAGE_SIZE - off // PAGE_SIZE if size else 0
        self.pages_programmed += pages
        self.bytes_programmed += size
        self._blackout(pages * self.page_us)
        if cut:
            self._die()

    def _erase(self, n):
        self._check(n, 0, BLOCK_SIZE)
        cut = self._tick()
        size = self._rand.below(BLOCK_SIZE) if cut else BLOCK_SIZE
        f = self._f
        f.seek(n * BLOCK_SIZE)
        f.write(memoryview(_ERASED)[:size])
        self.blocks_erased += 1
        self._blackout(self.erase_us)
        if cut:
            self._die()

    def _die(self):
        self.power.die()
