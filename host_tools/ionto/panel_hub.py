"""The front panel's link to one virtual unit: polls it, keeps the session's record, checks
and forwards what the page asks for. The HTTP side is ionto/panel.py.

    hub = Hub(".sim")          # a running `ionto sim --state-dir .sim`
    hub.start()                # a thread polls the unit ~10 times a second
    hub.subscribe() -> queue of snapshots; hub.command(client_id, {"cmd": "press", ...})

Everything the page shows comes from the unit's control channel: the unit server's status,
and the `trace` request (hw/sim/tracer.py) with the firmware's numbers beside the plant's
true current, the display frames, the buzzer's notes and the patient. Times on the page are
"panel time": milliseconds of the unit's virtual clock, carried on across its restarts (a
watchdog, a power cut start it again at 0).

Commands are a closed list, each with its arguments checked here before anything reaches
the unit: a refusal changes nothing. One client drives at a time (the one that took control
last); the others watch. When the driving client goes away, every button it holds is
released: a closed page never leaves a button pressed, which no real panel could be.
"""
import json
import queue
import socket
import threading
import time

from . import fw, words
from .shipped import SIM
from .simctl import SimClient, SimError

SCENARIO_DIR = SIM / "scenarios"
EXERCISE_DIR = SIM / "exercises"

COLUMNS = ("t_ms", "ticks", "state", "target_ua", "set_ua", "measured_ua", "true_ua", "electrode_mv",
           "load_ohm", "polarity", "fault", "limited_ua", "dose_uas", "time_left_s", "enable")
BUTTONS = ("START", "STOP", "UP", "DOWN", "MODE")
ACCELS = (1, 10, 0)  # 0: as fast as possible
POLL_S = 0.1
# Fault injection menu: id -> (control-channel request, what the trainer sees). The sensor
# and the display share one I2C bus: "sensor_silent" fails the sensor's address only.
_SENSOR_ADDR = fw.firmware("pins").INA219_ADDR
FAULTS = {
    "sensor_zero": ({"cmd": "fault", "kind": "sensor_stuck", "value": 0}, "Sensor reads zero whatever flows"),
    "sensor_frozen": ({"cmd": "fault", "kind": "sensor_stuck"}, "Sensor frozen at its present reading"),
    "sensor_silent": ({"cmd": "fault", "kind": "i2c_nack", "addr": _SENSOR_ADDR}, "Sensor stops answering on the bus"),
    "bus_stuck": ({"cmd": "fault", "kind": "i2c_stuck"}, "I2C bus stuck (sensor and display)"),
    "output_stuck_on": ({"cmd": "fault", "kind": "output_stuck_on"}, "Output switch welded on"),
    "output_dead": ({"cmd": "fault", "kind": "output_dead"}, "Output stage dead (no current, no voltage)"),
    "limiter_trip": ({"cmd": "fault", "kind": "limiter_trip"}, "Hardware limiter trips (spurious)"),
    "power_cut": ({"cmd": "power_cycle"}, "Power cut: the supply drops and comes back"),
    "power_cut_write": ({"cmd": "fault", "kind": "power_cut", "at": 1}, "Power cut during the next flash write"),
    "watchdog": ({"cmd": "fault", "kind": "wdt_starve"}, "Control loop hangs (the watchdog must reset)"),
}
PATIENT = {
    "tray": {"side": ("left", "right"), "in": bool},
    "one_tray": {"on": bool},
    "splash": {},
    "slow_lift": {"side": ("left", "right"), "s": (1, 10)},
    "sweat": {},
    "soft_water": {"on": bool},
    "cut": {"on": bool},
    "reset": {},
}
COMMANDS = ("take", "release_control", "press", "hold", "release", "patient", "scenario", "fault",
            "clear_faults", "accel", "usb", "exercise", "note")
_HISTORY_ROWS = 4000  # rows a newly opened tab gets at once (thinned evenly)
# The record kept for the share button: hours of sessions at 20 ms; the oldest go first.
_KEEP_ROWS = 400_000
_KEEP_FRAMES = 20_000
_KEEP_NOTES = 20_000


