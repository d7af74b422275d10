# The one pin map of the reference board (hw/README.md).
#
# Both the firmware's board module and the simulated board (hw/sim/simboard.py) read this
# file, so a pin or an address changes here and nowhere else. Constants only: no imports
# beyond const, no code, so it loads on the board, on the unix port and on CPython alike.
from micropython import const

# --- I2C bus 0: INA219 current monitor, SSD1306 display, FRAM journal ---------------------
I2C_ID = const(0)
I2C_SDA = const(4)
I2C_SCL = const(5)
I2C_FREQ = const(400_000)
# rp2 waits 50 ms by default on a stuck bus; a tick (limits.LOOP_PERIOD_US) must not wait that long.
I2C_TIMEOUT_US = const(1_000)
INA219_ADDR = const(0x40)
SSD1306_ADDR = const(0x3C)
# MB85RC256V FRAM (32 KiB, A0-A2 tied low): the session's dose, time and trace while current
# flows (firmware/journal.py), where the flash may not be written.
FRAM_ADDR = const(0x50)

# --- Output stage --------------------------------------------------------------------------
# PWM into a two-pole RC filter gives the current source its reference voltage.
PIN_SETPOINT_PWM = const(16)
SETPOINT_PWM_FREQ = const(50_000)
# Output enable: a series switch, open unless driven high (10k pull-down on the board).
PIN_OUTPUT_ENABLE = const(17)
# Polarity bridge: 0 = electrode A is the anode, 1 = reversed.
PIN_POLARITY = const(18)
# Pulse gate: ANDed with enable in hardware; held high for plain DC, PWM for pulsed DC.
PIN_PULSE_GATE = const(19)
# Hardware current limiter (trips near 35 mA without the MCU): open-drain flag, low = tripped.
PIN_HW_LIMIT = const(20)
# Adaptive compliance: PWM -> RC -> the set voltage of the output clamp (hw/README.md).
# duty 65535 = CLAMP_FULL_SCALE_MV; duty 0 (reset, a stopped PWM driven low) clamps at 0 V.
PIN_CLAMP_PWM = const(21)
CLAMP_PWM_FREQ = const(50_000)

# --- Analog ----------------------------------------------------------------------------
# Electrode voltage through a divider into ADC0 (GP26).
PIN_ELECTRODE_ADC = const(26)
# Second, independent current channel: its own sense resistor RS2 in the return path (in
# series with the INA219's shunt, so it carries the load current only: not the divider's, not
# the clamp's) through an RC into ADC1 (GP27).
PIN_SENSE_ADC = const(27)
# Pico GP24 senses VBUS: high while a USB host powers the port.
PIN_VBUS_SENSE = const(24)

# --- Nurse panel: buttons are active low with pull-ups ------------------------------------
PIN_BTN_START = const(10)
PIN_BTN_STOP = const(11)
PIN_BTN_UP = const(12)
PIN_BTN_DOWN = const(13)
PIN_BTN_MODE = const(14)
PIN_BUZZER = const(15)
PIN_LED = const(25)

# --- Analog scaling of the reference board -----------------------------------------------
# Setpoint: duty 65535 -> 3.3 V reference -> SETPOINT_FULL_SCALE_UA at the source.
SETPOINT_FULL_SCALE_UA = const(40_000)
# Compliance: the current source cannot drive the electrodes above this voltage.
COMPLIANCE_MV = const(60_000)
# Shunt in the return path, read by the INA219 (PGA /8, +-320 mV -> 32 mA full scale).
SHUNT_MILLIOHM = const(10_000)
# Electrode-voltage divider: 100k over 5.1k -> 60 V reads as 2.91 V at the ADC.
DIVIDER_TOP_OHM = const(100_000)
DIVIDER_BOTTOM_OHM = const(5_100)
ADC_VREF_MV = const(3_300)
# RS2 for the second channel: 47 ohm -> 30 mA reads 1.41 V, the ADC's 3.3 V is 70 mA, one
# 12-bit count 17 uA; 1.4 V of the rail's headroom at 30 mA.
SENSE_MILLIOHM = const(47_000)
# The output clamp's full scale (duty 65535): the rail.
CLAMP_FULL_SCALE_MV = const(60_000)
# Hardware limiter trip point (for the model and the documentation; the MCU never sets it).
HW_LIMIT_UA = const(35_000)
