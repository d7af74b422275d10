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

BUTTONS = {"start": pins.PIN_BTN_START, "stop": pins.PIN_BTN_STOP, "up": pins.PIN_BTN_UP,
           "down": pins.PIN_BTN_DOWN, "mode": pins.PIN_BTN_MODE}
# GP22 is not wired on the board: a script raises it to open a measurement window (pico.mjs).
WINDOW_PIN = 22
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
        "outputs": [pins.PIN_OUTPUT_ENABLE, pins.PIN_POLARITY, pins.PIN_PULSE_GATE, WINDOW_PIN],
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
        if self.timed:
            now = self.now_us()
            for e in [e for e in self.timed if e[0] <= now]:
                self.timed.remove(e)
                self._drive(e[1], e[2])

    # --- models --------------------------------------------------------------------------------
    def _shunt_source(self, now_us):
        i = self.sensor_stuck_ua
        if i is None:
            i = self.plant.current_ua(now_us)
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
            self.plant.set_duty(duty)
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
        return reply + ";" + ch
