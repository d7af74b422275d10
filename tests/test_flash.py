"""hw/sim/flash.py: the block device on CPython, and through vfs.VfsLfs2 under MicroPython."""
import flash
import pytest
import vclock


@pytest.fixture
def img(tmp_path):
    p = tmp_path / "flash.img"
    flash.create_image(str(p))
    return p


def test_image_is_shaped_like_the_pico(img):
    assert img.stat().st_size == 1408 * 1024
    assert img.read_bytes() == b"\xff" * (1408 * 1024)
    d = flash.Flash(str(img))
    assert d.ioctl(4, 0) == 352
    assert d.ioctl(5, 0) == 4096
    assert d.is_blank()
    d.close()


def test_program_erase_persist_and_nor_semantics(img):
    d = flash.Flash(str(img))
    d.writeblocks(3, b"\x0f" * 256, 512)
    buf = bytearray(256)
    d.readblocks(3, buf, 512)
    assert buf == b"\x0f" * 256
    # Programming only clears bits: 0x0f & 0xf0 == 0.
    d.writeblocks(3, b"\xf0" * 256, 512)
    d.readblocks(3, buf, 512)
    assert buf == b"\x00" * 256
    d.close()
    # Writes are in the file: a new device over the same image sees them.
    d2 = flash.Flash(str(img))
    d2.readblocks(3, buf, 512)
    assert buf == b"\x00" * 256
    assert d2.ioctl(6, 3) == 0  # erase
    d2.readblocks(3, buf, 512)
    assert buf == b"\xff" * 256
    d2.close()
    raw = img.read_bytes()
    assert raw[3 * 4096 : 4 * 4096] == b"\xff" * 4096


def test_simple_protocol_erases_then_programs(img):
    d = flash.Flash(str(img))
    d.writeblocks(5, b"\x00" * 4096, 0)
    d.writeblocks(5, b"\xaa" * 4096)  # no offset: whole block, erased first (rp2 Flash)
    buf = bytearray(4096)
    d.readblocks(5, buf)
    assert buf == b"\xaa" * 4096


def test_durations_are_charged_to_the_clock_and_recorded(img):
    d = flash.Flash(str(img))
    t0 = vclock.now_us()
    d.ioctl(6, 7)
    assert vclock.now_us() - t0 == 45_000
    t0 = vclock.now_us()
    d.writeblocks(7, b"\x00" * 4096, 0)  # 16 pages back to back: one blackout
    assert vclock.now_us() - t0 == 16 * 700
    d.writeblocks(7, b"\x00" * 10, 250)  # straddles a page boundary: two page programs
    st = d.stats()
    assert st["blocks_erased"] == 1
    assert st["bytes_programmed"] == 4096 + 10
    assert st["pages_programmed"] == 18
    assert st["longest_blackout_us"] == 45_000
    d.set_worst_case()
    t0 = vclock.now_us()
    d.ioctl(6, 8)
    assert vclock.now_us() - t0 == 400_000
    assert d.stats()["longest_blackout_us"] == 400_000


def test_power_cut_lands_partially_then_the_device_is_dead(img):
    d = flash.Flash(str(img), seed=3)
    d.arm_power_cut(2)
    d.writeblocks(1, b"\x11" * 4096, 0)  # op 1 completes
    with pytest.raises(flash.PowerCut):
        d.writeblocks(2, b"\x22" * 4096, 0)  # op 2: cut part-way
    assert d.dead
    raw = img.read_bytes()
    assert raw[4096:8192] == b"\x11" * 4096
    blk = raw[8192:12288]
    n = len(blk) - len(blk.lstrip(b"\x22"))  # the prefix that made it
    assert n < 4096 and blk[n:] == b"\xff" * (4096 - n)
    # Without power every access fails (EIO to LittleFS) and nothing changes.
    assert d.readblocks(0, bytearray(16)) == -5
    assert d.writeblocks(3, b"\x00" * 16, 0) == -5
    assert d.ioctl(6, 1) == -5
    assert img.read_bytes() == raw


def test_power_cut_hook_runs_instead_of_raising_first(img):
    seen = []
    d = flash.Flash(str(img), on_power_cut=lambda: seen.append(vclock.now_us()))
    d.arm_power_cut(1)
    with pytest.raises(flash.PowerCut):
        d.ioctl(6, 4)
    assert len(seen) == 1


def test_same_seed_same_cut(tmp_path):
    out = []
    for i in range(2):
        p = tmp_path / ("i%d.img" % i)
        flash.create_image(str(p))
        d = flash.Flash(str(p), seed=42)
        d.arm_power_cut(1)
        with pytest.raises(flash.PowerCut):
            d.writeblocks(0, b"\x00" * 4096, 0)
        out.append(p.read_bytes()[:4096])
    assert out[0] == out[1]


def test_littlefs_through_vfs_under_micropython(mpy, tmp_path):
    r = mpy("import flash_checks; flash_checks.basic(%r)" % str(tmp_path / "a.img"))
    assert r.stdout.startswith("OK basic")


@pytest.mark.parametrize("seed", [1, 2])
def test_power_cuts_at_random_points_leave_a_littlefs_that_mounts(mpy, tmp_path, seed):
    # 60 cuts per seed at random block operations while files are written, rewritten and
    # removed: each time the image mounts and completed files are intact.
    r = mpy("import flash_checks; flash_checks.power_cuts(%r, 60, %d)" % (str(tmp_path / "p.img"), seed))
    last = r.stdout.strip().splitlines()[-1].split()
    assert last[:2] == ["OK", "power_cuts"] and last[2] == last[3] == "60"
