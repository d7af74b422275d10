# Firmware integrity: the files on the flash against the manifest written at deployment.
#
# manifest.json = {"version": "0.1.0", "files": {"app.py": "<sha-256 hex>", ...}}
# The unit refuses to treat when a listed file is missing or differs: a half-finished copy or
# a tampered file must not drive current. The host tools (ionto flash) write the manifest;
# build_manifest() is the same code, so both sides hash alike.
import json

try:
    import hashlib
except ImportError:  # pragma: no cover - every supported runtime has it
    hashlib = None
from binascii import hexlify

MANIFEST = "manifest.json"
_CHUNK = 512


def file_sha256(path):
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    mv = memoryview(buf)
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(mv[:n])
    return hexlify(h.digest()).decode()


def check(root=""):
    """(ok, text): text says what is wrong, in words, or the version when intact."""
    pre = root + "/" if root and not root.endswith("/") else root
    try:
        with open(pre + MANIFEST) as f:
            man = json.load(f)
        files = man["files"]
        version = man["version"]
    except OSError:
        return False, "no firmware manifest: deploy with ionto flash"
    except (ValueError, KeyError, TypeError):
        return False, "firmware manifest unreadable: re-flash with ionto flash"
    for name in files:
        try:
            digest = file_sha256(pre + name)
        except OSError:
            return False, "firmware file missing: %s" % name
        if digest != files[name]:
            return False, "firmware file changed: %s" % name
    return True, "firmware %s intact (%d files)" % (version, len(files))


def build_manifest(root, names, version):
    """The manifest for `names` under `root` (a dict, ready for json.dump)."""
    pre = root + "/" if root and not root.endswith("/") else root
    files = {}
    for n in names:
        files[n] = file_sha256(pre + n)
    return {"version": version, "files": files}
