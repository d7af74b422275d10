# MB85RC256V ferroelectric RAM on the I2C bus: 32 KiB, byte-addressed, no erase, no write delay.
#
#     f = FRAM(i2c, pins.FRAM_ADDR)
#     f.probe()                     # True if the chip answers
#     f.write(addr, buf)            # one transaction: 2 address bytes, then buf
#     f.read_into(addr, buf)        # pointer write, then read
#
# Why FRAM and not a flash region: a flash program or erase on rp2 runs with interrupts off and
# XIP disabled (0.7-3 ms a page, 45-400 ms a sector); an FRAM write is ordinary bus time, stored
# byte by byte as it is clocked in (10^12 writes per byte). At 400 kHz a write of n bytes costs
# about (n + 3) x 22.5 us on the wire: 13 bytes (a sample) ~0.3 ms, 22 bytes ~0.6 ms.
# Errors (no chip, bus fault) raise OSError: the journal counts them and goes on without.
from micropython import const

SIZE = const(32768)


class FRAM:
    def __init__(self, i2c, addr):
        self.i2c = i2c
        self.addr = addr
        self._one = bytearray(1)

    def probe(self):
        try:
            self.i2c.readfrom_mem_into(self.addr, 0, self._one, addrsize=16)
            return True
        except OSError:
            return False

    def write(self, mem, buf):
        self.i2c.writeto_mem(self.addr, mem, buf, addrsize=16)

    def read_into(self, mem, buf):
        self.i2c.readfrom_mem_into(self.addr, mem, buf, addrsize=16)
