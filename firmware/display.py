# Display pages for the nurse: 16 characters x 8 lines with framebuf's 8x8 font.
#
#     d = Display(oled)                        # an ssd1306.SSD1306
#     d.running("TREAT", 1425, 15000, 14900, 0)
#     d.step()                                 # every loop iteration: one line or one chunk
#
# Every page takes plain ints and strings (uA, seconds, names) and notes which lines' text
# changed; step() draws one such line into the frame per call, and once none is left it sends
# one chunk of what changed (each line is one SSD1306 page, so the driver sends only those
# pages, and of them only the chunks that differ). A page thus costs the control loop its
# formatting in one tick and then a line or a chunk per tick: no tick carries a whole render
# (4-6 ms on an RP2040 when drawn at once). Formatting builds small strings: that allocates,
# which is acceptable because pages are updated at a low rate (the loop calls them at 5 Hz,
# outside the heap-locked control tick); step() itself allocates nothing.
import limits

W = 16  # characters per line
LINES = 8


def ma(ua):
    """uA -> "12.3" (mA, one decimal, rounded; negative shown as 0.0)."""
    if ua < 0:
        ua = 0
    t = (ua + 50) // 100
    return "%d.%d" % (t // 10, t % 10)


def mmss(s):
    if s < 0:
        s = 0
    return "%02d:%02d" % (s // 60, s % 60)


def pol(p):
    return "B+" if p else "A+"


def wrap(text, width=W):
    """Greedy word wrap into lines of at most `width` characters."""
    out = []
    line = ""
    for word in text.split():
        while len(word) > width:
            if line:
                out.append(line)
                line = ""
            out.append(word[:width])
            word = word[width:]
        if not line:
            line = word
        elif len(line) + 1 + len(word) <= width:
            line = line + " " + word
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    return out


def _lr(left, right, width=W):
    # left and right aligned on one line
    n = width - len(left) - len(right)
    if n < 1:
        return (left + " " + right)[:width]
    return left + " " * n + right


class Display:
    def __init__(self, oled):
        self.oled = oled
        self._lines = [None] * LINES  # as drawn into the frame
        self._inv = 0  # bit per line drawn inverted (the header)
        self._want = [None] * LINES  # as the page says
        self._want_inv = 0
        self._todo = 0  # bit per line whose page text differs from the frame
        self.page = ""  # name of the page shown (tests, log)
        self.redraws = 0
        self._g = None  # the page being formatted a line per format() call
        self._gi = 0

    # --- drawing ------------------------------------------------------------------------
    def _line(self, i, s, inv=False):
        s = s[:W]
        bit = 1 << i
        self._want[i] = s
        if inv:
            self._want_inv |= bit
        else:
            self._want_inv &= ~bit
        if s == self._lines[i] and bool(self._inv & bit) == inv:
            self._todo &= ~bit
        else:
            self._todo |= bit

    def _draw(self, i):
        # one line into the frame (framebuf, C): no allocation
        s = self._want[i]
        bit = 1 << i
        self._lines[i] = s
        o = self.oled
        y = i * 8
        if self._want_inv & bit:
            self._inv |= bit
            o.fill_rect(0, y, o.width, 8, 1)
            o.text(s, 0, y, 0)
        else:
            self._inv &= ~bit
            o.fill_rect(0, y, o.width, 8, 0)
            o.text(s, 0, y, 1)
        o.mark(i)
        self.redraws += 1

    def lines(self, title, *rest):
        """Title (inverted) on line 0, then up to 7 lines; the rest of the screen blank."""
        self._line(0, title, True)
        n = len(rest)
        for i in range(1, LINES):
            self._line(i, rest[i - 1] if i - 1 < n else "")

    def text(self):
        """The page's 8 lines (tests and the log); step() draws them into the frame within
        LINES calls."""
        return [s or "" for s in self._want]

    def step(self):
        """Draw one changed line into the frame, or else send one chunk of what changed (the
        control loop calls this on ticks without other low-rate work). True while work remains."""
        t = self._todo
        if t:
            i = 0
            while not (t >> i) & 1:
                i += 1
            self._todo = t & ~(1 << i)
            self._draw(i)
            return True
        return self.oled.step()

    def show(self):
        """Draw and send everything that changed now (blocking; output off or start-up)."""
        self._draw_all()
        return self.oled.show()

    # --- pages: drawn into the frame at once (idle(), running(), ...: start-up, tests), or
    # begin(g_...) and then a line per format() call and a line per step() call (the loop) ----
    def _all(self, g):
        # every line of a page generator formatted and drawn into the frame now
        self._g = None
        i = 0
        for text in g:
            self._line(i, text, i == 0)
            i += 1
        while i < LINES:
            self._line(i, "")
            i += 1
        self._draw_all()

    def _draw_all(self):
        t = self._todo
        self._todo = 0
        for i in range(LINES):
            if (t >> i) & 1:
                self._draw(i)

    def begin(self, g):
        """Start a page from one of the g_* generators; format() then takes one line per call."""
        self._g = g
        self._gi = 0

    def format(self):
        """Format the next line of the page begun (the loop: one per tick). True while more."""
        g = self._g
        if g is None:
            return False
        i = self._gi
        try:
            text = next(g)
        except StopIteration:
            text = None
        if text is None or i >= LINES:
            while i < LINES:
                self._line(i, "")
                i += 1
            self._g = None
            return False
        self._line(i, text, i == 0)
        self._gi = i + 1
        return True

    def idle(self, *a, **k):
        self._all(self.g_idle(*a, **k))

    def confirm(self, *a, **k):
        self._all(self.g_confirm(*a, **k))

    def running(self, *a, **k):
        self._all(self.g_running(*a, **k))

    def limited(self, *a, **k):
        self._all(self.g_limited(*a, **k))

    def paused(self, *a, **k):
        self._all(self.g_paused(*a, **k))

    def fault(self, *a, **k):
        self._all(self.g_fault(*a, **k))

    def ended(self, *a, **k):
        self._all(self.g_ended(*a, **k))

    def message(self, *a, **k):
        self._all(self.g_message(*a, **k))

    # Each page is a generator of its lines (title first, inverted): a line is formatted only
    # when asked for, so the loop spreads a page's formatting over several ticks.
    def g_idle(self, preset, target_ua, duration_s, notice=""):
        """notice: up to two lines of words under the settings (e.g. "using previous
        configuration": the unit treats, but the technician should know)."""
        self.page = "idle"
        yield "READY"
        yield preset
        yield _lr("target", ma(target_ua) + " mA")
        yield _lr("time", "%d min" % (duration_s // 60))
        n = wrap(notice) if notice else ()
        yield n[0] if n else ""
        yield n[1] if len(n) > 1 else ""
        yield "MODE   preset"
        yield "START  begin"

    def g_confirm(self, preset, target_ua, duration_s):
        self.page = "confirm"
        yield "CONFIRM"
        yield preset
        yield _lr(ma(target_ua) + " mA", "%d min" % (duration_s // 60))
        yield ""
        yield "START to confirm"
        yield "STOP to cancel"

    def g_running(self, state, time_left_s, set_ua, actual_ua, polarity, pulsed=False):
        """Treatment running. Pulsed DC: pass the average setpoint; the page says "avg"."""
        self.page = "running"
        yield _lr(state, pol(polarity))
        yield _lr("left", mmss(time_left_s))
        yield _lr("avg set" if pulsed else "set", ma(set_ua) + " mA")
        yield _lr("avg now" if pulsed else "now", ma(actual_ua) + " mA")
        yield "pulsed DC" if pulsed else ""
        yield ""
        yield "UP/DOWN  adjust"
        yield "STOP  end"

    def g_limited(self, time_left_s, actual_ua, target_ua, reason, polarity):
        """Target out of reach: "14.2 of 18.0 mA" and why (limits.LIMIT_REASONS text)."""
        self.page = "limited"
        yield _lr("LIMITED", pol(polarity))
        yield _lr("left", mmss(time_left_s))
        yield ma(actual_ua) + " of " + ma(target_ua) + " mA"
        r = wrap(reason)
        yield r[0] if r else ""
        yield r[1] if len(r) > 1 else ""
        yield ""
        yield "UP/DOWN  adjust"
        yield "STOP  end"

    def g_paused(self, time_left_s):
        self.page = "paused"
        yield "PAUSED"
        yield "Contact lost -"
        yield "put hand back"
        yield "in water"
        yield ""
        yield _lr("left", mmss(time_left_s))
        yield ""
        yield "STOP  end"

    def g_fault(self, code):
        """A limits fault or blocker code: two lines in words, then what to do."""
        row = limits.fault_info(code)
        if row is None:
            title, sub, advice = "FAULT %d" % code, "", "Output cut. Call the technician."
        else:
            title, sub, advice = row[2], row[3], row[4]
        self.page = "fault"
        yield title
        yield sub
        a = wrap(advice)[:5]
        for i in range(5):
            yield a[i] if i < len(a) else ""
        yield "STOP  clear" if code < limits.B_USB else "STOP  back"

    def g_ended(self, title, reason, dose_mamin):
        """DONE or STOPPED: why, and the dose delivered."""
        self.page = "ended"
        yield title
        yield reason
        yield _lr("dose", "%d mA.min" % dose_mamin)
        yield ""
        yield "Lift hands out"
        yield ""
        yield ""
        yield "START  menu"

    def g_message(self, title, text):
        """Anything else (boot, self-test): a title and wrapped text."""
        self.page = "message"
        yield title
        for line in wrap(text)[:7]:
            yield line
