"""UF2 validation and the BOOTSEL drive (ionto/uf2.py), with synthetic UF2 files made here."""
import struct

import pytest

from ionto import uf2
from ionto.errors import EXIT_FIRMWARE, EXIT_NO_DEVICE, EXIT_USAGE, IontoError

PAYLOAD = bytes(range(256)) * 9 + b"tail"  # 2308 bytes -> 10 blocks of 256


def _err(fn, *a):
    with pytest.raises(IontoError) as ei:
        fn(*a)
    return ei.value


def _bootsel(tmp_path, board_id="RPI-RP2"):
    d = tmp_path / "RPI-RP2"
    d.mkdir()
    (d / "INFO_UF2.TXT").write_text("UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: %s\n" % board_id)
    return d


def test_a_good_rp2040_file_parses_into_one_image():
    data = uf2.make(PAYLOAD)
    assert len(data) == 10 * 512
    (im,) = uf2.check(data, "RPI-RP2")
    assert im.family == uf2.RP2040 and im.nblocks == 10 and im.count == 10
    assert im.payload == 10 * 256
    assert (im.lo, im.hi) == (0x10000000, 0x10000000 + 10 * 256)


def test_block_layout_matches_the_uf2_specification():
    data = uf2.make(b"\xaa" * 256, family=uf2.RP2350_ARM_S)
    m0, m1, flags, addr, size, bno, nb, fam = struct.unpack_from("<8I", data)
    assert (m0, m1) == (0x0A324655, 0x9E5D5157)
    assert struct.unpack_from("<I", data, 508)[0] == 0x0AB16F30
    assert flags == 0x2000 and addr == 0x10000000 and size == 256 and (bno, nb) == (0, 1)
    assert fam == 0xE48BFF59
    assert data[32:288] == b"\xaa" * 256


def test_rp2350_accepts_arm_riscv_and_an_absolute_block_before_the_image():
    for fam in (uf2.RP2350_ARM_S, uf2.RP2350_RISCV):
        assert uf2.check(uf2.make(PAYLOAD, family=fam), "RP2350")[0].family == fam
    # picotool's RP2350 files open with a one-block image of the "absolute" family.
    data = uf2.make(b"\xff" * 256, family=uf2.RP2350_ABSOLUTE, base=0x10FFFF00) + uf2.make(PAYLOAD, family=uf2.RP2350_ARM_S)
    ims = uf2.check(data, "RP2350")
    assert [i.family for i in ims] == [uf2.RP2350_ABSOLUTE, uf2.RP2350_ARM_S]
    # A universal file (one image per chip) suits either board.
    both = uf2.make(PAYLOAD, family=uf2.RP2040) + uf2.make(PAYLOAD, family=uf2.RP2350_ARM_S)
    assert len(uf2.check(both, "RPI-RP2")) == 2 and len(uf2.check(both, "RP2350")) == 2


def test_wrong_family_is_refused_with_the_chip_named():
    e = _err(uf2.check, uf2.make(PAYLOAD, family=uf2.RP2350_ARM_S), "RPI-RP2")
    assert e.code == EXIT_FIRMWARE and "RP2350 ARM-S" in e.message and "RP2040" in e.message
    e = _err(uf2.check, uf2.make(PAYLOAD, family=uf2.RP2040), "RP2350")
    assert e.code == EXIT_FIRMWARE and "wrong firmware" in e.message
    # Only data/absolute blocks: no runtime for the RP2350 in it.
    e = _err(uf2.check, uf2.make(PAYLOAD, family=uf2.RP2350_DATA), "RP2350")
    assert e.code == EXIT_FIRMWARE
    # Another vendor's family (SAMD21) or none at all.
    e = _err(uf2.check, uf2.make(PAYLOAD, family=0x68ED2B88), "RPI-RP2")
    assert e.code == EXIT_FIRMWARE and "0x68ED2B88" in e.message
    e = _err(uf2.check, uf2.make(PAYLOAD, flags=0), "RPI-RP2")
    assert e.code == EXIT_FIRMWARE and "no family ID" in e.message
    e = _err(uf2.check, uf2.make(PAYLOAD), "SAMD21")
    assert e.code == EXIT_FIRMWARE


