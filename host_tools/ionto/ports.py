"""Finding units: MicroPython boards on USB, and the virtual and emulated units registered by
`ionto sim` / `ionto pico`; which port a command uses; how slow the unit on a port runs.
"""
import os

from .errors import EXIT_AMBIGUOUS, EXIT_NO_DEVICE, IontoError

BAUD = 115200
# USB IDs a MicroPython board enumerates with: Raspberry Pi (rp2 MicroPython 0x0005) and
# MicroPython's own VID.
USB_IDS = ((0x2E8A, None), (0xF055, None))


class UnitPort:
    def __init__(self, device, kind, serial=None, description=""):
        self.device = device
        self.kind = kind
        self.serial = serial
        self.description = description

    def __repr__(self):
        return "UnitPort(%r, %r, %r)" % (self.device, self.kind, self.serial)


def find_units(include_virtual=True):
    """MicroPython boards on USB (by USB vendor ID) and running virtual units (`ionto sim`)."""
    out = []
    try:
        from serial.tools import list_ports

        for p in sorted(list_ports.comports(), key=lambda p: p.device):
            if any(p.vid == vid and (pid is None or p.pid == pid) for vid, pid in USB_IDS):
                out.append(UnitPort(p.device, "usb", p.serial_number, p.description or ""))
    except Exception:  # no USB enumeration on this host: virtual units can still be listed
        pass
    if include_virtual:
        from .unit_server import registered

        for e in registered():
            out.append(UnitPort(e["port"], "virtual", e.get("serial"), "ionto sim in %s" % e.get("state_dir")))
    return out


def _registered(port):
    """What the unit on `port` registered (an emulated Pico's rate and clock), or {}."""
    try:
        from .unit_server.registry import registered

        real = os.path.realpath(port)
        for e in registered():
            if os.path.realpath(e.get("port", "")) == real:
                return e
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return {}


def time_scale(port):
    """How many times slower than a board the unit on `port` runs: an emulated Pico (`ionto
    pico`) registers the rate it measures; boards and the virtual unit are 1. Every wait for the
    unit's answer is stretched by it, so the same commands work on a slow target."""
    try:
        return max(1.0, float(_registered(port).get("time_scale", 1.0)))
    except (ValueError, TypeError):
        return 1.0


def unit_clock(port):
    """The unit's own clock, for a unit whose time is not the wall clock's: an emulated Pico
    (`ionto pico`) keeps its emulated time in a file it registers. -> a function returning the
    unit's seconds (None when unreadable), or None for a board or the virtual unit. A wait for
    "this long of the unit's time" (listening for a status line that may never come) then ends
    when the unit has lived it, not at a guess of how slow it runs."""
    path = _registered(port).get("clock")
    if not path:
        return None

    def read():
        try:
            with open(path, "rb") as f:
                a, b = f.read(64).split()[:2]  # the same figure twice: differing, a write was halfway
            return int(a) / 1e6 if a == b else None
        except (OSError, ValueError):
            return None

    return read if read() is not None else None


def resolve_port(port=None):
    """The port to use: --port, else IONTO_PORT, else the only unit connected."""
    port = port or os.environ.get("IONTO_PORT")
    if port:
        return port
    units = find_units()
    if not units:
        raise IontoError(EXIT_NO_DEVICE, "no unit found: plug the unit in over USB (or start `ionto sim`), "
                         "or name its port with --port")
    if len(units) > 1:
        raise IontoError(EXIT_AMBIGUOUS, "%d units connected (%s): choose one with --port"
                         % (len(units), ", ".join(u.device for u in units)))
    return units[0].device
