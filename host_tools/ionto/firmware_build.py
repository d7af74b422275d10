"""Build the firmware bundle a unit runs: the files of firmware/ plus manifest.json.

The manifest is made by firmware/integrity.py itself (imported, not copied), so the unit's
boot check and the host hash files alike. `ionto flash` compiles to .mpy on top of
this; the virtual unit is seeded from the bundle.
"""
import shutil
from pathlib import Path

from .fw import firmware as _firmware_module
from .shipped import FIRMWARE


def version():
    return _firmware_module("version").VERSION


def build(dest, src=FIRMWARE):
    """Copy firmware/*.py into dest and write dest/manifest.json. Returns the manifest."""
    import json

    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    names = sorted(p.name for p in Path(src).glob("*.py"))
    for n in names:
        shutil.copyfile(Path(src) / n, dest / n)
    integrity = _firmware_module("integrity")
    man = integrity.build_manifest(str(dest), names, version())
    (dest / integrity.MANIFEST).write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    return man
