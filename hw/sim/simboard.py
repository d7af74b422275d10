"""The simulated reference board: models wired to the `machine` mock by firmware/pins.py.

    board = Board("palms")          # or a scenario dict, or None for palms

- Output stage: the setpoint PWM's average level, the enable, polarity and gate pins drive
  plant.Plant; the plant's limiter drives PIN_HW_LIMIT (open drain with pull-up: low = tripped).
- I2C bus I2C_ID: the INA219 model at INA219_ADDR reads the shunt (low side: its bus input
  sits at ground, so bus voltage reads 0), the SSD1306 model at SSD1306_ADDR, the FRAM
  journal chip (fram_model.FRAM) at FRAM_ADDR: over `fram_path` so it persists across the
  virtual unit's restarts, sharing the flash's Power (`power`) so a cut can land in its writes.
- ADC PIN_ELECTRODE_ADC: the electrode voltage through the divider; ADC PIN_SENSE_ADC: the
  second current channel (RS2's drop, plant.sense_ua); PWM PIN_CLAMP_PWM sets the plant's
  adaptive compliance clamp.
- Sensing faults of the INA219 path (the second channel is not touched): `sensor_stuck`
  (its analog input stuck at value uA, default what flows now; 0 is "stuck at zero"; the
  chip's own noise still shows), `sensor_frozen` (its shunt register frozen: the same reading
  every conversion, value uA, default what it reads now), `sensor_gain` (reads
  value x the truth), `sensor_noise` (+- value uA, a fresh draw per conversion),
  `sensor_drift` (reading drifts by value uA per second from the moment of injection).
- PIN_VBUS_SENSE: high while `usb_host_present`. `isolated_usb` is the board's declaration
  that its USB port is isolated (the USB interlock); both can be changed on the fly.
- Nurse panel: panel.Panel (buttons, buzzer, LED).
- `handle(cmd)`: the control-channel commands that concern the board (see handle()).

After machine.sim_power_on() call board.power_on() (it is also detected on the next clock
step, as virtual time restarting at 0).
"""
import pins
import plant as _plant
import scenario as _scenario
import panel as _panel
import ssd1306_model
import fram_model

_HOOK_STEP = 1000  # us: the limiter is watched at least this often while time runs
_SHUNT_MOHM = pins.SHUNT_MILLIOHM
_DIV_NUM = pins.DIVIDER_BOTTOM_OHM * 65535
_DIV_DEN = (pins.DIVIDER_TOP_OHM + pins.DIVIDER_BOTTOM_OHM) * pins.ADC_VREF_MV

FAULTS = ("i2c_nack", "i2c_stuck", "sensor_stuck", "sensor_frozen", "sensor_gain", "sensor_noise", "sensor_drift",
          "output_stuck_on", "output_dead", "clear")
_SENSE_NUM = pins.SENSE_MILLIOHM * 65535
_SENSE_DEN = pins.ADC_VREF_MV * 1_000_000


_ram_fram = None


def _fram(path, power):
    # Over a file for the virtual unit; otherwise one chip in RAM per process, kept across
    # Boards (a script may build many: 32 KiB each would fill a small MicroPython heap), on a
    # fresh supply unless one is given. Non-volatile either way, as the chip is.
    global _ram_fram
    if path is not None:
        return fram_model.FRAM(path, power)
    if _ram_fram is None:
        _ram_fram = fram_model.FRAM()
    _ram_fram.power = power if power is not None else fram_model.flash.Power()
    return _ram_fram