class Refused(Exception):
    """A request the panel will not carry out: HTTP status and one line saying why."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message


def scenario_names():
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.json"))


def load_exercises():
    out = []
    for p in sorted(EXERCISE_DIR.glob("*.json")):
        e = json.loads(p.read_text())
        out.append(e)
    out.sort(key=lambda e: e.get("order", 99))
    return out


class Words:
    """State, fault and limit words from the firmware's own tables (one vocabulary)."""

    def __init__(self):
        lim = fw.firmware("limits")
        self.states = words.display_states()
        self.faults = {row[0]: {"code": row[0], "name": row[1], "line1": row[2], "line2": row[3], "do": row[4]}
                       for row in words.fault_table()}
        self.ua_per_mamin = lim.UAS_PER_MAMIN

    def state(self, code):
        return self.states[code] if 0 <= code < len(self.states) else ("OFF" if code < 0 else "?")

    def fault(self, code):
        return self.faults.get(code)


class Hub:
    def __init__(self, state_dir=".sim", poll_s=POLL_S):
        self.state_dir = str(state_dir)
        self.poll_s = poll_s
        self.ctl = SimClient(state_dir, timeout=5.0)
        self.lock = threading.Lock()  # the control connection, one request at a time
        self.data_lock = threading.Lock()  # record, clients, driver
        self.words = Words()
        self.scenarios = scenario_names()
        self.exercises = load_exercises()
        self.clients = {}  # id -> queue
        self.driver = None
        self.held = {}  # button -> client id holding it
        self.running = False
        self._wake = threading.Event()
        self._thread = None
        self._next_id = 1
        # The record: what the share button saves.
        self.samples = []
        self.frames = []  # [t_ms, hex, flags]
        self.events = []  # [t_ms, kind, text]
        self.buzz = []  # [t_ms, freq, duty]
        self.snapshot = {}
        self._seq = self._fseq = self._bseq = 0
        self._boots = None
        self._offset_ms = 0  # panel time of the unit's virtual 0 in this run of the unit
        self._last_t = 0
        self._prev = None  # last sample row, for events
        self._patient = None  # the patient as last seen, replayed into a restarted unit
        self._pseq = 0  # patient commands sent: a trace asked for before one is older news
        self.error = ""
        self._new_events = []
        self.initial = []  # requests sent once the unit first answers (sent by the poll thread)

    # --- clients ------------------------------------------------------------------------------
    def subscribe(self):
        with self.data_lock:
            cid = "c%d" % self._next_id
            self._next_id += 1
            q = queue.Queue(maxsize=200)
            self.clients[cid] = q
            if self.driver is None:
                self.driver = cid
            hello = {"type": "hello", "client": cid, "columns": COLUMNS, "scenarios": self.scenarios,
                     "faults": {k: v[1] for k, v in FAULTS.items()}, "exercises": self.exercises,
                     "states": self.words.states, "fault_words": self.words.faults,
                     "history": self._thin(self.samples), "events": list(self.events),
                     "frame": self.frames[-1] if self.frames else None}
        q.put(hello)
        self._wake.set()
        return cid, q

    def unsubscribe(self, cid):
        release = []
        with self.data_lock:
            self.clients.pop(cid, None)
            if self.driver == cid:
                self.driver = None
                release = [b for b, c in self.held.items() if c == cid]
        for b in release:
            self._release(b, "the driving page closed")

    def _thin(self, rows):
        if len(rows) <= _HISTORY_ROWS:
            return list(rows)
        step = len(rows) / _HISTORY_ROWS
        return [rows[int(i * step)] for i in range(_HISTORY_ROWS)] + [rows[-1]]

    def _broadcast(self, msg):
        with self.data_lock:
            qs = list(self.clients.items())
        for cid, q in qs:
            try:
                q.put_nowait(msg)
            except queue.Full:
                pass  # a stalled tab misses updates; its connection ends on the next write error

    # --- the unit -----------------------------------------------------------------------------
    def _req(self, cmd, **kw):
        with self.lock:
            return self.ctl.request(cmd, check=False, **kw)

    def start(self):
        self.running = True
        self._thread = threading.Thread(target=self._run, name="panel-poll", daemon=True)
        self._thread.start()

    def stop(self, unit_going=False):
        """End polling and release what pages held. unit_going: the unit stops with us (`ionto
        sim --panel`): its unit server no longer answers, so a request in flight is cut, not
        waited for, and there is nothing left to release."""
        self.running = False
        self._wake.set()
        if unit_going:
            s = self.ctl._sock
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not unit_going:
            with self.data_lock:
                held = list(self.held)
            for b in held:
                self._release(b, "the panel stopped")
        with self.lock:
            self.ctl.close()

    def _run(self):
        while self.running:
            more = False
            try:
                more = self.poll()
                self.error = ""
            except SimError as e:
                self.error = str(e)
                self._broadcast({"type": "state", "error": self.error})
            except Exception as e:  # a bug in the panel must not end the unit's session
                self.error = "%s: %s" % (type(e).__name__, e)
                self._broadcast({"type": "state", "error": self.error})
            if not more:
                self._wake.wait(self.poll_s)
                self._wake.clear()

    def poll(self):
        """One round: status, trace, snapshot to every client. True if the unit has more."""
        st = self._req("status")
        if not st.get("ok"):
            raise SimError(st.get("error", "no status"))
        if not st.get("running"):
            self._broadcast({"type": "state", "off": st.get("off_reason") or "the unit is off"})
            return False
        while self.initial:
            req = dict(self.initial[0])
            if not self._req(req.pop("cmd"), **req).get("ok"):
                break  # still booting: again at the next round
            self.initial.pop(0)
        if st.get("boots") != self._boots:
            restarted = self._boots is not None
            self._boots = st.get("boots")
            self._seq = self._fseq = 0  # a new run of the unit: its rings start again
            self._offset_ms = self._last_t + (1 if restarted else 0)
            self._prev = None
            if restarted:
                self._event(self._last_t, "unit", "the unit restarted (%s)" % (
                    "watchdog or reset" if st.get("last_exit") == -10 else "power on"))
                self._restore_patient()
        pseq = self._pseq
        r = self._req("trace", since=self._seq, fsince=self._fseq, bsince=self._bseq)
        if not r.get("ok"):
            raise SimError(r.get("error", "trace failed"))
        return self._absorb(r, pseq == self._pseq)

    def _restore_patient(self):
        # The patient outlives the unit's restart: hands out stay out.
        p = self._patient
        if not p:
            return
        for side in ("left", "right"):
            if not p["trays"].get(side, True):
                self._req("patient", do="tray", side=side, **{"in": False})
        if p.get("one_tray"):
            self._req("patient", do="one_tray", on=True)
        if p.get("soft_water"):
            self._req("patient", do="soft_water", on=True)

    def _absorb(self, r, patient_news=True):
        off = self._offset_ms
        rows = []
        for row in r["samples"]:
            row = list(row)
            row[0] += off
            rows.append(row)
        frames = [[t + off, h, fl] for t, h, fl in r["frames"]]
        if r["bseq"] < self._bseq:
            self._bseq = 0
        buzz = [[t // 1000 + off, f, d] for t, f, d in r["buzz"]]
        for row in rows:
            self._events_from(row)
        now_t = r["now_us"] // 1000 + off
        self._last_t = max(self._last_t, now_t)
        self._seq, self._fseq, self._bseq = r["seq"], r["fseq"], r["bseq"]
        if r.get("patient") and patient_news:
            self._patient = r["patient"]
        with self.data_lock:
            self.samples += rows
            self.frames += frames
            self.buzz += buzz
            for lst, keep in ((self.samples, _KEEP_ROWS), (self.frames, _KEEP_FRAMES), (self.buzz, _KEEP_NOTES)):
                if len(lst) > keep:
                    del lst[:len(lst) - keep]
            driver = self.driver
            nclients = len(self.clients)
            new_events, self._new_events = self._new_events, []
            events_start = len(self.events) - len(new_events)
            held = sorted(self.held)
        last = rows[-1] if rows else (self.samples[-1] if self.samples else None)
        snap = {
            "type": "state", "t_ms": now_t, "accel": r["accel"], "period_us": r["period_us"],
            "measured_period_us": r["measured_period_us"], "interval_us": r["interval_us"],
            "led": r["led"], "buzzer": r["buzzer"], "board": r["board"], "patient": r.get("patient"),
            "app": r.get("app"), "driver": driver, "clients": nclients, "held": held, "lost": r["lost"],
            "samples": rows, "frames": frames, "buzz": buzz, "events": new_events, "events_start": events_start,
            "unit": self._unit(last),
        }
        self.snapshot = snap
        self._broadcast(snap)
        return bool(r.get("more"))

    def _unit(self, row):
        if row is None:
            return None
        u = dict(zip(COLUMNS, row))
        u["state_name"] = self.words.state(u["state"])
        f = self.words.fault(u["fault"])
        u["fault_words"] = f
        u["dose_mamin"] = u["dose_uas"] / self.words.ua_per_mamin
        return u

    def _event(self, t, kind, text):
        ev = [t, kind, text]
        with self.data_lock:
            self.events.append(ev)
            self._new_events.append(ev)  # to every page with the next snapshot
        return ev

    def _events_from(self, row):
        # Pauses, reversals, limits and faults, from what the firmware's state did.
        p = self._prev
        self._prev = row
        if p is None:
            return
        t = row[0]
        st, pst = row[2], p[2]
        if st != pst:
            name = self.words.state(st)
            kind = {"PAUSED": "pause", "REVERSING": "reverse", "FAULT": "fault"}.get(name, "state")
            if kind != "reverse" or self.words.state(pst) != "REVERSING":
                self._event(t, kind, name)
        if row[9] != p[9] and st >= 0 and pst >= 0:
            self._event(t, "polarity", "polarity %s" % words.polarity(row[9]))
        if row[10] != p[10] and row[10]:
            self._event(t, "fault", words.fault_words(row[10]))
        if (row[11] >= 0) != (p[11] >= 0) and st >= 0:
            self._event(t, "limit", "limited to %s" % words.ma(row[11]) if row[11] >= 0 else "limit ended")

    # --- commands -------------------------------------------------------------------------
    def command(self, cid, msg):
        """One request from a page -> reply dict. Raises Refused (nothing is done)."""
        if not isinstance(msg, dict):
            raise Refused(400, "a command is a JSON object like {\"cmd\": \"press\", \"button\": \"START\"}")
        cmd = msg.get("cmd")
        if cmd not in COMMANDS:
            raise Refused(400, "unknown command %r (commands: %s)" % (cmd, ", ".join(COMMANDS)))
        with self.data_lock:
            if cid not in self.clients:
                raise Refused(403, "unknown client: reload the page")
            if cmd == "take":
                self.driver = cid
                self._wake.set()
                return {"ok": True, "driver": cid}
            if self.driver != cid:
                raise Refused(409, "another page drives the unit: press Take control to drive from here")
            if cmd == "release_control":
                self.driver = None
                return {"ok": True, "driver": None}
        req, note = self._check(cmd, msg)
        if req is None:  # words for the record only (an exercise done, a trainer's note)
            self._event(self._last_t, cmd, msg["text"])
            return {"ok": True}
        if cmd == "release":
            with self.data_lock:
                self.held.pop(req["button"], None)
        r = self._send(req)
        if cmd == "patient":
            # The patient as it is now, not at the last poll: a power cut right after a hand
            # came out must restore the hand out (_restore_patient).
            self._pseq += 1
            self._patient = {k: v for k, v in r.items() if k != "ok"}
        if cmd == "hold" and r.get("ok"):
            with self.data_lock:
                self.held[req["button"]] = cid
        if r.get("ok") and note:
            self._event(self._last_t, "panel", note)
        self._wake.set()
        return r

    def _send(self, req):
        req = dict(req)
        c = req.pop("cmd")
        try:
            r = self._req(c, **req)
        except SimError as e:
            raise Refused(503, "the virtual unit did not answer: %s" % e)
        if not r.get("ok"):
            raise Refused(502, "the unit refused: %s" % r.get("error", "?"))
        return r

    def _release(self, button, why):
        with self.data_lock:
            self.held.pop(button, None)
        try:
            self._req("release", button=button)
            self._event(self._last_t, "panel", "%s released: %s" % (button, why))
        except SimError:
            pass

    def _check(self, cmd, m):
        """The control-channel request for a page's command, or Refused."""
        def only(*keys):
            extra = sorted(set(m) - {"cmd", "client"} - set(keys))
            if extra:
                raise Refused(400, "%s: unexpected field(s) %s" % (cmd, ", ".join(extra)))

        if cmd in ("press", "hold", "release"):
            only("button")
            b = m.get("button")
            if b not in BUTTONS:
                raise Refused(400, "%s: button must be one of %s" % (cmd, ", ".join(BUTTONS)))
            if cmd == "press":
                return {"cmd": "press", "button": b, "hold_ms": 120}, "pressed %s" % b
            return {"cmd": cmd, "button": b}, ("%s held" % b if cmd == "hold" else None)
        if cmd == "patient":
            do = m.get("do")
            if do not in PATIENT:
                raise Refused(400, "patient: do must be one of %s" % ", ".join(PATIENT))
            spec = PATIENT[do]
            only("do", *spec)
            req = {"cmd": "patient", "do": do}
            for k, rule in spec.items():
                if k not in m:
                    continue
                v = m[k]
                if rule is bool:
                    if not isinstance(v, bool):
                        raise Refused(400, "patient %s: %s must be true or false" % (do, k))
                elif isinstance(rule, tuple) and isinstance(rule[0], str):
                    if v not in rule:
                        raise Refused(400, "patient %s: %s must be one of %s" % (do, k, ", ".join(rule)))
                else:
                    if not isinstance(v, (int, float)) or isinstance(v, bool) or not rule[0] <= v <= rule[1]:
                        raise Refused(400, "patient %s: %s must be a number %g..%g" % (do, k, rule[0], rule[1]))
                req[k] = v
            on = "on" if m.get("on") else "off"
            said = {"tray": "%s %s" % (m.get("side", "?"), "in" if m.get("in") else "out"),
                     "one_tray": "both electrodes in one tray" if m.get("on") else "electrodes in their own trays",
                     "slow_lift": "slow lift (%s)" % m.get("side", "right"), "soft_water": "soft water %s" % on,
                     "cut": "cut in the skin %s" % on}
            return req, "patient: %s" % said.get(do, do.replace("_", " "))
        if cmd == "scenario":
            only("name")
            n = m.get("name")
            if n not in self.scenarios:
                raise Refused(400, "scenario: name must be one of %s" % ", ".join(self.scenarios))
            return {"cmd": "scenario", "name": n}, "scenario %s" % n
        if cmd == "fault":
            only("id")
            f = m.get("id")
            if f not in FAULTS:
                raise Refused(400, "fault: id must be one of %s" % ", ".join(FAULTS))
            return dict(FAULTS[f][0]), "injected: %s" % FAULTS[f][1]
        if cmd == "clear_faults":
            only()
            return {"cmd": "clear_faults"}, "faults repaired"
        if cmd == "accel":
            only("x")
            x = m.get("x")
            if x not in ACCELS or isinstance(x, bool):
                raise Refused(400, "accel: x must be 1, 10 or 0 (as fast as possible)")
            return {"cmd": "accel", "x": x}, "time x%s" % (x or " fastest")
        if cmd == "usb":
            only("host_present")
            v = m.get("host_present")
            if not isinstance(v, bool):
                raise Refused(400, "usb: host_present must be true or false")
            return {"cmd": "usb", "host_present": v}, "USB cable %s" % ("plugged in" if v else "unplugged")
        if cmd in ("exercise", "note"):
            only("text")
            t = m.get("text")
            if not isinstance(t, str) or not 0 < len(t) <= 200:
                raise Refused(400, "%s: text must be 1..200 characters" % cmd)
            return None, None
        raise Refused(400, "unknown command %r" % cmd)

    # --- the record -----------------------------------------------------------------------
    def record(self):
        """The session as one JSON-able dict: trace, display frames, events, buzzer notes."""
        with self.data_lock:
            return {"format": "ionto-panel-record", "version": 1, "saved_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                         time.gmtime()),
                    "columns": COLUMNS, "states": self.words.states,
                    "fault_words": {str(k): v for k, v in self.words.faults.items()},
                    "period_us": self.snapshot.get("period_us"), "scenario": (self.snapshot.get("board") or {}).get(
                        "scenario"), "samples": list(self.samples), "frames": list(self.frames),
                    "events": list(self.events), "buzz": list(self.buzz)}
