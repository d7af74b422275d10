# Checks of hw/sim/flash.py through the real vfs.VfsLfs2 (MicroPython only).
# Run by tests/test_flash.py: `import flash_checks; flash_checks.NAME(args)`; any failure raises,
# which makes micropython exit non-zero; success prints one line starting with "OK".
import os
import vfs

import flash
import vclock


def _content(name, gen, size):
    # Deterministic, distinguishable contents per file and generation.
    b = bytearray(size)
    x = (sum(name.encode()) * 131 + gen * 7919) & 0xFF
    for i in range(size):
        b[i] = (x + i * 13) & 0xFF
    return bytes(b)


def _mount(img, **kw):
    dev = flash.Flash(img, **kw)
    return dev, vfs.VfsLfs2(dev, progsize=256)


def _read(fs, path):
    f = fs.open(path, "rb")
    try:
        return f.read()
    finally:
        f.close()


def _write(fs, path, data):
    f = fs.open(path, "wb")
    try:
        f.write(data)
        f.close()
    finally:
        try:
            f.close()  # after a cut: fails with EIO now rather than noisily in a gc finaliser
        except OSError:
            pass


def _exists(fs, path):
    try:
        fs.stat(path)
        return True
    except OSError:
        return False


def basic(img):
    """Format, write, remount from the file, read back; time and stats are charged."""
    flash.create_image(img)
    dev = flash.Flash(img)
    assert dev.is_blank()
    t0 = vclock.now_us()
    vfs.VfsLfs2.mkfs(dev, progsize=256)
    fs = vfs.VfsLfs2(dev, progsize=256)
    data = _content("a", 1, 10000)
    _write(fs, "a.bin", data)
    fs.mkdir("d")
    _write(fs, "d/b.txt", b"hello")
    st = dev.stats()
    assert st["bytes_programmed"] > 10000, st
    assert st["blocks_erased"] > 0, st
    assert st["longest_blackout_us"] >= 45000, st  # at least one sector erase
    assert vclock.now_us() - t0 >= st["blocks_erased"] * 45000, (vclock.now_us(), st)
    dev.close()
    # A fresh device over the same file: the image persisted.
    dev2, fs2 = _mount(img)
    assert not dev2.is_blank()
    assert _read(fs2, "a.bin") == data
    assert _read(fs2, "d/b.txt") == b"hello"
    assert sorted(n for n, *_ in fs2.ilistdir("/")) == ["a.bin", "d"]
    dev2.close()
    print("OK basic", st["bytes_programmed"], st["blocks_erased"], st["longest_blackout_us"])


def power_cuts(img, rounds, seed):
    """Cut the power at random block operations while files are written and rewritten; every
    time the image must mount again, files closed before the cut must be intact, and a file
    being rewritten must hold either its old or its new contents."""
    rng = flash._Rand(seed)
    flash.create_image(img)
    dev = flash.Flash(img)
    vfs.VfsLfs2.mkfs(dev, progsize=256)
    dev.close()
    done = {}  # name -> contents that completed (close() returned) before any cut
    gen = 0
    cuts = 0
    for r in range(rounds):
        dev, fs = _mount(img, seed=seed + r)
        # The last round's interrupted file: old or new contents, or absent if it was new.
        for name, data in done.items():
            got = _read(fs, name)
            if isinstance(data, tuple):
                assert got in data, (r, name, len(got))
                done[name] = got
            else:
                assert got == data, (r, name, len(got), len(data))
        dev.arm_power_cut(1 + rng.below(60))
        try:
            while True:
                gen += 1
                name = "f%d.bin" % rng.below(8)
                data = _content(name, gen, 1 + rng.below(9000))
                old = done.get(name)
                done[name] = (old, data) if old is not None else (b"", data)
                _write(fs, name, data)
                done[name] = data
                if rng.below(4) == 0 and len(done) > 3:
                    victim = sorted(done)[0]
                    done[victim] = (done[victim], None)
                    fs.remove(victim)
                    del done[victim]
        except flash.PowerCut:
            cuts += 1
        assert dev.dead
        assert dev.readblocks(0, bytearray(16)) == -5  # no power: EIO
        dev.close()
        # Removal interrupted: either still there (old contents) or gone.
        dev, fs = _mount(img)
        for name in list(done):
            v = done[name]
            if isinstance(v, tuple) and v[1] is None:
                if _exists(fs, name):
                    assert _read(fs, name) == v[0]
                    done[name] = v[0]
                else:
                    del done[name]
            elif isinstance(v, tuple) and not _exists(fs, name):
                # A new file whose creation did not commit.
                assert v[0] == b"", name
                del done[name]
        dev.close()
    # Finally the filesystem is still fully usable.
    dev, fs = _mount(img)
    _write(fs, "after.bin", b"x" * 5000)
    assert _read(fs, "after.bin") == b"x" * 5000
    dev.close()
    print("OK power_cuts", rounds, cuts, gen)
