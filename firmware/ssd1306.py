# SSD1306 128x64 OLED over I2C, micropython-lib style, sharing the bus with the INA219.
#
#     oled = SSD1306(i2c, pins.SSD1306_ADDR)    # a framebuf.FrameBuffer (MONO_VLSB)
#     oled.init_display()                        # init sequence, clear, on; raises OSError
#     oled.text("hello", 0, 0); oled.mark(0)     # draw, then mark the pages drawn on dirty
#     oled.show()                                # every dirty page now (start-up, output off)
#     oled.step()                                # at most one chunk per call (control loop)
#
# A whole frame is 1024 bytes, ~23 ms on the 400 kHz bus: far longer than a 10 ms control
# tick, and the sensor cannot be read while it is on the wire (hw/calibration.md 7). So the
# loop sends the frame in chunks of `chunk` bytes (16 by default: ~0.4 ms on the wire) by
# calling step() between ticks. Only pages marked dirty are sent, and within them only the
# chunks that differ from what the glass already shows (a shadow copy of GDDRAM), so a
# changing clock costs one or two chunks, not a frame.
#
# The controller runs in page addressing mode: a chunk is placed with three command bytes
# (page, column low, column high) in one transaction, skipped when the previous chunk ended
# where this one starts. Data goes out as one writeto() of a preallocated buffer whose
# first byte is the 0x40 data prefix: no allocation in step() or show().
#
# I2C errors in step()/show() are recorded (`error`, `errors`) and the chunk stays dirty for
# the next call; they never raise, so a dead display cannot take the control loop down.
from micropython import const
import framebuf

_SET_CONTRAST = const(0x81)
_SET_ENTIRE_ON = const(0xA4)
_SET_NORM_INV = const(0xA6)
_SET_DISP = const(0xAE)
_SET_MEM_ADDR = const(0x20)
_SET_PAGE = const(0xB0)
_SET_COL_LO = const(0x00)
_SET_COL_HI = const(0x10)
_SET_DISP_START_LINE = const(0x40)
_SET_SEG_REMAP = const(0xA0)
_SET_MUX_RATIO = const(0xA8)
_SET_IREF_SELECT = const(0xAD)
_SET_COM_OUT_DIR = const(0xC0)
_SET_DISP_OFFSET = const(0xD3)
_SET_COM_PIN_CFG = const(0xDA)
_SET_DISP_CLK_DIV = const(0xD5)
_SET_PRECHARGE = const(0xD9)
_SET_VCOM_DESEL = const(0xDB)
_SET_CHARGE_PUMP = const(0x8D)


def _errno(e):
    # e.args[0], not e.errno: CPython leaves .errno None for OSError(n); no allocation
    a = e.args
    return a[0] if a else -1


