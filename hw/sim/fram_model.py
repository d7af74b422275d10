# The reference board's FRAM (Fujitsu MB85RC256V, 32 KiB, I2C) at the bus level, over a file.
#
#   fram = FRAM(path=None, power=None)      # path: the image persists across restarts (None: RAM)
#   bus.attach(pins.FRAM_ADDR, fram)
#
# Runs on MicroPython and CPython. The chip (datasheet DS501-00023): a write transaction is the
# 2-byte memory address (MSB first, 15 bits used) and then data bytes, each stored as it is
# clocked in (no page buffer, no write delay, no erase: nothing stalls the MCU); a read returns
# bytes from the address pointer, which advances and wraps at the end of the array. The
# contents are non-volatile (they survive a power cut and the virtual unit's restarts).
#
# Power cuts: with a flash.Power shared with the flash model, the n-th write transaction of
# either device can be the one the supply drops in: a seeded prefix of its data bytes is
# stored (the bytes clocked in before the cut), then the chip is dead (every access EIO).
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


import flash

SIZE = const(32768)
_EIO = const(5)


def _open(path, mode):
    if flash._MPY:
        return open(path, mode)
    return open(path, mode, buffering=0)


class FRAM:
    def __init__(self, path=None, power=None, size=SIZE):
        self.size = size
        self.power = power if power is not None else flash.Power()
        self.mem = bytearray(size)
        self._f = None
        if path is not None:
            try:
                with _open(path, "rb") as f:
                    f.readinto(self.mem)
            except OSError:
                with _open(path, "wb") as f:
                    f.write(self.mem)
            self._f = _open(path, "r+b")
        self.ptr = 0
        self.writes = 0  # write transactions with data
        self.bytes_written = 0
        self.reads = 0

    def close(self):
        if self._f is not None:
            self._f.close()
            self._f = None

    # --- I2C device protocol (machine._Bus) -------------------------------------------------
    def i2c_write(self, data):
        if self.power.dead:
            raise OSError(_EIO)  # no supply: no acknowledge
        n = len(data)
        if n < 2:
            return  # an address byte alone, or a pointer half set: nothing stored
        addr = ((data[0] << 8) | data[1]) % self.size
        k = n - 2
        cut = False
        if k:
            cut = self.power.tick()
            if cut:
                k = self.power.rand.below(k)  # the bytes clocked in before the supply fell
        mem = self.mem
        size = self.size
        for i in range(k):
            mem[(addr + i) % size] = data[2 + i]
        if k and self._f is not None:
            self._persist(addr, k)
        self.ptr = (addr + k) % size
        if n > 2:
            self.writes += 1
            self.bytes_written += k
        if cut:
            self.power.die()

    def i2c_read(self, n):
        if self.power.dead:
            raise OSError(_EIO)
        self.reads += 1
        out = bytearray(n)
        p = self.ptr
        mem = self.mem
        for i in range(n):
            out[i] = mem[p]
            p = (p + 1) % self.size
        self.ptr = p
        return bytes(out)

    def _persist(self, addr, k):
        f = self._f
        end = addr + k
        if end <= self.size:
            f.seek(addr)
            f.write(memoryview(self.mem)[addr:end])
        else:  # wrapped round the end of the array
            f.seek(addr)
            f.write(memoryview(self.mem)[addr:])
            f.seek(0)
            f.write(memoryview(self.mem)[: end - self.size])