class Board:
    def __init__(self, scenario=None, machine=None, vclock=None, ina219_cls=None, seed=1, fram_path=None, power=None):
        if machine is None:
            import machine
        if vclock is None:
            import vclock
        self._m = machine
        self._vc = vclock
        _scenario.preload()  # before the unit mounts its own filesystem over /
        self.plant = _plant.Plant(scenario, clock=vclock.now_us)
        self.plant.on_trip = self._on_trip
        self.display = ssd1306_model.SSD1306()
        if ina219_cls is None:
            from ina219_model import INA219 as ina219_cls
        self.ina219 = ina219_cls(self._shunt_source)
        self.bus = machine.sim_i2c_bus(pins.I2C_ID)
        self.bus.attach(pins.INA219_ADDR, self.ina219)
        self.bus.attach(pins.SSD1306_ADDR, self.display)
        self.fram = _fram(fram_path, power)
        self.bus.attach(pins.FRAM_ADDR, self.fram)
        self.sensor_stuck_ua = None
        self.sensor_gain = None  # reading = gain x truth
        self.sensor_noise_ua = 0  # +- amplitude per conversion
        self.sensor_drift = None  # (uA per s, since us)
        self._noise_x = 0x2545F491
        self.usb_host_present = True
        self.isolated_usb = False
        self._last_hook = vclock.now_us()
        self._closed = False
        m = machine
        m.sim_pwm(pins.PIN_SETPOINT_PWM).on_change(self._on_setpoint)
        m.sim_pin(pins.PIN_OUTPUT_ENABLE).on_change(self._on_enable)
        m.sim_pin(pins.PIN_POLARITY).on_change(self._on_polarity)
        m.sim_pwm(pins.PIN_PULSE_GATE).on_change(self._on_gate)
        m.sim_adc(pins.PIN_ELECTRODE_ADC, self._adc)
        m.sim_adc(pins.PIN_SENSE_ADC, self._adc_sense)
        m.sim_pwm(pins.PIN_CLAMP_PWM).on_change(self._on_clamp)
        self.panel = _panel.Panel(machine, vclock, seed)
        vclock.add_hook(self._hook, timed=True)
        self._sync_inputs()
        self._drive_outputs()

    # --- wiring ----------------------------------------------------------------------------
    def _shunt_source(self, now_us):
        # The INA219's inputs (shunt uV, bus mV) over a window (t0, t1) or at an instant. The
        # rare sensing faults are a function of their own: a small frame stays on the C stack.
        i = self.sensor_stuck_ua
        if i is None:
            i = self.plant.current_ua(now_us)
            if self.sensor_gain is not None or self.sensor_drift is not None or self.sensor_noise_ua:
                i = self._sensor_faults(i, now_us)
        return (i * _SHUNT_MOHM // 1000, 0)

    def _sensor_faults(self, i, now_us):
        if self.sensor_gain is not None:
            i = int(i * self.sensor_gain)
        if self.sensor_drift is not None:
            rate, t0 = self.sensor_drift
            t = now_us[1] if type(now_us) is tuple else now_us
            i += int(rate * (t - t0) / 1_000_000)
        if self.sensor_noise_ua:
            x = self._noise_x  # xorshift32: repeatable runs
            x ^= (x << 13) & 0xFFFFFFFF
            x ^= x >> 17
            x ^= (x << 5) & 0xFFFFFFFF
            self._noise_x = x
            a = self.sensor_noise_ua
            i += x % (2 * a + 1) - a
        return i

    def _adc_sense(self):
        ua = self.plant.sense_ua(self._vc.now_us())
        v = ua * _SENSE_NUM // _SENSE_DEN
        return 65535 if v > 65535 else v

    def _on_clamp(self, pid, mean):
        if self._closed:
            return
        self.plant.set_clamp(mean * pins.CLAMP_FULL_SCALE_MV / 65535)

    def _adc(self):
        mv = self.plant.electrode_mv(self._vc.now_us())
        v = mv * _DIV_NUM // _DIV_DEN
        return 65535 if v > 65535 else v

    def _on_setpoint(self, pid, mean):
        if self._closed:
            return
        self.plant.set_duty(mean)

    def _on_enable(self, pid, level):
        if self._closed:
            return
        self.plant.set_enable(level)

    def _on_polarity(self, pid, level):
        if self._closed:
            return
        self.plant.set_polarity(level)

    def _on_gate(self, pid, mean):
        if self._closed:
            return
        v = self._m.sim_pwm(pid)
        if v.enabled and 0 < mean < 65535:
            self.plant.set_gate_pwm(v.freq, mean)
        else:
            self.plant.set_gate(1 if mean >= 32768 else 0)

    def _on_trip(self, tripped):
        if self._closed:
            return
        self._m.sim_pin(pins.PIN_HW_LIMIT).drive(0 if tripped else 1)

    def _hook(self, now):
        # A timed clock hook: returns when it next needs to run (the clock skips it until then).
        last = self._last_hook
        if now < last:
            self.power_on()
            return now + _HOOK_STEP
        if now - last >= _HOOK_STEP:
            self._last_hook = now
            self.plant.current_ua(now)  # lets the limiter trip with nobody reading
            return now + _HOOK_STEP
        return last + _HOOK_STEP

    def _sync_inputs(self):
        m = self._m
        p = self.plant
        p.set_duty(m.sim_pwm(pins.PIN_SETPOINT_PWM).mean_u16)
        p.set_enable(m.sim_pin(pins.PIN_OUTPUT_ENABLE).value)
        p.set_polarity(m.sim_pin(pins.PIN_POLARITY).value)
        p.set_clamp(m.sim_pwm(pins.PIN_CLAMP_PWM).mean_u16 * pins.CLAMP_FULL_SCALE_MV / 65535)
        self._on_gate(pins.PIN_PULSE_GATE, m.sim_pwm(pins.PIN_PULSE_GATE).mean_u16)

    def _drive_outputs(self):
        m = self._m
        m.sim_pin(pins.PIN_HW_LIMIT).drive(0 if self.plant.hw_limit_tripped else 1)
        m.sim_pin(pins.PIN_VBUS_SENSE).drive(1 if self.usb_host_present else 0)

    def power_on(self):
        """The board was powered up again (after machine.sim_power_on())."""
        now = self._vc.now_us()
        self._last_hook = now
        self.plant.power_on(now)
        self.display.reset()
        if hasattr(self.ina219, "reset"):
            self.ina219.reset()
        self.panel.release_all()
        self._sync_inputs()
        self._drive_outputs()

    def close(self):
        """Unhook from the clock, the bus and the pins (the mock keeps listeners: they go idle)."""
        self._closed = True
        self.panel.closed = True
        self._vc.remove_hook(self._hook)
        self.bus.detach(pins.INA219_ADDR)
        self.bus.detach(pins.SSD1306_ADDR)
        self._m.sim_adc(pins.PIN_ELECTRODE_ADC, None)
        self._m.sim_adc(pins.PIN_SENSE_ADC, None)

    def set_usb(self, host_present=None, isolated=None):
        if host_present is not None:
            self.usb_host_present = bool(host_present)
        if isolated is not None:
            self.isolated_usb = bool(isolated)
        self._drive_outputs()

    # --- faults ----------------------------------------------------------------------------
    def fault(self, kind, value=None, addr=None):
        if kind == "i2c_nack" or kind == "i2c_stuck":
            self.bus.fault = "nack" if kind == "i2c_nack" else "stuck"
            self.bus.fault_addr = addr
        elif kind == "sensor_stuck":
            # The INA219 keeps reading `value` uA (default: what flows now) whatever flows.
            self.sensor_stuck_ua = int(value) if value is not None else self.plant.current_ua()
        elif kind == "sensor_frozen":
            ina = self.ina219
            if value is None:
                raw = ina.peek(1) if hasattr(ina, "peek") else 0
            else:
                raw = int(value) * pins.SHUNT_MILLIOHM // 10_000  # uV / 10 uV per LSB
            ina.stuck_shunt_reg = raw & 0xFFFF
        elif kind == "sensor_gain":
            self.sensor_gain = float(value) if value is not None else 0.5
        elif kind == "sensor_noise":
            self.sensor_noise_ua = int(value) if value is not None else 2_000
        elif kind == "sensor_drift":
            self.sensor_drift = (float(value) if value is not None else 1_000.0, self._vc.now_us())
        elif kind == "output_stuck_on":
            self.plant.set_faults(stuck_on=True)
        elif kind == "output_dead":
            self.plant.set_faults(dead=True)
        elif kind == "clear":
            self.clear_faults()
        else:
            raise ValueError("unknown fault %r (faults: %s)" % (kind, ", ".join(FAULTS)))

    def clear_faults(self):
        self.bus.fault = None
        self.bus.fault_addr = None
        self.sensor_stuck_ua = None
        self.sensor_gain = None
        self.sensor_noise_ua = 0
        self.sensor_drift = None
        if getattr(self.ina219, "stuck_shunt_reg", None) is not None:
            self.ina219.stuck_shunt_reg = None
        self.plant.set_faults(stuck_on=False, dead=False)

    def faults(self):
        f = list(self.plant.state()["faults"])
        if self.bus.fault:
            f.append("i2c_" + self.bus.fault)
        if self.sensor_stuck_ua is not None:
            f.append("sensor_stuck")
        if getattr(self.ina219, "stuck_shunt_reg", None) is not None:
            f.append("sensor_frozen")
        if self.sensor_gain is not None:
            f.append("sensor_gain")
        if self.sensor_noise_ua:
            f.append("sensor_noise")
        if self.sensor_drift is not None:
            f.append("sensor_drift")
        return f

    # --- views -----------------------------------------------------------------------------
    def state(self):
        now = self._vc.now_us()
        s = self.plant.state(now)
        s["faults"] = self.faults()
        s["led"] = self.panel.led
        s["buzzer"] = list(self.panel.buzzer)
        s["usb_host_present"] = self.usb_host_present
        s["isolated_usb"] = self.isolated_usb
        s["display_on"] = self.display.on
        s["sensor_stuck_ua"] = self.sensor_stuck_ua
        s["sense_ua"] = self.plant.sense_ua(now)
        s["clamp_mv"] = int(self.plant.clamp_mv)
        return s

    def frame(self):
        d = self.display
        return {"hex": "".join("%02x" % b for b in d.frame), "on": d.on, "contrast": d.contrast,
                "frames_written": d.frames_written}

    # --- control channel -------------------------------------------------------------------
    def handle(self, cmd):
        """One control-channel request -> reply dict ({"ok": True, ...} or {"ok": False, "error"}).

        {"cmd": "press", "button": "START", "hold_ms": 120, "after_ms": 0}; "hold"/"release" with "button";
        {"cmd": "scenario", "name": "palms"} or {"cmd": "scenario", "data": {...}} (neither:
        the current one and the names available); {"cmd": "fault", "kind": K, "value": uA,
        "addr": a} with K in FAULTS; {"cmd": "clear_faults"}; {"cmd": "usb", "host_present":
        b, "isolated": b}; {"cmd": "state"}; {"cmd": "frame"}.
        """
        try:
            return self._handle(cmd)
        except (ValueError, KeyError, TypeError) as e:
            return {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}

    def _handle(self, cmd):
        c = cmd.get("cmd")
        p = self.panel
        if c == "press":
            after = cmd.get("after_ms", 0)  # later in virtual time: a sequence the host's pace cannot stretch
            t = p.press(cmd["button"], cmd.get("hold_ms", 120), self._vc.now_us() + int(after * 1000) if after else None)
            return {"ok": True, "release_us": t}
        if c == "hold":
            p.hold(cmd["button"])
            return {"ok": True}
        if c == "release":
            p.release(cmd["button"])
            return {"ok": True}
        if c == "scenario":
            spec = cmd.get("data", cmd.get("name"))
            if spec is not None:
                self.plant.load(spec)
            return {"ok": True, "scenario": self.plant.scenario["name"], "names": _scenario.names()}
        if c == "fault":
            self.fault(cmd["kind"], cmd.get("value"), cmd.get("addr"))
            return {"ok": True, "faults": self.faults()}
        if c == "clear_faults":
            self.clear_faults()
            return {"ok": True, "faults": []}
        if c == "usb":
            self.set_usb(cmd.get("host_present"), cmd.get("isolated"))
            return {"ok": True, "usb_host_present": self.usb_host_present, "isolated_usb": self.isolated_usb}
        if c == "state":
            s = self.state()
            s["ok"] = True
            return s
        if c == "frame":
            f = self.frame()
            f["ok"] = True
            return f
        return {"ok": False, "error": "not a board command: %r" % (c,)}
