"""The reference board around the emulated Pico: the virtual unit's models, answering its pins.

hw/rp2/emu/pico.mjs runs the chip (rp2040js) and asks this board, over a pipe, what the
devices on its pins answer (protocol at the top of pico.mjs). The models are the virtual
unit's own (hw/sim/plant.py, ina219_model.py, ssd1306_model.py, scenario.py): one plant for
both targets. They run here on CPython, each request carrying the chip's emulated time, so the
plant moves in the chip's time and a run is as deterministic as the chip's cycles.

Why a pipe to a Python process and not a JavaScript plant: the chip asks the board a few times
per control period (one INA219 read, an ADC read, a poll each emulated millisecond), a few
hundred requests per wall second at the emulator's speed; one round trip costs ~30 us, well
under 1 % of the emulator's time, and the models stay one implementation.

Pins and addresses come from firmware/pins.py. Board time outlives the chip: after a reset
the emulator's clock restarts at 0 and `base_us` keeps the plant's time going forward.

Faults (`fault(kind, value)`, names as the virtual unit's hw/sim/simboard.py where it has them):
  over_current   the current source fails high: its setpoint input at value uA (31 mA) whatever
                 the chip commands (the clamp still follows the chip)
  short          the electrodes shorted (one tray, water bridging): the plant's short contact
  lifted         contact lost: the hands out of the water (open circuit)
  limiter        the hardware limiter trips (the plant's latch: the return path opens)
  i2c_nack       the device at value (the INA219) does not acknowledge its address
  sensor_frozen  the INA219's shunt register frozen at what it reads now
  sensor_gain    the INA219 reads value (0.5) x the truth;  sensor_stuck: reads value uA
  clear          all of them gone (the hands back in the water)
A script on the chip applies them at a moment it chooses, in its own time: `arm(faults)` queues
(kind, value, delay_us) entries; each rise of TRIGGER_PIN (GP28, not wired on the board) applies
the next one delay_us later, each fall clears. `reactions` records, per applied fault, its
board time, and how long after it the enable pin fell, the setpoint fell to the contact-test
level and the fault was cleared (None: not before the clear).
"""
import json

# ionto.fw loads this module (ionto.pico): the plain names below are the virtual unit's models
# (hw/sim) and the firmware's modules, imported under ionto's namespaces as the unit's
# MICROPYPATH would find them, with no sys.path of their own.
import fram_model  # noqa: E402
import ina219_model  # noqa: E402
import pins  # noqa: E402
import plant as _plant  # noqa: E402
import ssd1306_model  # noqa: E402
from limits import CONTACT_TEST_UA as L_CONTACT_TEST_UA  # noqa: E402

BUTTONS = {"start": pins.PIN_BTN_START, "stop": pins.PIN_BTN_STOP, "up": pins.PIN_BTN_UP,
           "down": pins.PIN_BTN_DOWN, "mode": pins.PIN_BTN_MODE}
# GP22 is not wired on the board: a script raises it to open a measurement window (pico.mjs).
WINDOW_PIN = 22
TRIGGER_PIN = 28  # not wired either: a script's fault trigger (arm())
FAULTS = ("over_current", "short", "lifted", "limiter", "i2c_nack", "sensor_frozen", "sensor_gain",
          "sensor_stuck", "clear")
OVER_CURRENT_UA = 31_000  # above the 30 mA absolute ceiling, below the limiter's 35 mA
# rp2's filesystem partition: the last 1408 KiB of the Pico's 2 MiB flash.
FS_BYTES = 1408 * 1024
FS_OFFSET = 2 * 1024 * 1024 - FS_BYTES
_ADC_CH0_PIN = 26


def chip_config():
    """What pico.mjs needs to know of the board, from the pin map."""
    return {
        "i2c_id": pins.I2C_ID,
        "i2c_devices": [pins.INA219_ADDR, pins.SSD1306_ADDR, pins.FRAM_ADDR],
        "ina219_addr": pins.INA219_ADDR,
        "tick_marker_reg": ina219_model.REG_SHUNT,
        "outputs": [pins.PIN_OUTPUT_ENABLE, pins.PIN_POLARITY, pins.PIN_PULSE_GATE, WINDOW_PIN, TRIGGER_PIN],
        "pwm": [pins.PIN_SETPOINT_PWM, pins.PIN_PULSE_GATE],
        # Open-drain/pulled-up inputs idle high (rp2040js models no pulls); VBUS set by the board.
        "inputs_high": sorted(BUTTONS.values()) + [pins.PIN_HW_LIMIT],
        "inputs_low": [pins.PIN_VBUS_SENSE],
        "window_pin": WINDOW_PIN,
        "fs_offset": FS_OFFSET,
    }