def test_truncated_files_are_refused():
    data = uf2.make(PAYLOAD)
    e = _err(uf2.parse, data[:-100])  # cut mid-block
    assert e.code == EXIT_FIRMWARE and "truncated" in e.message
    e = _err(uf2.parse, data[:-512])  # cut at a block boundary: 9 of 10 blocks
    assert e.code == EXIT_FIRMWARE and "truncated" in e.message and "9 of 10" in e.message
    e = _err(uf2.parse, b"")
    assert e.code == EXIT_FIRMWARE


def test_gaps_and_corrupt_blocks_are_refused():
    data = bytearray(uf2.make(PAYLOAD))
    gap = bytes(data[:3 * 512] + data[4 * 512:])  # block 3 missing
    e = _err(uf2.parse, gap)
    assert e.code == EXIT_FIRMWARE and "gap" in e.message and "numbered 4 where 3 was due" in e.message

    bad = bytearray(data)
    struct.pack_into("<I", bad, 5 * 512 + 508, 0)  # end magic of block 5
    e = _err(uf2.parse, bytes(bad))
    assert e.code == EXIT_FIRMWARE and "block 5" in e.message and "magic" in e.message

    bad = bytearray(data)
    struct.pack_into("<I", bad, 2 * 512 + 16, 477)  # payload over 476
    e = _err(uf2.parse, bytes(bad))
    assert e.code == EXIT_FIRMWARE and "477" in e.message

    bad = bytearray(data)
    struct.pack_into("<I", bad, 7 * 512 + 24, 11)  # numBlocks disagrees within the image
    e = _err(uf2.parse, bytes(bad))
    assert e.code == EXIT_FIRMWARE and "block 7" in e.message

    # An image that stops early and a new one starts: a gap, not a second image.
    two = uf2.make(PAYLOAD)[:4 * 512] + uf2.make(PAYLOAD)
    e = _err(uf2.parse, two)
    assert e.code == EXIT_FIRMWARE and "4 of its 10" in e.message

    e = _err(uf2.parse, b"\x7fELF" + bytes(508))
    assert e.code == EXIT_FIRMWARE and "not a UF2 file" in e.message


def test_bootsel_drive_is_found_by_its_info_file(tmp_path):
    d = _bootsel(tmp_path)
    assert uf2.find_bootsel(str(d)) == (str(d), "RPI-RP2")
    assert uf2.read_info(d)["Model"] == "Raspberry Pi RP2"
    e = _err(uf2.find_bootsel, str(tmp_path))  # a folder without INFO_UF2.TXT
    assert e.code == EXIT_NO_DEVICE and "INFO_UF2.TXT" in e.message
    e = _err(uf2.find_bootsel, str(tmp_path / "nope"))
    assert e.code == EXIT_USAGE


def test_mount_point_search_finds_an_rp2_drive_and_skips_others(tmp_path, monkeypatch):
    other = tmp_path / "CIRCUITPY"
    other.mkdir()
    (other / "INFO_UF2.TXT").write_text("Board-ID: SAMD21G18A-Feather-v0\n")
    rp = _bootsel(tmp_path, "RP2350")
    monkeypatch.setattr(uf2, "_mount_points", lambda: [str(other), str(rp)])
    assert uf2.find_bootsel() == (str(rp), "RP2350")
    monkeypatch.setattr(uf2, "_mount_points", lambda: [str(other)])
    e = _err(uf2.find_bootsel)
    assert e.code == EXIT_NO_DEVICE and "BOOTSEL" in e.message


def test_copy_to_writes_the_file_whole(tmp_path):
    d = _bootsel(tmp_path)
    data = uf2.make(PAYLOAD)
    seen = []
    path = uf2.copy_to(data, d, progress=seen.append)
    assert (d / "ionto-runtime.uf2").read_bytes() == data and path.endswith(".uf2")
    assert seen[-1] == len(data)
