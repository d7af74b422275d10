# Display pages for the nurse: 16 characters x 8 lines with framebuf's 8x8 font.
#
#     d = Display(oled)                        # an ssd1306.SSD1306
#     d.running("TREAT", 1425, 15000, 14900, 0)
#     d.step()                                 # every loop iteration: one chunk at most
#
# Every page takes plain ints and strings (uA, seconds, names) and redraws only the lines
# whose text changed; each line is one SSD1306 page, so the driver sends only those pages,
# and of them only the chunks that changed. Formatting builds small strings: that allocates,
# which is acceptable because pages are updated at a low rate (the loop calls them at about
# 5 Hz, outside the heap-locked control tick); step() itself allocates nothing.
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
        self._lines = [None] * LINES
        self._inv = 0  # bit per line drawn inverted (the header)
        self.page = ""  # name of the page shown (tests, log)
        self.redraws = 0

    # --- drawing ------------------------------------------------------------------------
    def _line(self, i, s, inv=False):
        s = s[:W]
        bit = 1 << i
        if s == self._lines[i] and bool(self._inv & bit) == inv:
            return
        self._lines[i] = s
        o = self.oled
        y = i * 8
        if inv:
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
        """The 8 lines as shown (tests and the log)."""
        return [s or "" for s in self._lines]

    def step(self):
        """Send one chunk of what changed (the control loop calls this between ticks)."""
        return self.oled.step()

    def show(self):
        """Send everything that changed now (blocking; output off or start-up)."""
        return self.oled.show()

    # --- pages --------------------------------------------------------------------------
    def idle(self, preset, target_ua, duration_s, notice=""):
        """notice: up to two lines of words under the settings (e.g. "using previous
        configuration": the unit treats, but the technician should know)."""
        self.page = "idle"
        n = wrap(notice) if notice else ()
        self.lines(
            "READY",
            preset,
            _lr("target", ma(target_ua) + " mA"),
            _lr("time", "%d min" % (duration_s // 60)),
            n[0] if n else "",
            n[1] if len(n) > 1 else "",
            "MODE   preset",
            "START  begin",
        )

    def confirm(self, preset, target_ua, duration_s):
        self.page = "confirm"
        self.lines(
            "CONFIRM",
            preset,
            _lr(ma(target_ua) + " mA", "%d min" % (duration_s // 60)),
            "",
            "START to confirm",
            "STOP to cancel",
        )

    def running(self, state, time_left_s, set_ua, actual_ua, polarity, pulsed=False):
        """Treatment running. Pulsed DC: pass the average setpoint; the page says "avg"."""
        self.page = "running"
        self.lines(
            _lr(state, pol(polarity)),
            _lr("left", mmss(time_left_s)),
            _lr("avg set" if pulsed else "set", ma(set_ua) + " mA"),
            _lr("avg now" if pulsed else "now", ma(actual_ua) + " mA"),
            "pulsed DC" if pulsed else "",
            "",
            "UP/DOWN  adjust",
            "STOP  end",
        )

    def limited(self, time_left_s, actual_ua, target_ua, reason, polarity):
        """Target out of reach: "14.2 of 18.0 mA" and why (limits.LIMIT_REASONS text)."""
        self.page = "limited"
        r = wrap(reason)
        self.lines(
            _lr("LIMITED", pol(polarity)),
            _lr("left", mmss(time_left_s)),
            ma(actual_ua) + " of " + ma(target_ua) + " mA",
            r[0] if r else "",
            r[1] if len(r) > 1 else "",
            "",
            "UP/DOWN  adjust",
            "STOP  end",
        )

    def paused(self, time_left_s):
        self.page = "paused"
        self.lines(
            "PAUSED",
            "Contact lost -",
            "put hand back",
            "in water",
            "",
            _lr("left", mmss(time_left_s)),
            "",
            "STOP  end",
        )

    def fault(self, code):
        """A limits fault or blocker code: two lines in words, then what to do."""
        row = limits.fault_info(code)
        if row is None:
            title, sub, advice = "FAULT %d" % code, "", "Output cut. Call the technician."
        else:
            title, sub, advice = row[2], row[3], row[4]
        self.page = "fault"
        a = wrap(advice)[:5]
        foot = "STOP  clear" if code < limits.B_USB else "STOP  back"
        self.lines(title, sub, *(a + [""] * (5 - len(a)) + [foot]))

    def ended(self, title, reason, dose_mamin):
        """DONE or STOPPED: why, and the dose delivered."""
        self.page = "ended"
        self.lines(
            title,
            reason,
            _lr("dose", "%d mA.min" % dose_mamin),
            "",
            "Lift hands out",
            "",
            "",
            "START  menu",
        )

    def message(self, title, text):
        """Anything else (boot, self-test): a title and wrapped text."""
        self.page = "message"
        self.lines(title, *wrap(text)[:7])