class SSD1306(framebuf.FrameBuffer):
    def __init__(self, i2c, addr=0x3C, width=128, height=64, external_vcc=False, chunk=16):
        self.i2c = i2c
        self.addr = addr
        self.width = width
        self.height = height
        self.external_vcc = external_vcc
        self.pages = height // 8
        if width % chunk:
            raise ValueError("chunk must divide the width")
        self.chunk = chunk
        self.buffer = bytearray(self.pages * width)
        self._shadow = bytearray(self.pages * width)  # what GDDRAM holds (when _known)
        self._known = False
        self._tx = bytearray(chunk + 1)
        self._tx[0] = 0x40  # Co = 0, D/C# = 1: the rest is display data
        self._cmd2 = bytearray(2)
        self._cmd2[0] = 0x80  # Co = 1, D/C# = 0: one command byte
        self._pos = bytearray(4)
        self._pos[0] = 0x00  # Co = 0, D/C# = 0: the rest are commands
        self._dirty = 0  # bit per page
        self._page = 0  # step() cursor
        self._col = 0
        self._at = -1  # GDDRAM offset the controller writes next; -1 unknown
        self.error = 0
        self.errors = 0
        self.chunks_sent = 0
        super().__init__(self.buffer, width, height, framebuf.MONO_VLSB)

    # --- commands -----------------------------------------------------------------------
    def write_cmd(self, cmd):
        self._cmd2[1] = cmd
        self.i2c.writeto(self.addr, self._cmd2)

    def init_display(self):
        """Init sequence (as micropython-lib's, but page addressing), clear, display on."""
        for cmd in (
            _SET_DISP,  # off
            _SET_MEM_ADDR, 0x02,  # page addressing: chunks are placed per page
            _SET_DISP_START_LINE,
            _SET_SEG_REMAP | 0x01,  # column 127 mapped to SEG0
            _SET_MUX_RATIO, self.height - 1,
            _SET_COM_OUT_DIR | 0x08,  # scan from COM[N] to COM0
            _SET_DISP_OFFSET, 0x00,
            _SET_COM_PIN_CFG, 0x02 if self.width > 2 * self.height else 0x12,
            _SET_DISP_CLK_DIV, 0x80,
            _SET_PRECHARGE, 0x22 if self.external_vcc else 0xF1,
            _SET_VCOM_DESEL, 0x30,  # 0.83 x Vcc
            _SET_CONTRAST, 0xFF,
            _SET_ENTIRE_ON,  # output follows RAM
            _SET_NORM_INV,  # not inverted
            _SET_IREF_SELECT, 0x30,  # internal IREF (SSD1306B; ignored by others)
            _SET_CHARGE_PUMP, 0x10 if self.external_vcc else 0x14,
        ):
            self.write_cmd(cmd)
        self._known = False  # GDDRAM is random at power-on: send everything once
        self._at = -1
        self.fill(0)
        self.mark_all()
        self.show()
        if self.error:
            raise OSError(self.error)
        self.write_cmd(_SET_DISP | 0x01)

    def poweroff(self):
        self.write_cmd(_SET_DISP)

    def poweron(self):
        self.write_cmd(_SET_DISP | 0x01)

    def contrast(self, contrast):
        self.write_cmd(_SET_CONTRAST)
        self.write_cmd(contrast)

    def invert(self, invert):
        self.write_cmd(_SET_NORM_INV | (invert & 1))

    # --- dirty tracking -----------------------------------------------------------------
    def mark(self, page):
        """Page `page` (8 pixel rows) was drawn on: send it."""
        bit = 1 << page
        if page == self._page and self._dirty & bit:
            self._col = 0  # redrawn while half sent: start the page again
        self._dirty |= bit

    def mark_all(self):
        self._dirty = (1 << self.pages) - 1
        self._page = 0
        self._col = 0

    def dirty(self):
        return self._dirty != 0

    # --- transfer -----------------------------------------------------------------------
    def step(self):
        """Send at most one chunk that differs from the glass. True while more remain."""
        d = self._dirty
        if not d:
            return False
        p = self._page
        n = self.pages
        while not (d >> p) & 1:
            p = (p + 1) % n
            self._col = 0
        self._page = p
        w = self.width
        c = self._col
        ch = self.chunk
        buf = self.buffer
        sh = self._shadow
        known = self._known
        same = False
        if known:
            # One chunk compared per call (Python byte loops cost ~8 us a byte on an RP2040):
            # an unchanged chunk is skipped, and the next call looks at the next one.
            o = p * w + c
            same = True
            for k in range(o, o + ch):
                if buf[k] != sh[k]:
                    same = False
                    break
            if same:
                c += ch
                self._at = -1 if c >= w else self._at
        if c < w and not same:
            o = p * w + c
            tx = self._tx
            for k in range(ch):
                tx[k + 1] = buf[o + k]
            try:
                if o != self._at:
                    ps = self._pos
                    ps[1] = _SET_PAGE | p
                    ps[2] = _SET_COL_LO | (c & 0x0F)
                    ps[3] = _SET_COL_HI | (c >> 4)
                    self.i2c.writeto(self.addr, ps)
                self.i2c.writeto(self.addr, tx)
            except OSError as e:
                self.error = _errno(e)
                self.errors += 1
                self._at = -1
                self._col = c
                return True
            self.error = 0
            self.chunks_sent += 1
            for k in range(ch):
                sh[o + k] = tx[k + 1]
            c += ch
            # page mode: the column wraps within the page, so the next page needs placing
            self._at = o + ch if c < w else -1
        if c >= w:
            self._dirty &= ~(1 << p)
            self._col = 0
            self._page = (p + 1) % n
            if p == n - 1 and not known and not self._dirty:
                self._known = True
        else:
            self._col = c
        return self._dirty != 0

    def show(self):
        """Send every dirty page now (blocking: ~23 ms for a full frame)."""
        guard = self.pages * (self.width // self.chunk) + self.pages + 1
        while self._dirty and guard:
            self.step()
            if self.error:
                return False
            guard -= 1
        return True
