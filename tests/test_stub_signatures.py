"""The mock offers nothing the Pico lacks: every public name, method and signature of
hw/sim/machine.py exists in micropython-rp2-rpi-pico-stubs (machine.pyi), and every
`machine` name the firmware uses exists in the mock. The firmware runs on the mock, so it
can only use what the mock has; together the two checks keep it within rp2's real API.

Compatibility rule for a callable: some stub overload takes the mock's positional
parameters (same names, same order, as a prefix), and every keyword the mock accepts is
a keyword in some overload. Stub methods typed only as (*args, **kwargs) fall back to the
stub base class (SoftI2C -> I2C). `sim_*` hooks and `_private` names are exempt.
MicroPython has no `/` syntax, so the mock cannot forbid keywords for parameters that are
positional-only on the board; the names still match.
"""
import ast
import inspect
import sys
import types
from pathlib import Path

import pytest

import machine
from conftest import FIRMWARE



def _stub_path():
    for p in map(Path, sys.path):
        f = p / "machine.pyi"
        if f.is_file():
            return f
    hits = sorted(Path(sys.prefix).glob("lib/python*/site-packages/machine.pyi"))
    if not hits:
        pytest.fail("machine.pyi not found: install micropython-rp2-rpi-pico-stubs (make test)")
    return hits[0]


class Sig:
    def __init__(self, fn: ast.FunctionDef, method: bool):
        a = fn.args
        pos = [x.arg for x in a.posonlyargs + a.args]
        if method and pos and pos[0] in ("self", "cls"):
            pos = pos[1:]
        self.pos = pos
        self.kw = {x.arg for x in a.args + a.kwonlyargs} - {"self", "cls"}
        self.varargs = a.vararg is not None
        self.varkw = a.kwarg is not None

    @property
    def generic(self):
        return not self.pos and not self.kw and self.varargs and self.varkw


