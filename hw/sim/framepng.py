"""Write an SSD1306 frame (1024 bytes of GDDRAM, page-major) as a PNG, with no Pillow.

CPython only (zlib, struct): host tools and the demo save what the virtual unit's display
shows. Lit pixels are drawn in the light blue of common OLED modules on black.
"""
import struct
import zlib

WIDTH = 128
HEIGHT = 64
_ON = bytes((0x9F, 0xE8, 0xFF))
_OFF = bytes((0x00, 0x00, 0x00))


def _chunk(kind, data):
    c = struct.pack(">I", len(data)) + kind + data
    return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def frame_rows(frame):
    """64 rows of 128 booleans from GDDRAM bytes (framebuf MONO_VLSB layout)."""
    frame = bytes(frame)
    if len(frame) != WIDTH * HEIGHT // 8:
        raise ValueError("an SSD1306 frame is 1024 bytes, not %d" % len(frame))
    return [[bool((frame[(y >> 3) * WIDTH + x] >> (y & 7)) & 1) for x in range(WIDTH)] for y in range(HEIGHT)]


def rows_png(rows, scale=4):
    """PNG bytes (8-bit RGB) of rows of booleans, each pixel a scale x scale square."""
    h = len(rows)
    w = len(rows[0]) if h else 0
    raw = bytearray()
    for r in rows:
        line = b"\x00" + b"".join((_ON if p else _OFF) * scale for p in r)
        raw += line * scale
    ihdr = struct.pack(">IIBBBBB", w * scale, h * scale, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + _chunk(b"IEND", b"")


def frame_png(frame, scale=4, on=True):
    """PNG bytes of a frame; on=False draws the display dark, as a switched-off panel."""
    rows = frame_rows(frame)
    if not on:
        rows = [[False] * WIDTH for _ in range(HEIGHT)]
    return rows_png(rows, scale)


def save_png(path, frame, scale=4, on=True):
    """Write a frame (bytes, or an object with .frame and .on such as SSD1306) to path."""
    if hasattr(frame, "frame"):
        on = on and getattr(frame, "on", True)
        frame = frame.frame
    data = frame_png(frame, scale, on)
    with open(path, "wb") as f:
        f.write(data)
    return path
