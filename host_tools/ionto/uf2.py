"""UF2 files and the rp2 BOOTSEL drive: check a MicroPython runtime before it goes onto a board.

A UF2 file is a run of 512-byte blocks (https://github.com/microsoft/uf2):

    0   magic 0x0A324655      4  magic 0x9E5D5157    8  flags       12 target address
    16  payload size          20 block number        24 number of blocks
    28  family ID (flag 0x2000) or file size          32 payload (476 bytes at most)
    508 magic 0x0AB16F30

A file may hold several images one after another (picotool puts an "absolute" block before an
RP2350 image, and "universal" files carry one image per chip): each image numbers its blocks
0..N-1 with the same N. The boot ROM of an rp2 in BOOTSEL mode shows a USB drive whose
INFO_UF2.TXT names the chip (Board-ID: RPI-RP2 or RP2350); the ROM ignores images of other
families, so a wrong file would copy "fine" and leave the board as it was. Hence the checks.
"""
import os
import struct
import time
from pathlib import Path

from .errors import EXIT_FIRMWARE, EXIT_NO_DEVICE, EXIT_USAGE, IontoError

BLOCK = 512
MAX_PAYLOAD = 476
MAGIC0 = 0x0A324655
MAGIC1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_NOT_MAIN_FLASH = 0x00000001
FLAG_FILE_CONTAINER = 0x00001000
FLAG_FAMILY = 0x00002000

RP2040 = 0xE48BFF56
RP2350_ABSOLUTE = 0xE48BFF57
RP2350_DATA = 0xE48BFF58
RP2350_ARM_S = 0xE48BFF59
RP2350_RISCV = 0xE48BFF5A
FAMILY_NAMES = {
    RP2040: "RP2040",
    RP2350_ABSOLUTE: "RP2350 absolute",
    RP2350_DATA: "RP2350 data",
    RP2350_ARM_S: "RP2350 ARM-S",
    RP2350_RISCV: "RP2350 RISC-V",
}
# Board-ID in INFO_UF2.TXT -> (chip, families that carry a runtime for it). Images of the other
# rp2 families may ride along (absolute/data blocks, universal files): the ROM skips what is not its own.
BOARDS = {
    "RPI-RP2": ("RP2040", (RP2040,)),
    "RP2350": ("RP2350", (RP2350_ARM_S, RP2350_RISCV)),
}
INFO = "INFO_UF2.TXT"

_HEAD = struct.Struct("<8I")  # magic0, magic1, flags, addr, size, block, nblocks, family


def family_name(fid):
    return FAMILY_NAMES.get(fid, "0x%08X" % fid)


class Image:
    """One run of blocks numbered 0..N-1 in a UF2 file."""

    def __init__(self, family, nblocks, first_block):
        self.family = family  # None: no family ID flag
        self.nblocks = nblocks
        self.first_block = first_block  # index of its first block in the file
        self.count = 0
        self.payload = 0  # bytes
        self.lo = None  # target address range
        self.hi = None

    def __repr__(self):
        return "Image(%s, %d blocks)" % (family_name(self.family) if self.family is not None else "no family",
                                         self.nblocks)


