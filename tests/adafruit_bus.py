"""A busio.I2C look-alike over simulated devices, so Adafruit drivers run against our models.

    bus = SimI2C({0x40: ina219_model.INA219(source)})
    ina = adafruit_ina219.INA219(bus)

Implements what adafruit_bus_device's I2CDevice calls: try_lock/unlock, scan, writeto,
readfrom_into and writeto_then_readfrom, with busio's start/end slicing. Each call is one
transaction to a model's i2c_write / i2c_read (the hw/sim/README.md device contract);
writeto_then_readfrom is a write and a read with a repeated start, as on the wire. A missing
address raises OSError(ENODEV), like a NACK on Blinka's Linux I2C; short reads pad 0xFF.

`log` records every transaction as ("w", addr, bytes) / ("r", addr, bytes) for tests.
"""
import errno


class SimI2C:
    def __init__(self, devices=None):
        self.devices = dict(devices or {})
        self.log = []
        self._locked = False

    # --- locking (busio semantics: try_lock never blocks) ----------------------------------
    def try_lock(self):
        if self._locked:
            return False
        self._locked = True
        return True

    def unlock(self):
        self._locked = False

    def _check_lock(self):
        if not self._locked:
            raise RuntimeError("Function requires lock")

    def _dev(self, addr):
        d = self.devices.get(addr)
        if d is None:
            raise OSError(errno.ENODEV, "No such device")
        return d

    # --- transfers ---------------------------------------------------------------------
    def scan(self):
        self._check_lock()
        return sorted(self.devices)

    def writeto(self, address, buffer, *, start=0, end=None):
        self._check_lock()
        data = bytes(memoryview(buffer)[start:end])
        self._dev(address).i2c_write(data)
        self.log.append(("w", address, data))

    def readfrom_into(self, address, buffer, *, start=0, end=None):
        self._check_lock()
        if end is None:
            end = len(buffer)
        n = end - start
        data = bytes(self._dev(address).i2c_read(n))[:n]
        data += b"\xff" * (n - len(data))
        buffer[start:end] = data
        self.log.append(("r", address, data))

    def writeto_then_readfrom(self, address, buffer_out, buffer_in, *, out_start=0, out_end=None,
                              in_start=0, in_end=None):
        self.writeto(address, buffer_out, start=out_start, end=out_end)
        self.readfrom_into(address, buffer_in, start=in_start, end=in_end)

    def deinit(self):
        self.devices.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.deinit()
        return False
