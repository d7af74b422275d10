"""Provenance of the committed rp2 image (hw/rp2/image/PROVENANCE.json) and its staleness check.

    python3 hw/rp2/provenance.py write --elf firmware.elf --mpy MICROPYTHON_DIR ...   (build.sh)
    python3 hw/rp2/provenance.py check        exit 1 and say which frozen source changed

The image freezes the modules hw/rp2/manifest.py names. Their SHA-256 at build time is recorded;
`check` (and tests/test_rp2_image.py) compares them with the sources now, so a change to a frozen
module without a rebuild fails instead of running an image that holds the old code.
Standard library only: build.sh runs it with the system's python3.
"""

import argparse
import datetime
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
IMAGE_DIR = HERE / "image"
PROVENANCE = IMAGE_DIR / "PROVENANCE.json"
MANIFEST = HERE / "manifest.py"

# Licence notices of what the image contains (paths in the MicroPython checkout, then the
# toolchain's runtime libraries as Debian ships their copyright files).
_LICENCES = {
    "micropython-LICENSE.txt": "LICENSE",
    "pico-sdk-LICENSE.txt": "lib/pico-sdk/LICENSE.TXT",
    "tinyusb-LICENSE.txt": "lib/tinyusb/LICENSE",
    "mbedtls-LICENSE.txt": "lib/mbedtls/LICENSE",
}
# Libraries in MicroPython's tree without a LICENSE file: their notice is the source's header.
_HEADER_LICENCES = {
    "littlefs-notice.txt": "lib/littlefs/lfs2.c",
    "oofatfs-notice.txt": "lib/oofatfs/ff.c",
    "uzlib-notice.txt": "lib/uzlib/tinflate.c",
    "re1.5-notice.txt": "lib/re1.5/re1.5.h",
}
_SYSTEM_LICENCES = {
    "newlib-copyright.txt": "/usr/share/doc/libnewlib-arm-none-eabi/copyright",
    "gcc-arm-none-eabi-copyright.txt": "/usr/share/doc/gcc-arm-none-eabi/copyright",
}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def frozen_sources():
    """{name: path} of our modules the manifest freezes (its module("NAME.py", base_path=...) lines)."""
    out = {}
    for line in MANIFEST.read_text().splitlines():
        m = re.match(r'\s*module\("([^"]+)",\s*base_path="([^"]+)"\)', line)
        if m:
            out[m.group(1)] = (HERE / m.group(2) / m.group(1)).resolve()
    return out


def frozen_hashes():
    return {name: sha256(p) for name, p in sorted(frozen_sources().items())}


def stale():
    """[(name, why)] of frozen sources that differ from what the committed image was built from."""
    rec = json.loads(PROVENANCE.read_text())
    built = rec["frozen_sources_sha256"]
    now = frozen_hashes()
    out = []
    for name in sorted(set(built) | set(now)):
        if name not in now:
            out.append((name, "frozen in the image, no longer in the manifest"))
        elif name not in built:
            out.append((name, "in the manifest, not in the image"))
        elif built[name] != now[name]:
            out.append((name, "source changed since the image was built"))
    if sha256(MANIFEST) != rec["manifest_sha256"] and not out:
        out.append(("manifest.py", "changed since the image was built"))
    if sha256(IMAGE_DIR / "firmware.uf2") != rec["image_sha256"]:
        out.append(("firmware.uf2", "does not match the SHA-256 recorded at build time"))
    return out


def _git(mpy, *args):
    return subprocess.check_output(["git", "-C", str(mpy), *args], text=True).strip()


def write(a):
    mpy = Path(a.mpy)
    subs = {}
    for line in _git(mpy, "submodule", "status").splitlines():
        parts = line.strip(" +-U").split()
        if len(parts) >= 2 and parts[1] in ("lib/pico-sdk", "lib/tinyusb", "lib/mbedtls", "lib/micropython-lib"):
            subs[parts[1]] = parts[0]
    size = subprocess.check_output(["arm-none-eabi-size", a.elf], text=True).splitlines()[-1].split()
    rec = {
        "image": "firmware.uf2",
        "image_sha256": sha256(IMAGE_DIR / "firmware.uf2"),
        "board": "RPI_PICO (RP2040, 2 MiB flash, 1408 KiB LittleFS)",
        "built_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "micropython": {"commit": _git(mpy, "rev-parse", "HEAD"), "describe": _git(mpy, "describe", "--tags", "--always")},
        "submodules": subs,
        "picotool": a.picotool,
        "toolchain": a.gcc,
        "patches": sorted(p.name for p in (HERE / "patches").glob("*.patch")),
        "configuration": {
            "BOARD": "RPI_PICO",
            "FROZEN_MANIFEST": "hw/rp2/manifest.py",
            "VM_MAX_STATE_ON_STACK": "64 words (stock 11): patches/vm-frames-on-stack.patch",
        },
        "elf_sizes": {"text": int(size[0]), "data": int(size[1]), "bss": int(size[2])},
        "manifest_sha256": sha256(MANIFEST),
        "frozen_sources_sha256": frozen_hashes(),
        "rebuild": "IONTO_MIRRORS=/dir/of/git/mirrors make rp2-image   (hw/rp2/README.md)",
    }
    lic = IMAGE_DIR / "LICENCES"
    lic.mkdir(exist_ok=True)
    for name, rel in _LICENCES.items():
        if (mpy / rel).exists():
            shutil.copyfile(mpy / rel, lic / name)
    for name, rel in _HEADER_LICENCES.items():
        if (mpy / rel).exists():
            text = (mpy / rel).read_text(errors="replace")
            end = text.find("*/")
            if text.lstrip().startswith("/*") and end > 0:
                (lic / name).write_text("From %s:\n\n%s\n" % (rel, text[: end + 2]))
    for name, path in _SYSTEM_LICENCES.items():
        if Path(path).exists():
            shutil.copyfile(path, lic / name)
    PROVENANCE.write_text(json.dumps(rec, indent=1) + "\n")
    print(f"provenance.py: {PROVENANCE.relative_to(ROOT)} written")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--elf", required=True)
    w.add_argument("--mpy", required=True)
    w.add_argument("--gcc", required=True)
    w.add_argument("--picotool", required=True)
    sub.add_parser("check")
    a = ap.parse_args(argv)
    if a.cmd == "write":
        write(a)
        return 0
    bad = stale()
    for name, why in bad:
        print(f"rp2 image is stale: {name}: {why}; rebuild it: make rp2-image (hw/rp2/README.md)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