def parse(data):
    """Check the block structure of a UF2 file (bytes) -> [Image]. Raises IontoError(EXIT_FIRMWARE)
    with one line saying what is wrong (truncated, corrupt block, gap, ...)."""
    n = len(data)
    if n == 0:
        raise IontoError(EXIT_FIRMWARE, "the UF2 file is empty")
    if n % BLOCK:
        raise IontoError(EXIT_FIRMWARE, "the UF2 file is truncated: %d bytes is not a whole number of "
                         "%d-byte blocks; download it again" % (n, BLOCK))
    mv = memoryview(data)
    images = []
    cur = None
    for i in range(n // BLOCK):
        off = i * BLOCK
        m0, m1, flags, addr, size, bno, nblocks, fam = _HEAD.unpack_from(mv, off)
        (mend,) = struct.unpack_from("<I", mv, off + BLOCK - 4)
        if m0 != MAGIC0 or m1 != MAGIC1 or mend != MAGIC_END:
            what = "not a UF2 file" if i == 0 else "corrupt UF2 file"
            raise IontoError(EXIT_FIRMWARE, "%s: block %d has wrong magic numbers; download it again" % (what, i))
        if flags & FLAG_FILE_CONTAINER:
            raise IontoError(EXIT_FIRMWARE, "the UF2 file is a file container (block %d), not a firmware image" % i)
        if size == 0 or size > MAX_PAYLOAD:
            raise IontoError(EXIT_FIRMWARE, "corrupt UF2 file: block %d carries %d payload bytes (1..%d allowed)"
                             % (i, size, MAX_PAYLOAD))
        if nblocks == 0 or bno >= nblocks:
            raise IontoError(EXIT_FIRMWARE, "corrupt UF2 file: block %d is numbered %d of %d" % (i, bno, nblocks))
        family = fam if flags & FLAG_FAMILY else None
        if bno == 0:
            if cur is not None and cur.count != cur.nblocks:
                raise IontoError(EXIT_FIRMWARE, "the UF2 file has a gap: image at block %d ends after %d of its %d "
                                 "blocks" % (cur.first_block, cur.count, cur.nblocks))
            cur = Image(family, nblocks, i)
            images.append(cur)
        elif cur is None or bno != cur.count:
            expect = 0 if cur is None else cur.count
            raise IontoError(EXIT_FIRMWARE, "the UF2 file has a gap: block %d is numbered %d where %d was due"
                             % (i, bno, expect))
        elif nblocks != cur.nblocks or family != cur.family:
            raise IontoError(EXIT_FIRMWARE, "corrupt UF2 file: block %d says %d blocks of family %s, its image "
                             "started with %d of %s" % (i, nblocks, family_name(family) if family is not None
                                                         else "none", cur.nblocks, family_name(cur.family)
                                                         if cur.family is not None else "none"))
        cur.count += 1
        cur.payload += size
        cur.lo = addr if cur.lo is None else min(cur.lo, addr)
        cur.hi = addr + size if cur.hi is None else max(cur.hi, addr + size)
    if cur.count != cur.nblocks:
        raise IontoError(EXIT_FIRMWARE, "the UF2 file is truncated: it ends after %d of %d blocks; download it "
                         "again" % (cur.count, cur.nblocks))
    return images


def check(data, board_id):
    """parse() plus the family check for the board in BOOTSEL mode (its Board-ID) -> [Image]."""
    images = parse(data)
    try:
        chip, runtime = BOARDS[board_id]
    except KeyError:
        raise IontoError(EXIT_FIRMWARE, "the BOOTSEL drive says Board-ID %r, not an RP2040 or RP2350: not a "
                         "board for this unit" % board_id)
    for im in images:
        if im.family is None:
            raise IontoError(EXIT_FIRMWARE, "the UF2 file has no family ID (block %d): the %s boot ROM would "
                             "ignore it; use a MicroPython build for %s" % (im.first_block, chip, chip))
        if im.family not in FAMILY_NAMES:
            raise IontoError(EXIT_FIRMWARE, "wrong firmware: the UF2 file is for family %s, not an rp2 chip; use "
                             "the MicroPython build for %s" % (family_name(im.family), chip))
    if not any(im.family in runtime for im in images):
        fams = ", ".join(sorted(set(family_name(im.family) for im in images)))
        raise IontoError(EXIT_FIRMWARE, "wrong firmware: the UF2 file is for %s, the board is an %s; use the "
                         "MicroPython build for %s" % (fams, chip, chip))
    return images


# --- the BOOTSEL drive ---------------------------------------------------------------------
def read_info(folder):
    """{key: value} of folder/INFO_UF2.TXT, or None when there is none."""
    p = Path(folder) / INFO
    try:
        text = p.read_text(errors="replace")
    except OSError:
        return None
    info = {}
    for line in text.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            info[k.strip()] = v.strip()
    return info


def _mount_points():
    """Where removable drives appear on Linux, macOS and Windows."""
    seen = []

    def add(p):
        if p not in seen:
            seen.append(p)

    try:
        with open("/proc/mounts") as f:
            for line in f:
                w = line.split()
                if len(w) > 2 and w[2] in ("vfat", "msdos", "fat", "fuseblk", "exfat"):
                    add(w[1].replace("\\040", " "))
    except OSError:
        pass
    user = os.environ.get("USER") or os.environ.get("USERNAME") or ""
    for base in ("/media/" + user, "/run/media/" + user, "/media", "/mnt", "/Volumes"):
        try:
            for e in sorted(os.listdir(base)):
                add(os.path.join(base, e))
        except OSError:
            pass
    if os.name == "nt":  # pragma: no cover - drive letters
        for c in "DEFGHIJKLMNOPQRSTUVWXYZ":
            add(c + ":\\")
    return seen


def find_bootsel(folder=None, timeout=0.0):
    """(path, Board-ID) of an rp2 in BOOTSEL mode: `folder` if given (it must hold INFO_UF2.TXT),
    else the first mount point whose INFO_UF2.TXT names an RP2040 or RP2350. Waits up to
    `timeout` seconds for one to appear."""
    deadline = time.monotonic() + timeout
    while True:
        cands = [folder] if folder else _mount_points()
        for c in cands:
            info = read_info(c)
            if info is not None and (folder or info.get("Board-ID") in BOARDS):
                bid = info.get("Board-ID", "")
                return str(c), bid
        if time.monotonic() >= deadline:
            break
        time.sleep(0.25)
    if folder:
        if not Path(folder).is_dir():
            raise IontoError(EXIT_USAGE, "--bootsel-dir %s: no such folder" % folder)
        raise IontoError(EXIT_NO_DEVICE, "%s has no %s: not an rp2 BOOTSEL drive" % (folder, INFO))
    raise IontoError(EXIT_NO_DEVICE, "no rp2 BOOTSEL drive found: hold BOOTSEL while plugging the board in "
                     "(a drive named RPI-RP2 or RP2350 appears), or name its folder with --bootsel-dir")


def copy_to(data, folder, name="ionto-runtime.uf2", progress=None):
    """Write the UF2 onto the BOOTSEL drive. The board reboots as soon as it has the last block,
    so the drive may vanish before close() returns: that counts as done once all was written."""
    path = Path(folder) / name
    written = 0
    step = 64 * BLOCK
    try:
        with open(path, "wb") as f:
            for i in range(0, len(data), step):
                f.write(data[i:i + step])
                written = i + len(data[i:i + step])
                if progress is not None:
                    progress(written)
            f.flush()
            try:
                os.fsync(f.fileno())
            except OSError:
                pass
    except OSError as e:
        if written < len(data):
            raise IontoError(EXIT_NO_DEVICE, "copying onto the BOOTSEL drive %s failed after %d of %d bytes (%s): "
                             "hold BOOTSEL, plug the board in again and retry"
                             % (folder, written, len(data), e.strerror or e))
    return str(path)


def make(payload, family=RP2040, base=0x10000000, payload_size=256, flags=FLAG_FAMILY):
    """A UF2 file for `payload` (bytes) at `base`: for tests and for wrapping a built image."""
    nb = max(1, (len(payload) + payload_size - 1) // payload_size)
    out = bytearray()
    for i in range(nb):
        chunk = payload[i * payload_size:(i + 1) * payload_size]
        blk = bytearray(BLOCK)
        _HEAD.pack_into(blk, 0, MAGIC0, MAGIC1, flags, base + i * payload_size, payload_size, i, nb, family)
        blk[32:32 + len(chunk)] = chunk
        struct.pack_into("<I", blk, BLOCK - 4, MAGIC_END)
        out += blk
    return bytes(out)
