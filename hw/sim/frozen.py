# The "frozen" modules of the virtual unit: what hw/rp2/manifest.py freezes into our rp2
# build, read from firmware/ at start-up and kept on a read-only RAM filesystem mounted at
# '/.frozen' (see unit.py for why a VFS and where it is mounted). MicroPython only.
import sys
import vfs


class Ram:
    # A RAM block device for the read-only "frozen" filesystem.
    def __init__(self, nblocks, bs=512):
        self.bs = bs
        self.n = nblocks
        self.d = bytearray(nblocks * bs)

    def readblocks(self, b, buf, off=0):
        o = b * self.bs + off
        buf[:] = memoryview(self.d)[o : o + len(buf)]

    def writeblocks(self, b, buf, off=None):
        o = b * self.bs + (off or 0)
        self.d[o : o + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        return 0


def files():
    # What hw/rp2/manifest.py freezes (its module("NAME.py", ...) lines), read from firmware/
    # now: the host filesystem goes away at the remount.
    here = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
    root = here + "/../.."
    names = []
    with open(root + "/hw/rp2/manifest.py") as f:
        for line in f:
            line = line.strip()
            if line.startswith('module("'):
                names.append(line.split('"')[1])
    out = []
    for n in names:
        with open(root + "/firmware/" + n, "rb") as f:
            out.append((n, f.read()))
    return out


def mount(files):
    size = 0
    for n, data in files:
        size += len(data)
    ram = Ram(size // 512 + 2 * len(files) + 16)
    vfs.VfsLfs2.mkfs(ram)
    fs = vfs.VfsLfs2(ram)
    vfs.mount(fs, "/.frozen")
    for n, data in files:
        with open("/.frozen/" + n, "wb") as f:
            f.write(data)
    vfs.umount("/.frozen")
    return ram
