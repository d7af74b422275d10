"""The one way host tools import firmware modules (config, cfgstore, records, logstore,
session, limits, integrity): the unit's own code, imported from firmware/, never copied.

They import each other by plain name, as on the unit, so firmware/ goes on sys.path while a
module loads. Their `from micropython import const` needs a `micropython` module on CPython:
the test shims or Adafruit Blinka provide one in development; a plain install has none, so a
stand-in with const() alone is installed then.
"""
import importlib
import sys
import types
from pathlib import Path

from .errors import EXIT_INTERNAL, IontoError

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"


def _micropython_shim():
    try:
        import micropython  # noqa: F401
    except ImportError:
        m = types.ModuleType("micropython")
        m.const = lambda x: x
        sys.modules["micropython"] = m


def firmware(name):
    """The firmware module `name` (imported once, then cached by Python)."""
    _micropython_shim()
    d = str(FIRMWARE)
    added = d not in sys.path
    if added:
        sys.path.insert(0, d)
    try:
        mod = importlib.import_module(name)
    finally:
        # Their imports are done (at module level): do not shadow other packages afterwards.
        if added and d in sys.path:
            sys.path.remove(d)
    where = Path(getattr(mod, "__file__", "") or "").resolve().parent
    if where != FIRMWARE:
        raise IontoError(EXIT_INTERNAL, "module %r comes from %s, not the firmware (%s): another package "
                         "shadows it; run ionto from a clean environment" % (name, where, FIRMWARE))
    return mod
