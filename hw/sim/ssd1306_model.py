"""SSD1306 128x64 OLED controller at I2C level, as the micropython-lib ssd1306 driver drives it.

Every I2C write starts with a control byte: Co (bit 7) = 1 means one byte follows and then
another control byte; Co = 0 means the rest of the transaction is of one kind. D/C# (bit 6)
says data (GDDRAM) or commands. The command parser keeps its state between transactions,
as the chip does: the driver sends each command and argument byte in its own 0x80 write.

`.frame` is GDDRAM: 8 pages of 128 columns, one byte per column, bit 0 the top row of the
page, exactly framebuf's MONO_VLSB layout. `to_rows()` shows what the glass shows, taking
display on/off, inversion, entire-on, start line and orientation into account; upright is
the driver's default orientation (segment remap on, COM scan reversed).
"""
from micropython import const

WIDTH = const(128)
HEIGHT = const(64)
PAGES = const(8)

# argument bytes each command takes (the rest take none)
_NARGS = {
    0x20: 1, 0x21: 2, 0x22: 2, 0x23: 1, 0x26: 6, 0x27: 6, 0x29: 5, 0x2A: 5, 0x81: 1,
    0x8D: 1, 0xA3: 2, 0xA8: 1, 0xAD: 1, 0xD3: 1, 0xD5: 1, 0xD6: 1, 0xD9: 1, 0xDA: 1, 0xDB: 1,
}


class SSD1306:
    def __init__(self):
        self.frame = bytearray(WIDTH * PAGES)
        self.reset()

    def reset(self):
        """Power-on state (datasheet defaults). GDDRAM is cleared (the chip's is random)."""
        for i in range(len(self.frame)):
            self.frame[i] = 0
        self.on = False
        self.contrast = 0x7F
        self.mode = 2  # page addressing
        self.col = 0
        self.page = 0
        self.col_start, self.col_end = 0, WIDTH - 1
        self.page_start, self.page_end = 0, PAGES - 1
        self.seg_remap = 0
        self.com_reverse = 0
        self.invert = 0
        self.entire_on = 0
        self.start_line = 0
        self.offset = 0
        self.mux = 63
        self.charge_pump = False
        self.scrolling = False
        self.frames_written = 0  # I2C transactions that carried display data
        self.commands = 0
        self._cmd = None
        self._args = []

    # --- I2C device interface --------------------------------------------------------------
    def i2c_write(self, data):
        n = len(data)
        i = 0
        wrote = False
        while i < n:
            ctrl = data[i]
            i += 1
            is_data = ctrl & 0x40
            if ctrl & 0x80:  # Co = 1: a single byte, then another control byte
                if i < n:
                    if is_data:
                        self._data(data[i])
                        wrote = True
                    else:
                        self._command(data[i])
                    i += 1
            else:
                if is_data:
                    for j in range(i, n):
                        self._data(data[j])
                    wrote = wrote or i < n
                else:
                    for j in range(i, n):
                        self._command(data[j])
                break
        if wrote:
            self.frames_written += 1

    def i2c_read(self, n):
        # Status byte: D6 set while the display is off.
        return bytes([0x00 if self.on else 0x40] * n)

    # --- controller ----------------------------------------------------------------------
    def _data(self, b):
        self.frame[self.page * WIDTH + self.col] = b
        if self.mode == 0:  # horizontal: column first, wrap within the window
            if self.col >= self.col_end:
                self.col = self.col_start
                self.page = self.page_start if self.page >= self.page_end else self.page + 1
            else:
                self.col += 1
        elif self.mode == 1:  # vertical: page first
            if self.page >= self.page_end:
                self.page = self.page_start
                self.col = self.col_start if self.col >= self.col_end else self.col + 1
            else:
                self.page += 1
        else:  # page mode: column wraps within the page
            self.col = 0 if self.col >= WIDTH - 1 else self.col + 1

    def _command(self, b):
        self.commands += 1
        if self._cmd is not None:
            self._args.append(b)
            if len(self._args) >= _NARGS[self._cmd]:
                c, a = self._cmd, self._args
                self._cmd = None
                self._args = []
                self._exec(c, a)
            return
        if b in _NARGS:
            self._cmd = b
            self._args = []
            return
        if b == 0xAE or b == 0xAF:
            self.on = b == 0xAF
        elif b == 0xA0 or b == 0xA1:
            self.seg_remap = b & 1
        elif b == 0xC0 or b == 0xC8:
            self.com_reverse = 1 if b & 0x08 else 0
        elif b == 0xA6 or b == 0xA7:
            self.invert = b & 1
        elif b == 0xA4 or b == 0xA5:
            self.entire_on = b & 1
        elif 0x40 <= b <= 0x7F:
            self.start_line = b & 0x3F
        elif 0xB0 <= b <= 0xB7:
            self.page = b & 7
        elif b <= 0x0F:
            self.col = (self.col & 0xF0) | b
        elif b <= 0x1F:
            self.col = ((b & 0x07) << 4) | (self.col & 0x0F)
        elif b == 0x2E:
            self.scrolling = False
        elif b == 0x2F:
            self.scrolling = True
        # 0xE3 NOP and anything unknown: ignored, as the chip does

    def _exec(self, c, a):
        if c == 0x81:
            self.contrast = a[0]
        elif c == 0x20:
            self.mode = a[0] & 3 if a[0] & 3 != 3 else 2
        elif c == 0x21:
            self.col_start = a[0] & 0x7F
            self.col_end = a[1] & 0x7F
            self.col = self.col_start
        elif c == 0x22:
            self.page_start = a[0] & 7
            self.page_end = a[1] & 7
            self.page = self.page_start
        elif c == 0x8D:
            self.charge_pump = bool(a[0] & 0x04)
        elif c == 0xA8:
            self.mux = a[0] & 0x3F
        elif c == 0xD3:
            self.offset = a[0] & 0x3F

    # --- views -----------------------------------------------------------------------------
    def pixel(self, x, y):
        """GDDRAM bit at framebuf coordinates (as the firmware drew it)."""
        return (self.frame[(y >> 3) * WIDTH + x] >> (y & 7)) & 1

    def to_rows(self, panel=True):
        """64 rows of 128 booleans. panel=True: what the glass shows (off = all dark)."""
        rows = []
        if not panel:
            for y in range(HEIGHT):
                rows.append([bool(self.pixel(x, y)) for x in range(WIDTH)])
            return rows
        lit = self.on  # (charge_pump is recorded; an external-VCC board lights without it)
        for y in range(HEIGHT):
            if not lit:
                rows.append([False] * WIDTH)
                continue
            if self.entire_on:
                rows.append([True] * WIDTH)
                continue
            yy = y if self.com_reverse else HEIGHT - 1 - y
            ry = (yy + self.start_line + self.offset) & 63
            inv = self.invert
            if self.seg_remap:
                rows.append([bool(self.pixel(x, ry) ^ inv) for x in range(WIDTH)])
            else:
                rows.append([bool(self.pixel(WIDTH - 1 - x, ry) ^ inv) for x in range(WIDTH)])
        return rows

    def to_text(self, panel=True, on="#", off="."):
        """The frame as 64 lines of '#' and '.' for tests and terminals."""
        return "\n".join("".join(on if p else off for p in r) for r in self.to_rows(panel))
