"""The patient side of the virtual unit: what a person in front of the unit can do to the load.

    p = Patient(board.plant, vclock)
    p.handle({"cmd": "patient", "do": "tray", "side": "left", "in": False})   # a hand out

The plant has one contact (the series circuit through both trays): a hand out of EITHER tray
opens it; both electrodes in one tray shorts it through the water. Patient keeps each tray's
state and derives the plant's contact from them. Everything that takes time (a splash, a slow
lift, sweating) is scheduled on the virtual clock as hardware events, so it happens at the
same virtual time whatever the time acceleration. Runs on CPython and MicroPython.

Actions ("do"):
  tray {"side": "left"|"right", "in": bool}   a hand (foot, pad) into or out of its tray
  one_tray {"on": bool}                       both electrodes in one tray (a short)
  splash                                      contact flickers open 3 times over 0.3 s
  slow_lift {"s": 3}                          the wetted area shrinks (series resistance
                                              doubles 5 times over s seconds), then out
  sweat                                       skin resistance falls to half over about 1 min
  soft_water {"on": bool}                     very soft water (series resistance 9 kOhm)
  cut {"on": bool}                            a cut in the skin: skin resistance 500 Ohm
  reset                                       back to the scenario's load, both trays in
"""
from micropython import const

_SPLASH = ((0, 12_000), (90_000, 15_000), (210_000, 10_000))  # (start, length) us
_SLOW_STEPS = const(5)
_SOFT_SERIES_OHM = 9000.0
_CUT_SKIN_OHM = 500.0
_SWEAT_TAU_S = 60.0
SIDES = ("left", "right")
ACTIONS = ("tray", "one_tray", "splash", "slow_lift", "sweat", "soft_water", "cut", "reset")


class Patient:
    def __init__(self, plant, vclock):
        self.plant = plant
        self._vc = vclock
        self._pending = []  # scheduled clock entries, cancelled by the next action that conflicts
        self.reset()

    def reset(self):
        self._cancel()
        self.trays = {"left": True, "right": True}
        self.one_tray = False
        self.soft_water = False
        self.cut = False
        self.sweating = False
        self.splashing = False
        self.lifting = False
        sc = self.plant.scenario
        self._series0 = sc["load"]["r_series_ohm"]
        # A scenario that starts shorted (short_one_tray) is two electrodes in one tray.
        c = sc["load"]["contact"]
        self.one_tray = c == "short"
        if c == "lifted":
            self.trays["right"] = False

    # --- what the plant sees ----------------------------------------------------------------
    def contact(self):
        if not (self.trays["left"] and self.trays["right"]):
            return "lifted"
        return "short" if self.one_tray else "immersed"

    def _apply_contact(self, _=None):
        c = self.contact()
        if self.plant.contact != c:
            self.plant.set_contact(c)

    def state(self):
        return {"trays": dict(self.trays), "one_tray": self.one_tray, "soft_water": self.soft_water,
                "cut": self.cut, "sweating": self.sweating, "splashing": self.splashing,
                "lifting": self.lifting, "contact": self.plant.contact}

    # --- scheduling -------------------------------------------------------------------------
    def _at(self, dt_us, fn, arg=None):
        e = self._vc.at(self._vc.now_us() + dt_us, fn, arg)
        self._pending.append(e)
        return e

    def _cancel(self):
        for e in self._pending:
            self._vc.cancel(e)
        self._pending = []
        self.splashing = False
        self.lifting = False

    # --- actions ----------------------------------------------------------------------------
    def handle(self, cmd):
        do = cmd.get("do")
        if do not in ACTIONS:
            raise ValueError("unknown patient action %r (actions: %s)" % (do, ", ".join(ACTIONS)))
        getattr(self, "_" + do)(cmd)
        r = self.state()
        r["ok"] = True
        return r

    def _tray(self, cmd):
        side = cmd.get("side")
        if side not in SIDES:
            raise ValueError("side must be left or right, not %r" % (side,))
        self._cancel()
        self._restore_series()
        self.trays[side] = bool(cmd.get("in", not self.trays[side]))
        self._apply_contact()

    def _one_tray(self, cmd):
        self._cancel()
        self.one_tray = bool(cmd.get("on", not self.one_tray))
        self._apply_contact()

    def _splash(self, cmd):
        # Water sloshes: the contact opens for 10-15 ms a few times, shorter than the firmware's
        # contact-lost window, so a well-behaved unit carries on without pausing.
        self._cancel()
        self.splashing = True
        for start, length in _SPLASH:
            self._at(start, self._flick, False)
            self._at(start + length, self._flick, True)
        self._at(_SPLASH[-1][0] + _SPLASH[-1][1] + 1, self._splash_end)

    def _flick(self, closed):
        if closed:
            self._apply_contact()
        elif self.contact() != "lifted":
            self.plant.set_contact("lifted")

    def _splash_end(self, _=None):
        self.splashing = False
        self._apply_contact()

    def _slow_lift(self, cmd):
        # The hand leaves the water over s seconds: less wetted skin, so the series resistance
        # doubles at each step (the current falls or the unit runs into compliance), then the
        # contact opens. The hand stays out until put back.
        s = cmd.get("s", 3)
        if not isinstance(s, (int, float)) or isinstance(s, bool) or not 0.5 <= s <= 60:
            raise ValueError("slow_lift: s must be 0.5..60 seconds, not %r" % (s,))
        side = cmd.get("side", "right")
        if side not in SIDES:
            raise ValueError("side must be left or right, not %r" % (side,))
        self._cancel()
        self._restore_series()
        self.lifting = True
        step = int(s * 1_000_000) // (_SLOW_STEPS + 1)
        for k in range(1, _SLOW_STEPS + 1):
            self._at(step * k, self._series, self._series_now() * (2 ** k))
        self._at(step * (_SLOW_STEPS + 1), self._lifted, side)

    def _series(self, ohm):
        self.plant.set_load(r_series_ohm=float(ohm))

    def _lifted(self, side):
        self.lifting = False
        self.trays[side] = False
        self._restore_series()
        self._apply_contact()

    def _series_now(self):
        return _SOFT_SERIES_OHM if self.soft_water else self._series0

    def _restore_series(self):
        if self.plant.r_series_ohm != self._series_now():
            self.plant.set_load(r_series_ohm=float(self._series_now()))

    def _sweat(self, cmd):
        # Sweating skin conducts better: the resistance heads for half its present value
        # within about a minute (the plant's hydration model, restarted from now).
        self.sweating = True
        rp = self.plant.state()["r_skin_ohm"]
        self.plant.set_load(r_skin_final_ohm=float(max(rp // 2, 1)), hydration_tau_s=_SWEAT_TAU_S)

    def _soft_water(self, cmd):
        self.soft_water = bool(cmd.get("on", not self.soft_water))
        self._restore_series()

    def _cut(self, cmd):
        self.cut = bool(cmd.get("on", not self.cut))
        if self.cut:
            self.plant.set_load(r_skin_ohm=_CUT_SKIN_OHM, r_skin_final_ohm=_CUT_SKIN_OHM)
        else:
            ld = self.plant.scenario["load"]
            self.plant.set_load(r_skin_ohm=ld["r_skin_final_ohm"], r_skin_final_ohm=ld["r_skin_final_ohm"])

    def _reset(self, cmd):
        self.plant.load(self.plant.scenario)
        self.reset()
        self._apply_contact()
