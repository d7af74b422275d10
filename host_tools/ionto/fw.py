"""The one way host tools import the unit's own code: the firmware (config, cfgstore, records,
logstore, session, limits, integrity, ...) and, for the emulated Pico's board, the virtual
unit's hardware models (hw/sim) and hw/rp2/picoboard.py. Shipped with ionto, never copied.

On the host they live under their own namespaces, `ionto.firmware.<name>`, `ionto.hw.sim.<name>`
and `ionto.hw.rp2.<name>`, so they never clash with other packages' `config`, `session` or
`records`. On the unit they import each other by plain name (`import limits as L`), found on
MICROPYPATH (hw/sim, then firmware); here each such module gets its own `__import__` that turns
those plain names into the namespaced modules (its own folder first, then the others), leaves
the standard library to Python, and gives `micropython` as a private stand-in with const()
alone (what the host-side modules use). Nothing is put on sys.path and no top-level name is
added to sys.modules.
"""
import builtins
import importlib.util
import sys
import threading
import types

from .errors import EXIT_INTERNAL, IontoError
from .shipped import FIRMWARE, RP2, SIM

NAMESPACE = "ionto.firmware"
# folder -> (its namespace, where its plain-name imports are looked for, in order)
_TREES = {
    "firmware": ("ionto.firmware", FIRMWARE, ("firmware", "sim")),
    "sim": ("ionto.hw.sim", SIM, ("sim", "firmware")),
    "rp2": ("ionto.hw.rp2", RP2, ("rp2", "sim", "firmware")),
}
_micropython = types.ModuleType("ionto.firmware._micropython")
_micropython.const = lambda x: x
_names = {}  # tree -> its module names, read once
_builtins = {}  # tree -> the builtins its modules see
_done = set()  # modules whose code has run to the end
_lock = threading.RLock()  # one load at a time (the panel's threads); re-entered by nested imports


def _tree_names(tree):
    if tree not in _names:
        _names[tree] = frozenset(p.stem for p in _TREES[tree][1].glob("*.py"))
    return _names[tree]


def _builtins_for(tree):
    if tree in _builtins:
        return _builtins[tree]
    search = _TREES[tree][2]

    def _scoped_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name not in sys.stdlib_module_names:
            if name == "micropython":
                return _micropython
            for t in search:
                if name in _tree_names(t):
                    return load(t, name)
        return builtins.__import__(name, globals, locals, fromlist, level)

    _builtins[tree] = b = dict(builtins.__dict__, __import__=_scoped_import)
    return b


def load(tree, name):
    """Module `name` of `tree` ("firmware", "sim" or "rp2") under its namespace (imported once)."""
    namespace, folder, _ = _TREES[tree]
    full = namespace + "." + name
    mod = sys.modules.get(full)
    if mod is not None and full in _done:
        return mod
    with _lock:
        mod = sys.modules.get(full)
        if mod is not None:  # another thread loaded it meanwhile (or it is loading: a cycle)
            return mod
        if name not in _tree_names(tree):
            raise IontoError(EXIT_INTERNAL, "no module %r in %s: reinstall ionto" % (name, folder))
        spec = importlib.util.spec_from_file_location(full, folder / (name + ".py"))
        mod = importlib.util.module_from_spec(spec)
        mod.__builtins__ = _builtins_for(tree)  # its plain-name imports resolve inside the namespaces
        sys.modules[full] = mod
        try:
            spec.loader.exec_module(mod)
        except BaseException:
            sys.modules.pop(full, None)
            raise
        _done.add(full)
        return mod


def firmware(name):
    """The firmware module `name`, as `ionto.firmware.<name>`."""
    return load("firmware", name)
