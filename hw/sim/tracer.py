"""What the front panel in the browser reads from the virtual unit in one request: a trace of
the treatment (the firmware's target, setpoint and measurement beside the plant's TRUE
current), the display frames as they changed, the buzzer's notes, the LED and the patient.

    tr = Tracer(board, vclock, app_fn)        # app_fn() -> the firmware's App, or None
    tr.handle({"cmd": "trace", "since": 0, "fsince": 0, "bsince": 0})

The tracer is simulator instrumentation, not firmware: a clock hook (installed at the first
request, with its rings, so a unit nobody watches pays nothing) samples every k control
periods, k chosen so a sample is at least SAMPLE_MIN_US apart. The period is the one the firmware runs (its
module's constant), and the period measured from its tick counter is reported beside it:
when the loop period changes, the panel follows without knowing it. Rings keep the last
samples and frames; a reader that falls behind is told how many it lost.

Sample row: t_ms, ticks, state, target_ua, set_ua, measured_ua, true_ua, electrode_mv,
load_ohm (-1 open), polarity, fault, limited_ua (-1 not limited), dose_uas, time_left_s,
enable. Without a running application (booting, a host session at the REPL) the firmware's
fields are -1 and 0.
"""
import sys
import binascii
from array import array
from micropython import const

SAMPLE_MIN_US = const(20_000)
_N_SAMPLES = const(512)
_N_FRAMES = const(8)
_MOST_ROWS = const(128)  # per reply: a reply is one string on the unit's heap
_MOST_FRAMES = const(4)
COLUMNS = ("t_ms", "ticks", "state", "target_ua", "set_ua", "measured_ua", "true_ua", "electrode_mv",
           "load_ohm", "polarity", "fault", "limited_ua", "dose_uas", "time_left_s", "enable")



def _window(n, size, seq, most):
    """A reader's window on a ring that has taken n rows and keeps the last size: from seq
    (moved up past what was overwritten) for at most `most` rows -> (seq, end, rows lost)."""
    lo = n - size if n > size else 0
    lost = lo - seq if seq < lo else 0
    seq = min(max(seq, lo), n)
    return seq, min(n, seq + most), lost

class _Rows:
    # A ring of fixed-width int rows in one preallocated array: the tracer lives on the unit's
    # heap beside the firmware, so it allocates nothing per sample.
    def __init__(self, n, width):
        self.size = n
        self.w = width
        self.a = array("i", bytes(4 * n * width))
        self.n = 0  # rows ever added: the next row's sequence number

    def add(self, row):
        o = (self.n % self.size) * self.w
        a = self.a
        for i in range(self.w):
            a[o + i] = row[i]
        self.n += 1

    def since(self, seq, most):
        """Up to `most` rows from sequence number seq on: (rows, lost, next seq)."""
        seq, end, lost = _window(self.n, self.size, seq, most)
        out = []
        for i in range(seq, end):
            o = (i % self.size) * self.w
            out.append(list(self.a[o:o + self.w]))
        return out, lost, end


class _Frames:
    # The last few distinct display frames, in preallocated buffers.
    def __init__(self, n):
        self.buf = [bytearray(1024) for _ in range(n)]
        self.meta = [None] * n
        self.n = 0

    def add(self, t_ms, frame, flags):
        i = self.n % len(self.buf)
        self.buf[i][:] = frame
        self.meta[i] = (t_ms, flags)
        self.n += 1

    def last(self):
        return self.buf[(self.n - 1) % len(self.buf)] if self.n else None

    def since(self, seq, most):
        size = len(self.buf)
        seq, end, lost = _window(self.n, size, seq, most)
        out = []
        for i in range(seq, end):
            t, fl = self.meta[i % size]
            out.append([t, binascii.hexlify(self.buf[i % size]).decode(), fl])
        return out, lost, end


def period_us():
    """The firmware's control period: the loop's own constant, else the limits' one."""
    for mod, name in (("app", "PERIOD_US"), ("limits", "LOOP_PERIOD_US")):
        m = sys.modules.get(mod)
        v = getattr(m, name, None) if m is not None else None
        if isinstance(v, int) and v > 0:
            return v
    return 0


