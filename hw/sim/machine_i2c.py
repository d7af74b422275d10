# The `machine` mock's I2C (machine.I2C, SoftI2C; sim_i2c_bus and the device interface in
# hw/sim/README.md). Re-exported by machine.py.
import vclock
from machine_pins import sim_pin, _pin_id

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

_EIO = const(5)
_ENODEV = const(19)
_ETIMEDOUT = const(110)


# --- I2C ------------------------------------------------------------------------------------

def _device_read(dev, buf, n):
    # The device model answers outside the firmware's heap lock (it may allocate; rp2's
    # driver does not).
    d = vclock.sim_unlock()
    try:
        _answer(dev, buf, n)
    finally:
        vclock.sim_relock(d)


def _answer(dev, buf, n):
    # A short answer reads as an idle bus (0xFF), as on the wire.
    data = dev.i2c_read(n)
    buf[:] = data[:n] if len(data) >= n else data + b"\xff" * (n - len(data))

class _Bus:
    """Simulated I2C wires (`sim_i2c_bus(id)`)."""

    def __init__(self, id):
        self.id = id
        self.devices = {}
        self.fault = None  # None, "nack" or "stuck"
        self.fault_addr = None  # None: the fault hits every address; else only this one
        self.pins = None  # (scl, sda) the devices hang on; None: any pins of this bus
        self.transactions = 0

    def attach(self, addr, device):
        self.devices[addr] = device

    def detach(self, addr):
        self.devices.pop(addr, None)


_buses = {}


def sim_i2c_bus(id):
    b = _buses.get(id)
    if b is None:
        b = _buses[id] = _Bus(id)
    return b


def _i2c_bus_of(scl, sda):
    # The wires decide: GP0/1, 4/5, 8/9... are I2C0 pads, GP2/3, 6/7... I2C1.
    if sda % 4 == 0 and scl == sda + 1:
        return 0
    if sda % 4 == 2 and scl == sda + 1:
        return 1
    return None


