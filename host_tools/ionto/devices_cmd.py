"""`ionto devices`: the units connected, USB boards and running virtual units.

    ionto devices [--json] [--listen S]

For each: port, kind (usb / virtual), serial number (the unit's unique id: rp2 MicroPython
reports it as the USB serial number; a virtual unit as registered by `ionto sim`), firmware
version and state. Version and state come from the read-only status channel (`@ID`, `@ST`),
so listing never disturbs a treatment. A unit that prints nothing (main.py not running: it
sits at its REPL) is asked at the REPL, which interrupts nothing. A busy port is listed as
busy. Exit 3 when no unit is found.
"""
import json
import threading

from . import link
from .archive import table
from .errors import EXIT_NO_DEVICE, IontoError


_ASK = """import machine, binascii, json
try:
    from version import VERSION
except ImportError:
    VERSION = None
print(json.dumps([binascii.hexlify(machine.unique_id()).decode().upper(), VERSION]))
"""


def add_arguments(p):
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--listen", type=float, default=5.5,
                   help="seconds to wait for a unit's identity line (it comes every 5 s)")


def probe(unit, listen_s=5.5):
    """{"port", "kind", "serial", "version", "state"} for one UnitPort."""
    d = {"port": unit.device, "kind": unit.kind, "serial": unit.serial, "version": None, "state": None}
    try:
        with link.Link.open(unit.device) as u:
            u.listen(listen_s, want=("ST", "ID"))
            if u.identity:
                d["serial"] = d["serial"] or u.identity["serial"]
                d["version"] = u.identity["version"]
            if u.status is not None:
                d["state"] = u.status.state.replace("_", " ")
            else:
                # Nothing printed: no application running, so the REPL is free to ask.
                info = link._last_json(u.exec(_ASK), "identity")
                d["serial"] = d["serial"] or info[0]
                d["version"] = info[1]
                d["state"] = "at REPL"
    except IontoError as e:
        d["state"] = {3: "gone", 4: "busy"}.get(e.code, "no answer")
    except Exception:
        d["state"] = "no answer"
    return d


def run(args):
    units = link.find_units()
    if not units:
        raise IontoError(EXIT_NO_DEVICE, "no unit found: plug the unit in over USB (or start `ionto sim`)")
    found = [None] * len(units)

    def work(i, u):
        found[i] = probe(u, args.listen)

    threads = [threading.Thread(target=work, args=(i, u), daemon=True) for i, u in enumerate(units)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if args.json:
        print(json.dumps(found, indent=1))
    else:
        print(table([(d["port"], d["kind"], d["serial"] or "?", d["version"] or "?", d["state"] or "?")
                     for d in found], ("PORT", "KIND", "SERIAL", "FIRMWARE", "STATE")))
    return 0