class Tracer:
    def __init__(self, board, vclock, app_fn, patient=None):
        self.board = board
        self._vc = vclock
        self._app = app_fn
        self.patient = patient
        # The rings are made at the first request: a unit nobody watches keeps its heap.
        self.samples = None
        self.frames = None
        self._next = 0
        self._fw = -1  # frames_written at the last frame kept
        self._hooked = False
        self._t0 = None  # (t_us, ticks) of the first sample with an application, for the period
        self._t1 = None
        self.interval_us = SAMPLE_MIN_US

    def start(self):
        if not self._hooked:
            self.samples = _Rows(_N_SAMPLES, len(COLUMNS))
            self.frames = _Frames(_N_FRAMES)
            self._hooked = True
            self._vc.add_hook(self._hook, timed=True)
            self.sample(self._vc.now_us())

    def _hook(self, now):
        # a timed clock hook: returns when it next needs to run
        if now >= self._next:
            self.sample(now)
        return self._next

    def sample(self, now):
        p = period_us()
        k = (SAMPLE_MIN_US + p - 1) // p if p > 0 else 1
        self.interval_us = k * p if p > 0 else SAMPLE_MIN_US
        self._next = now + self.interval_us
        b = self.board
        pl = b.plant
        true_ua = pl.current_ua(now)
        mv = pl.electrode_mv(now)
        load = pl.load_ohm()
        a = self._app()
        s = getattr(a, "s", None) if a is not None else None
        if s is None:
            row = (now // 1000, -1, -1, 0, 0, 0, true_ua, mv, -1 if load is None else load, pl.polarity, 0, -1, 0, 0,
                   pl.enable)
            self._t0 = None
        else:
            ticks = a.ticks
            row = (now // 1000, ticks, s.state, s.target_ua, s.set_ua, s.actual_ua, true_ua, mv,
                   -1 if load is None else load, s.polarity, s.fault, s.limited_ua if s.limited else -1,
                   s.dose_uas, s.time_left_s, pl.enable)
            if self._t0 is None or ticks < self._t0[1]:
                self._t0 = (now, ticks)
            self._t1 = (now, ticks)
        self.samples.add(row)
        d = b.display
        if d.frames_written != self._fw:
            self._fw = d.frames_written
            if d.frame != self.frames.last():
                self.frames.add(now // 1000, d.frame, self.flags())

    def flags(self):
        d = self.board.display
        return {"on": d.on, "contrast": d.contrast, "invert": d.invert, "entire_on": d.entire_on,
                "seg_remap": d.seg_remap, "com_reverse": d.com_reverse, "start_line": d.start_line,
                "offset": d.offset}

    def measured_period_us(self):
        if self._t0 is None or self._t1 is None or self._t1[1] - self._t0[1] < 10:
            return 0
        return (self._t1[0] - self._t0[0]) // (self._t1[1] - self._t0[1])

    def handle(self, cmd):
        """{"cmd": "trace", "since": n, "fsince": n, "bsince": n} -> everything new since."""
        self.start()
        now = self._vc.now_us()
        since = cmd.get("since", 0)
        fsince = cmd.get("fsince", 0)
        bsince = cmd.get("bsince", 0)
        for v in (since, fsince, bsince):
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError("since, fsince and bsince are sequence numbers (ints >= 0)")
        rows, lost, seq = self.samples.since(since, _MOST_ROWS)
        frames, flost, fseq = self.frames.since(fsince, _MOST_FRAMES)
        d = self.board.display
        pn = self.board.panel
        blog = pn.buzzer_log
        nb = len(blog)
        want = nb - bsince if bsince <= nb else 0
        buzz = blog.last(min(want, 64)) if want > 0 else []
        r = {
            "ok": True, "now_us": now, "accel": self._vc.get_accel(), "period_us": period_us(),
            "measured_period_us": self.measured_period_us(), "interval_us": self.interval_us,
            "seq": seq, "more": seq < self.samples.n, "lost": lost, "samples": rows,
            "fseq": fseq, "flost": flost, "frames": frames,
            "frame_now": {"frames_written": d.frames_written, "flags": self.flags()},
            "bseq": nb, "buzz": [list(x) for x in buzz], "buzzer": list(pn.buzzer), "led": pn.led,
            "board": {"faults": self.board.faults(), "usb_host_present": self.board.usb_host_present,
                      "hw_limit": self.board.plant.hw_limit_tripped, "scenario": self.board.plant.scenario["name"],
                      "r_skin_ohm": int(self.board.plant.state(now)["r_skin_ohm"])},
        }
        a = self._app()
        s = getattr(a, "s", None) if a is not None else None
        if s is not None:
            r["app"] = {"preset": s.preset.name, "presets": [p.name for p in s.presets], "state": s.state,
                        "refuse": s.refuse, "overruns": getattr(a, "overruns", 0)}
        if self.patient is not None:
            r["patient"] = self.patient.state()
        return r
