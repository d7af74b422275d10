"""docs/architecture.md: its picture is rendered by `make docs` from docs/architecture_diagram.py
and the committed one is what that source draws now; the page and the README link it, and every
file the page names exists."""
import importlib.util
import re
import struct

from conftest import ROOT

DOCS = ROOT / "docs"


def _diagram_module():
    spec = importlib.util.spec_from_file_location("architecture_diagram", DOCS / "architecture_diagram.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_make_docs_renders_the_picture_and_the_committed_one_is_up_to_date(tmp_path):
    written = _diagram_module().render(tmp_path)
    assert sorted(p.name for p in written) == ["architecture.png", "architecture.svg"]
    png = (tmp_path / "architecture.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", png[16:24])
    assert w > 1200 and h > 700
    svg = (tmp_path / "architecture.svg").read_text()
    for words in ("REPL (host -> unit)", "status (unit -> host)", "board.py: the only door to machine",
                  "ionto sim: the unit server", "ionto pico: the emulated Pico", "supervisor"):
        assert words.replace(">", "&gt;") in svg, words
    # The SVG carries no date and fixed ids: unchanged source, same bytes. Stale? `make docs`.
    assert (DOCS / "architecture.svg").read_text() == svg, "docs/architecture.svg is stale: run `make docs`"
    assert (DOCS / "architecture.png").exists()


def test_the_page_is_linked_and_names_only_files_that_exist():
    page = (DOCS / "architecture.md").read_text()
    assert "](architecture.png)" in page
    assert "docs/architecture.md" in (ROOT / "README.md").read_text()
    names = set(re.findall(r"`([\w/.-]+\.(?:py|md|csv))`", page))
    assert len(names) > 30
    roots = [ROOT, ROOT / "firmware", ROOT / "host_tools" / "ionto", ROOT / "host_tools" / "ionto" / "unit_server",
             ROOT / "hw" / "sim", ROOT / "tests"]
    missing = [n for n in names if not any((r / n).exists() for r in roots)]
    assert not missing, missing