class I2C:
    _ERR_NACK = _EIO  # rp2 hardware I2C maps every non-timeout failure to EIO
    _WHOLE_TIMEOUT = True

    def __init__(self, id=0, *, scl=None, sda=None, freq=400_000, timeout=50_000):
        if id not in (0, 1):
            raise ValueError("I2C(%s) doesn't exist" % (id,))
        dscl, dsda = (9, 8) if id == 0 else (7, 6)  # Pico defaults
        if scl is not None:
            scl = _pin_id(scl)
            if (scl & 3) != (1 if id == 0 else 3):
                raise ValueError("bad SCL pin")
        if sda is not None:
            sda = _pin_id(sda)
            if (sda & 3) != (0 if id == 0 else 2):
                raise ValueError("bad SDA pin")
        self._setup(id, dscl if scl is None else scl, dsda if sda is None else sda, freq, timeout)

    def _setup(self, bus_id, scl, sda, freq, timeout):
        if freq <= 0:
            raise ValueError("freq must be > 0")
        self._bus = sim_i2c_bus(bus_id)
        self._scl = scl
        self._sda = sda
        self._freq = freq
        self._timeout = timeout
        self._ptr = bytearray(2)
        self._ptr1 = memoryview(self._ptr)[:1]
        # the register-read path's constants: the pointer write's wire time, the longest
        # read that fits the timeout ((n + 1) * 9e6 // freq <= timeout)
        self._t_ptr = 18_000_000 // freq
        self._fast_n = ((timeout + 1) * freq - 1) // 9_000_000 - 1
        self._rd_dev = None  # the device last read on this path, and its i2c_read_into or None
        self._rd_into = None
        for p in (scl, sda):
            st = sim_pin(p)
            st.mode = 3
            st.alt = 3
            st.pull = 1

    def __repr__(self):
        return "I2C(%d, freq=%d, scl=%d, sda=%d, timeout=%d)" % (
            self._bus.id, self._freq, self._scl, self._sda, self._timeout)

    # one addressed transaction of `nbytes` data bytes: returns the device or raises
    def _begin(self, addr, nbytes):
        bus = self._bus
        bus.transactions += 1
        f = bus.fault
        if f is not None and (bus.fault_addr is None or bus.fault_addr == addr):
            if f == "stuck":
                vclock.charge(self._timeout)
                raise OSError(_ETIMEDOUT)
            vclock.charge(9_000_000 // self._freq)
            raise OSError(self._ERR_NACK)
        dev = bus.devices.get(addr)
        if dev is None or (bus.pins is not None and bus.pins != (self._scl, self._sda)):
            vclock.charge(9_000_000 // self._freq)
            raise OSError(self._ERR_NACK)
        return dev

    def _wire(self, nbytes):
        vclock.charge((nbytes + 1) * 9_000_000 // self._freq)

    def _fits(self, nbytes):
        # rp2's hardware I2C gives a whole transfer `timeout` us (pico-sdk's
        # i2c_write/read_timeout_us: one deadline, not per byte): a longer one is cut there
        # with ETIMEDOUT. -> how many data bytes go out before it (all of them if it fits).
        if not self._WHOLE_TIMEOUT or (nbytes + 1) * 9_000_000 // self._freq <= self._timeout:
            return nbytes
        k = self._timeout * self._freq // 9_000_000 - 1
        return 0 if k < 0 else k

    def _write(self, addr, data, more=None):
        n = len(data) + (0 if more is None else len(more))
        dev = self._begin(addr, n)
        k = self._fits(n)
        d = vclock.sim_unlock()
        try:
            if more is not None:
                data = bytes(data) + bytes(more)  # unlocked: rp2 does this without allocating
            dev.i2c_write(data if k == n else bytes(data)[:k])
        finally:
            vclock.sim_relock(d)
        if k < n:
            vclock.charge(self._timeout)
            raise OSError(_ETIMEDOUT)
        self._wire(n)

    def _read_into(self, addr, buf):
        n = len(buf)
        dev = self._begin(addr, n)
        if self._fits(n) < n:
            vclock.charge(self._timeout)
            raise OSError(_ETIMEDOUT)
        _device_read(dev, buf, n)
        self._wire(n)

    def _memaddr(self, memaddr, addrsize):
        if addrsize == 8:
            self._ptr[0] = memaddr & 0xFF
            return self._ptr1
        if addrsize == 16:
            self._ptr[0] = (memaddr >> 8) & 0xFF
            self._ptr[1] = memaddr & 0xFF
            return self._ptr
        raise ValueError("addrsize must be 8 or 16")

    def scan(self):
        found = []
        for addr in range(0x08, 0x78):
            try:
                self._begin(addr, 0)
            except OSError:
                continue
            self._wire(0)
            found.append(addr)
        return found

    def writeto(self, addr, buf, stop=True):
        self._write(addr, buf)
        return len(buf)

    def writevto(self, addr, vector, stop=True):
        data = b"".join(bytes(v) for v in vector)
        self._write(addr, data)
        return len(data)

    def readfrom_into(self, addr, buf, stop=True):
        self._read_into(addr, buf)

    def readfrom(self, addr, nbytes, stop=True):
        buf = bytearray(nbytes)
        self._read_into(addr, buf)
        return bytes(buf)

    def readfrom_mem_into(self, addr, memaddr, buf, *, addrsize=8):
        # pointer write, repeated start, read: two transactions on the wire
        bus = self._bus
        dev = bus.devices.get(addr)
        if (dev is None or addrsize != 8 or bus.fault is not None or bus.pins is not None
                or len(buf) > self._fast_n):
            self._write(addr, self._memaddr(memaddr, addrsize))
            self._read_into(addr, buf)
            return
        # The control loop's path (a register read every tick): what _write and _read_into
        # do for a healthy device, without their layers, under one heap unlock. The instants
        # stay the wire's: the pointer write's time is charged before the device answers,
        # the data's after it. A device model with i2c_read_into(buf) answers straight into
        # the caller's buffer.
        bus.transactions += 2
        if dev is not self._rd_dev:
            self._rd_dev = dev
            self._rd_into = getattr(dev, "i2c_read_into", None)
        p = self._ptr1
        p[0] = memaddr & 0xFF
        d = vclock.sim_unlock()
        try:
            dev.i2c_write(p)
            vclock.charge_unlocked(self._t_ptr, d)
            if self._rd_into is not None:
                self._rd_into(buf)
            else:
                _answer(dev, buf, len(buf))
            vclock.charge_unlocked((len(buf) + 1) * 9_000_000 // self._freq, d)
        finally:
            vclock.sim_relock(d)

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8):
        buf = bytearray(nbytes)
        self.readfrom_mem_into(addr, memaddr, buf, addrsize=addrsize)
        return bytes(buf)

    def writeto_mem(self, addr, memaddr, buf, *, addrsize=8):
        self._write(addr, self._memaddr(memaddr, addrsize), buf)


class SoftI2C(I2C):
    _ERR_NACK = _ENODEV  # extmod soft I2C reports an address NACK as ENODEV
    _WHOLE_TIMEOUT = False  # its timeout bounds each clock stretch, not the transfer

    def __init__(self, scl, sda, *, freq=400_000, timeout=50_000):
        scl = _pin_id(scl)
        sda = _pin_id(sda)
        bus_id = None
        for b in _buses.values():
            if b.pins == (scl, sda):
                bus_id = b.id
        if bus_id is None:
            bus_id = _i2c_bus_of(scl, sda)
        if bus_id is None:
            bus_id = ("soft", scl, sda)  # wires no model is attached to
        self._setup(bus_id, scl, sda, freq, timeout)