def _parse_stub():
    tree = ast.parse(_stub_path().read_text())
    funcs, classes, consts = {}, {}, {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs.setdefault(node.name, []).append(Sig(node, False))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            consts[node.target.id] = node.value.value if isinstance(node.value, ast.Constant) else ...
        elif isinstance(node, ast.ClassDef):
            c = {"bases": [b.id for b in node.bases if isinstance(b, ast.Name)], "methods": {}, "consts": {}}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    c["methods"].setdefault(item.name, []).append(Sig(item, True))
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    v = item.value.value if isinstance(item.value, ast.Constant) else ...
                    c["consts"][item.target.id] = v
                elif isinstance(item, ast.Assign):
                    for t in item.targets:
                        if isinstance(t, ast.Name):
                            c["consts"][t.id] = ...
                elif isinstance(item, ast.ClassDef):
                    c["consts"][item.name] = ...
            classes[node.name] = c
    return funcs, classes, consts


FUNCS, CLASSES, CONSTS = _parse_stub()


def _stub_method(cls, name):
    """Overloads for cls.name, following stub bases past generic (*args, **kwargs) ones."""
    seen = []
    while cls in CLASSES:
        sigs = CLASSES[cls]["methods"].get(name)
        if sigs and not all(s.generic for s in sigs):
            return sigs
        if sigs:
            seen = sigs
        bases = CLASSES[cls]["bases"]
        cls = bases[0] if bases else None
    return seen or None


def _compatible(fn, sigs, method):
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if method and params and params[0].name in ("self", "cls"):
        params = params[1:]
    kinds = inspect.Parameter
    assert not any(p.kind in (kinds.VAR_POSITIONAL, kinds.VAR_KEYWORD) for p in params), (
        "mock %s takes *args/**kwargs: it would accept what rp2 rejects" % fn.__qualname__)
    pos = [p.name for p in params if p.kind in (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)]
    kw = {p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
    if any(s.generic for s in sigs):
        return None
    if not any(s.pos[: len(pos)] == pos or (s.varargs and s.pos == pos[: len(s.pos)]) for s in sigs):
        return "positional %s not a prefix of any stub overload %s" % (pos, [s.pos for s in sigs])
    stub_kw = set().union(*(s.kw for s in sigs))
    if any(s.varkw for s in sigs):
        return None
    extra = kw - stub_kw - set(pos[: max(len(s.pos) for s in sigs)])
    # positional-only on the board but keyword-capable in the mock is unavoidable (see top)
    extra -= {n for s in sigs for n in s.pos}
    if extra:
        return "keywords %s not in the stub (%s)" % (sorted(extra), sorted(stub_kw))
    return None


def _public_mock():
    for name, obj in vars(machine).items():
        if name.startswith("_") or name.startswith("sim_") or isinstance(obj, types.ModuleType):
            continue
        if name == "const":
            continue
        yield name, obj


def _public_members(cls):
    for name, obj in vars(cls).items():
        if name in ("__init__", "__call__") or not name.startswith("_"):
            yield name, obj
    for base in cls.__mro__[1:]:
        if base is object:
            break
        for name, obj in vars(base).items():
            if (name in ("__init__", "__call__") or not name.startswith("_")) and name not in vars(cls):
                yield name, obj


MOCK_NAMES = sorted(n for n, _ in _public_mock())


def test_stub_parsed():
    assert {"Pin", "I2C", "SoftI2C", "PWM", "ADC", "WDT", "RTC", "Timer"} <= set(CLASSES)
    assert CONSTS["WDT_RESET"] == 3 and CONSTS["PWRON_RESET"] == 1
    assert len(MOCK_NAMES) > 15


@pytest.mark.parametrize("name", MOCK_NAMES)
def test_mock_name_exists_in_stub_with_compatible_signature(name):
    obj = getattr(machine, name)
    if inspect.isclass(obj):
        assert name in CLASSES, "machine.%s is not in the rp2 stubs" % name
        for mname, member in _public_members(obj):
            if callable(member) and not inspect.isclass(member):
                sigs = _stub_method(name, mname)
                assert sigs, "%s.%s is not in the rp2 stubs" % (name, mname)
                err = _compatible(member, sigs, True)
                assert err is None, "%s.%s: %s" % (name, mname, err)
            elif isinstance(member, int):
                consts = CLASSES[name]["consts"]
                assert mname in consts, "%s.%s is not in the rp2 stubs" % (name, mname)
                if consts[mname] is not ...:
                    assert consts[mname] == member, "%s.%s = %r, rp2 has %r" % (name, mname, member, consts[mname])
    elif callable(obj):
        assert name in FUNCS, "machine.%s() is not in the rp2 stubs" % name
        err = _compatible(obj, FUNCS[name], False)
        assert err is None, "machine.%s: %s" % (name, err)
    else:
        assert name in CONSTS, "machine.%s is not in the rp2 stubs" % name
        if CONSTS[name] is not ...:
            assert CONSTS[name] == obj


def test_checker_rejects_incompatible_signatures():
    # The rule has teeth: a wrong name, order or keyword is caught.
    def writeto(self, address, buf, stop=True):
        pass

    def readfrom_mem(self, addr, memaddr, nbytes, *, addrsize=8, retries=3):
        pass

    def value(self, x=None, y=None):
        pass

    assert _compatible(writeto, _stub_method("I2C", "writeto"), True)
    assert _compatible(readfrom_mem, _stub_method("I2C", "readfrom_mem"), True)
    assert _compatible(value, _stub_method("Pin", "value"), True)
    assert _compatible(machine.I2C.writeto, _stub_method("SoftI2C", "writeto"), True) is None


# --- firmware usage ---------------------------------------------------------------------
def machine_uses(source):
    """(name, attr-or-None) pairs for every `machine` name a module uses."""
    tree = ast.parse(source)
    mod_aliases, name_aliases, uses = set(), {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name in ("machine", "umachine"):
                    mod_aliases.add(a.asname or a.name)
        elif isinstance(node, ast.ImportFrom) and node.module in ("machine", "umachine"):
            for a in node.names:
                uses.add((a.name, None))
                name_aliases[a.asname or a.name] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            v = node.value
            if isinstance(v, ast.Name) and v.id in mod_aliases:
                uses.add((node.attr, None))
            elif isinstance(v, ast.Attribute) and isinstance(v.value, ast.Name) and v.value.id in mod_aliases:
                uses.add((v.attr, node.attr))
            elif isinstance(v, ast.Name) and v.id in name_aliases:
                uses.add((name_aliases[v.id], node.attr))
    return uses


def _check_uses(uses, where):
    for name, attr in sorted(uses, key=str):
        assert not name.startswith("sim_"), "%s uses the simulator hook machine.%s" % (where, name)
        assert hasattr(machine, name), "%s uses machine.%s, which the mock (and so the board API) lacks" % (where, name)
        if attr is not None and inspect.isclass(getattr(machine, name)):
            assert hasattr(getattr(machine, name), attr), "%s uses machine.%s.%s" % (where, name, attr)


def test_scanner_finds_all_forms():
    src = (
        "import machine\nimport machine as m\nfrom machine import Pin as P, I2C\n"
        "machine.freq()\nm.WDT(timeout=1)\nP(1, P.OUT)\nmachine.Pin.IRQ_RISING\nI2C(0).scan()\n"
    )
    assert machine_uses(src) >= {("freq", None), ("WDT", None), ("Pin", None), ("Pin", "OUT"),
                                 ("Pin", "IRQ_RISING"), ("I2C", None), ("I2C", None)}
    with pytest.raises(AssertionError):
        _check_uses(machine_uses("from machine import SPI\n"), "example")  # not mocked
    with pytest.raises(AssertionError):
        _check_uses(machine_uses("import machine\nmachine.Pin.IRQ_LOW_LEVEL\n"), "example")


FIRMWARE_FILES = sorted(FIRMWARE.rglob("*.py"))


@pytest.mark.parametrize("path", FIRMWARE_FILES, ids=lambda p: str(p.relative_to(FIRMWARE)))
def test_firmware_uses_only_what_the_mock_has(path):
    _check_uses(machine_uses(path.read_text()), path.name)
