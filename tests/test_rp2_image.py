"""The committed rp2 image is the one its sources make: provenance recorded, frozen modules current.

The image freezes _boot.py, fsmount.py and what they draw with (hw/rp2/manifest.py). When one of
those sources changes and hw/rp2/image/ is not rebuilt (`make rp2-image`), the emulated Pico and
every board flashed with the image would run the old frozen code: this fails first.
"""
import hashlib
import json

import pytest

from conftest import ROOT

RP2 = ROOT / "hw" / "rp2"


@pytest.fixture(scope="module")
def provenance():
    import importlib.util

    spec = importlib.util.spec_from_file_location("rp2_provenance", RP2 / "provenance.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_frozen_sources_match_the_committed_image(provenance):
    stale = provenance.stale()
    assert not stale, "hw/rp2/image is stale (%s): rebuild it with `make rp2-image` (hw/rp2/README.md)" % (
        "; ".join("%s: %s" % s for s in stale))


def test_provenance_names_pins_configuration_and_image_hash():
    rec = json.loads((RP2 / "image" / "PROVENANCE.json").read_text())
    assert rec["micropython"]["commit"].startswith("af47daf3b02b")
    assert rec["submodules"]["lib/pico-sdk"].startswith("a1438dff")
    assert rec["submodules"]["lib/tinyusb"].startswith("aa0fc2e08")
    assert rec["submodules"]["lib/micropython-lib"].startswith("8380c7bb")
    assert rec["picotool"] == "2.2.0"
    assert "arm-none-eabi-gcc" in rec["toolchain"]
    assert rec["patches"] == ["vm-frames-on-stack.patch"]
    image = (RP2 / "image" / "firmware.uf2").read_bytes()
    assert hashlib.sha256(image).hexdigest() == rec["image_sha256"]
    # a UF2 for the RP2040 (family ID 0xe48bff56)
    assert image[:8] == bytes.fromhex("5546320a57515d9e")
    assert image[28:32] == bytes.fromhex("56ff8be4")
    assert {"_boot.py", "fsmount.py"} <= set(rec["frozen_sources_sha256"])


def test_licence_notices_ship_with_the_image():
    lic = RP2 / "image" / "LICENCES"
    for name in ("micropython-LICENSE.txt", "pico-sdk-LICENSE.txt", "tinyusb-LICENSE.txt", "mbedtls-LICENSE.txt",
                 "littlefs-notice.txt", "newlib-copyright.txt"):
        assert (lic / name).stat().st_size > 100, name
    assert "BSD-3-Clause" in (RP2 / "emu" / "bootrom-b1.LICENCE.txt").read_text()


def test_a_changed_frozen_source_is_caught(provenance, tmp_path, monkeypatch):
    # The check itself: a frozen module edited after the build is reported by name.
    srcs = provenance.frozen_sources()
    changed = tmp_path / "fsmount.py"
    changed.write_bytes(srcs["fsmount.py"].read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(provenance, "frozen_sources", lambda: {**srcs, "fsmount.py": changed})
    assert provenance.stale() == [("fsmount.py", "source changed since the image was built")]
    extra = tmp_path / "new.py"
    extra.write_text("x = 1\n")
    monkeypatch.setattr(provenance, "frozen_sources", lambda: {**srcs, "new.py": extra})
    assert provenance.stale() == [("new.py", "in the manifest, not in the image")]