class PicoBoard:
    def __init__(self, scenario="palms", usb_host_present=True):
        self.base_us = 0  # board time at the chip's time 0 (the last reset)
        self.chip_us = 0
        self.plant = _plant.Plant(scenario, clock=self.now_us)
        self.plant.on_trip = self._on_trip
        self.ina219 = ina219_model.INA219(self._shunt_source, clock=self.now_us)
        self.display = ssd1306_model.SSD1306()
        # The power-cut journal's FRAM: kept across the chip's resets (not across runs).
        self.fram = fram_model.FRAM()
        self.devices = {pins.INA219_ADDR: self.ina219, pins.SSD1306_ADDR: self.display,
                        pins.FRAM_ADDR: self.fram}
        self.sensor_stuck_ua = None
        self.sensor_gain = None
        self.forced_ua = None  # over_current: the source's setpoint input, uA
        self.nack = set()  # addresses that do not acknowledge
        self._duty = 0  # the setpoint PWM's duty as the chip drives it
        self.armed = []  # [(kind, value, delay_us)] for the trigger pin's rises
        self._pending = None  # (board_us, kind, value): an armed fault about to apply
        self.reactions = []  # [{"kind", "at_us", "enable_low_us", "setpoint_low_us"}]
        self.levels = {}  # input pin -> level the board drives
        self.changed = {}
        self.timed = []  # [(board_us, pin, level)] button releases and the like
        self.windows = []  # measurement windows the chip reported (GP22)
        self.ended = None  # (code, words) of the chip's last run
        for p in BUTTONS.values():
            self._drive(p, 1)
        self._drive(pins.PIN_HW_LIMIT, 1)
        self._drive(pins.PIN_VBUS_SENSE, 1 if usb_host_present else 0)

    # --- time --------------------------------------------------------------------------------
    def now_us(self):
        return self.base_us + self.chip_us

    def chip_reset(self):
        """The chip restarts (its clock from 0); the board and the plant run on."""
        self.base_us += self.chip_us
        self.chip_us = 0
        self.ina219.reset(self.now_us())
        self.display.reset()
        self.changed = dict(self.levels)  # the new chip sees every input level again

    # --- inputs the board drives ---------------------------------------------------------------
    def _drive(self, pin, level):
        if self.levels.get(pin) != level:
            self.levels[pin] = level
            self.changed[pin] = level

    def press(self, button, ms=100):
        """Hold a panel button for ms of emulated time (from the chip's next request)."""
        pin = BUTTONS[button]
        self._drive(pin, 0)
        self.timed.append((self.now_us() + ms * 1000, pin, 1))

    def set_usb(self, present):
        self._drive(pins.PIN_VBUS_SENSE, 1 if present else 0)

    def _on_trip(self, tripped):
        self._drive(pins.PIN_HW_LIMIT, 0 if tripped else 1)

    def _due(self):
        if self._pending and self._pending[0] <= self.now_us():
            _, kind, value = self._pending
            self._pending = None
            self.fault(kind, value)
        if self.timed:
            now = self.now_us()
            for e in [e for e in self.timed if e[0] <= now]:
                self.timed.remove(e)
                self._drive(e[1], e[2])

    # --- faults --------------------------------------------------------------------------------
    def fault(self, kind, value=None):
        """Put a fault on the board now (the module's docstring lists them)."""
        p = self.plant
        if kind == "over_current":
            self.forced_ua = int(value) if value is not None else OVER_CURRENT_UA
            p.set_duty(self.forced_ua * 65535 // pins.SETPOINT_FULL_SCALE_UA)
        elif kind == "short":
            p.short()
        elif kind == "lifted":
            p.lift()
        elif kind == "limiter":
            p.trip_limiter()
        elif kind == "i2c_nack":
            self.nack.add(int(value) if value is not None else pins.INA219_ADDR)
        elif kind == "sensor_frozen":
            self.ina219.stuck_shunt_reg = self.ina219.peek(1)
        elif kind == "sensor_gain":
            self.sensor_gain = float(value) if value is not None else 0.5
        elif kind == "sensor_stuck":
            self.sensor_stuck_ua = int(value) if value is not None else p.current_ua(self.now_us())
        elif kind == "clear":
            if self.forced_ua is not None:
                self.forced_ua = None
                p.set_duty(self._duty)  # the chip's own command again
            self.sensor_stuck_ua = self.sensor_gain = None
            self.ina219.stuck_shunt_reg = None
            self.nack.clear()
            if p.contact != _plant.IMMERSED:
                p.immerse()
            if self.reactions and self.reactions[-1]["cleared_us"] is None:
                self.reactions[-1]["cleared_us"] = self.now_us() - self.reactions[-1]["at_us"]
            return
        else:
            raise ValueError("unknown fault %r (faults: %s)" % (kind, ", ".join(FAULTS)))
        self.reactions.append({"kind": kind, "value": value, "at_us": self.now_us(), "enable_low_us": None,
                               "setpoint_low_us": None, "cleared_us": None})

    def arm(self, faults):
        """Queue (kind, value, delay_us) faults for the trigger pin's next rises."""
        self.armed.extend(faults)

    def _trigger(self, level):
        if level and self.armed:
            kind, value, delay = self.armed.pop(0)
            self._pending = (self.now_us() + delay, kind, value)
            if not delay:
                self._due()
        elif not level:
            self._pending = None
            self.fault("clear")

    def _watch(self, enable=None, duty=None):
        r = self.reactions[-1] if self.reactions else None
        if r is None or r["cleared_us"] is not None:  # what follows the fault's end is not its reaction
            return
        if enable == 0 and r["enable_low_us"] is None:
            r["enable_low_us"] = self.now_us() - r["at_us"]
        if duty is not None and r["setpoint_low_us"] is None and (
                duty * pins.SETPOINT_FULL_SCALE_UA // 65535 <= 2 * L_CONTACT_TEST_UA):
            r["setpoint_low_us"] = self.now_us() - r["at_us"]

    # --- models --------------------------------------------------------------------------------
    def _shunt_source(self, now_us):
        i = self.sensor_stuck_ua
        if i is None:
            i = self.plant.current_ua(now_us)
            if self.sensor_gain is not None:
                i = int(i * self.sensor_gain)
        return (i * pins.SHUNT_MILLIOHM // 1000, 0)

    def _adc12(self):
        mv = self.plant.electrode_mv(self.now_us())
        v = mv * pins.DIVIDER_BOTTOM_OHM * 4095 // ((pins.DIVIDER_TOP_OHM + pins.DIVIDER_BOTTOM_OHM) * pins.ADC_VREF_MV)
        return max(0, min(4095, int(v)))

    def _adc12_sense(self):
        # The second current channel: RS2's drop (I x SENSE_MILLIOHM) on ADC1, 12 bits of VREF.
        mv = self.plant.sense_ua(self.now_us()) * pins.SENSE_MILLIOHM / 1_000_000
        return max(0, min(4095, int(mv * 4095 / pins.ADC_VREF_MV)))

    def _pwm(self, pin, en, freq, duty):
        if pin == pins.PIN_SETPOINT_PWM:
            self._duty = duty
            if self.forced_ua is None:
                self.plant.set_duty(duty)
            self._watch(duty=duty if en else 0)
        elif pin == pins.PIN_CLAMP_PWM:  # the adaptive clamp's set voltage (after its RC filter)
            self.plant.set_clamp(duty * pins.CLAMP_FULL_SCALE_MV / 65535 if en else 0)
        elif pin == pins.PIN_PULSE_GATE:
            if en and 0 < duty < 65535:
                self.plant.set_gate_pwm(freq, duty)
            else:
                self.plant.set_gate(1 if duty >= 32768 else 0)

    def _pin(self, pin, level):
        if pin == pins.PIN_OUTPUT_ENABLE:
            self.plant.set_enable(level)
            self._watch(enable=level)
        elif pin == TRIGGER_PIN:
            self._trigger(level)
        elif pin == pins.PIN_POLARITY:
            self.plant.set_polarity(level)
        elif pin == pins.PIN_PULSE_GATE:
            self.plant.set_gate(level)
        elif pin == pins.PIN_CLAMP_PWM:  # driven as a plain pin: 0 V or the full scale
            self.plant.set_clamp(pins.CLAMP_FULL_SCALE_MV if level else 0)

    # --- the chip's requests -------------------------------------------------------------------
    def handle(self, line):
        """One line from pico.mjs; returns the reply line (without newline) or None."""
        parts = line.split(" ", 2)
        self.chip_us = int(parts[0])
        op = parts[1]
        rest = parts[2] if len(parts) > 2 else ""
        reply = None
        if op == "t":
            self.plant.current_ua(self.now_us())  # lets the limiter trip with nobody reading
            reply = ""
        elif op == "r":
            addr, n = rest.split()
            dev = self.devices.get(int(addr))
            reply = dev.i2c_read(int(n)).hex() if dev else "ffff"
        elif op == "a":
            ch = int(rest)
            reply = str(self._adc12() if ch == _ADC_CH0_PIN - 26 else
                        self._adc12_sense() if ch == pins.PIN_SENSE_ADC - 26 else 0)
        elif op == "w":
            addr, data = rest.split()
            dev = self.devices.get(int(addr))
            if dev:
                dev.i2c_write(bytes.fromhex(data))
        elif op == "p":
            pin, level = rest.split()
            self._pin(int(pin), int(level))
        elif op == "m":
            pin, en, freq, duty = (int(x) for x in rest.split())
            self._pwm(pin, en, freq, duty)
        elif op == "j":
            self.windows.append(json.loads(rest))
        elif op == "x":
            code, _, words = rest.partition(" ")
            self.ended = (int(code), words)
        if reply is None:
            return None
        self._due()
        ch = ",".join("%d=%d" % kv for kv in self.changed.items())
        self.changed = {}
        if self.nack != self._nack_sent:  # "iADDR=0": the device at ADDR stops acknowledging
            ch = ",".join([ch] * bool(ch) + ["i%d=%d" % (a, a not in self.nack)
                                             for a in sorted(self.nack ^ self._nack_sent)])
            self._nack_sent = set(self.nack)
        return reply + ";" + ch

    _nack_sent = frozenset()
