# Hard limits, fault codes and alarm rules of the controller, as data.
#
# Everything here is a compile-time constant: the configuration (config.py) can only tighten
# these, never widen them. Units are integers throughout: uA, mV, ms, us, ohm, uA*s (dose).
#
# Why uA*s for the dose and not uA*ms: MicroPython on rp2 keeps ints below 2**30 unboxed;
# 30 mA for 45 min is 81e6 uA*s (fits) but 81e9 uA*ms (a heap-allocated big int on every
# tick). Code that integrates keeps the sub-second remainder in uA*ms beside it.
#
# Also loads on CPython (host tools and tests import it): no imports beyond const.
try:
    from micropython import const
except ImportError:  # CPython without the test shim (host tools)
    def const(x):
        return x

# --- Current --------------------------------------------------------------------------
# Absolute ceiling of any current the controller lets flow. Tap-water devices quote 20 to
# 30 mA; the board's own hardware limiter (no MCU) opens near 35 mA above this.
ABS_MAX_UA = const(30_000)
# Measurement tolerance above the preset ceiling before it trips (INA219 gain error ~0.5 %
# of 32 mA plus ripple of the setpoint filter).
CEILING_TOL_UA = const(250)
# Measured current may exceed the ramp's setpoint by this margin only briefly (filter
# settling, skin capacitance charging on re-contact); longer means the source is not obeying.
OVER_SETPOINT_MARGIN_UA = const(2_000)
OVER_SETPOINT_WINDOW_MS = const(20)  # 2 periods
# Current density: 0.5 mA/cm2 = 500 uA/cm2. IEC 60601-2-10 asks for operator attention above
# 2 mA/cm2; iontophoresis practice keeps tap-water and drug delivery at or below about
# 0.5 mA/cm2 to avoid pH burns and stinging under the electrodes, so this is a 4x margin below
# the standard's attention level. A 100 cm2 palm tray allows the full 30 mA; a 20 cm2 pad 10 mA.
DENSITY_MAX_UA_PER_CM2 = const(500)
DENSITY_WINDOW_MS = const(100)  # 10 periods
ELECTRODE_AREA_MIN_CM2 = const(5)
ELECTRODE_AREA_MAX_CM2 = const(600)

# --- Load -----------------------------------------------------------------------------
# Short circuit: below 300 ohm with current flowing (both electrodes in one tray, a wet
# bridge between trays). Real loads are 2 to 6 kohm. Judged only above SHORT_MIN_UA, where
# the electrode-voltage ADC (about 17 mV per count) resolves 300 ohm.
SHORT_LOAD_OHM = const(300)
SHORT_MIN_UA = const(400)
SHORT_WINDOW_MS = const(20)  # 2 periods
# Open circuit (a hand out of the water) is not a fault: the session pauses. Little current
# flows (below OPEN_FRACTION_PCT of the command) while the electrode voltage says the load is
# far above any skin: near compliance, or an apparent load (voltage / commanded current)
# above OPEN_LOAD_OHM. The apparent load matters at small currents: with the circuit open the
# node only rises to command x 105 kohm (the voltage divider), far below the rail. Judged
# with at least CONTACT_TEST_UA commanded.
OPEN_NEAR_COMPLIANCE_MV = const(3_000)
OPEN_FRACTION_PCT = const(25)
OPEN_LOAD_OHM = const(50_000)
CONTACT_LOST_MS = const(30)  # 3 periods
# Compliance: the target is out of reach while the electrode voltage is within this much of
# the rail and the current falls short by more than LIMITED_TOL_UA. Not a fault: "limited".
COMPLIANCE_MV = const(60_000)  # as firmware/pins.py; repeated so this file stands alone
LIMITED_NEAR_COMPLIANCE_MV = const(2_000)
LIMITED_TOL_UA = const(150)
# Set after 0.5 s, cleared after 5 s without: a restless patient does not flood the log.
LIMITED_SET_MS = const(500)
LIMITED_CLEAR_MS = const(5_000)
# While limited, the ramp is held this far above the reachable current, so a sudden fall in
# skin resistance cannot step the current up to the old setpoint.
LIMITED_HEADROOM_UA = const(300)
# Output stage dead: current commanded, none flowing, and no voltage on the electrodes either
# (an open circuit would show the rail), for long enough to rule out the filter's settling.
# Judged down to the contact test current: a source that dies mid-treatment first looks like
# a lifted hand (pause, 50 uA test current), and only the missing divider voltage (50 uA into
# the open 105 kohm divider reads 5.25 V; into skin the current flows) tells them apart.
DEAD_MIN_UA = const(50)  # = CONTACT_TEST_UA
# Sensor reads (almost) nothing while the electrode voltage shows current flowing into a skin
# load (a shorted shunt, a sensor stuck at zero): commanded >= IMPLAUSIBLE_MIN_UA, measured
# below a tenth of it, the voltage above DEAD_MAX_MV, not near the rail and implying a load
# below OPEN_LOAD_OHM. Longer than CONTACT_LOST_MS: a hand lifted at full current charges the
# output to the rail within milliseconds and pauses first. Plain DC only: a pulsed reading is
# judged by the gate's average, which this rule cannot see.
IMPLAUSIBLE_MIN_UA = const(1_000)
IMPLAUSIBLE_WINDOW_MS = const(100)  # 10 periods
DEAD_MAX_MV = const(1_500)
DEAD_WINDOW_MS = const(500)  # 50 periods

# Same-period open circuit: the command drops in the first period whose readings show the
# circuit open (the electrode voltage has run up to the clamp, within CLAMP_NEAR_MV of it,
# while the second channel, read at the tick, shows below OPEN_FRACTION_PCT of the command;
# or both readings that low with the voltage far above any skin); the pause itself (timer,
# beeps, display) still waits for CONTACT_LOST_MS of it. A sensor stuck high hides no lift
# for long: the cross-check cuts the output within SENSE_WINDOW_MS.
CLAMP_NEAR_MV = const(1_500)

# --- Adaptive compliance (the output clamp, hw/README.md) ----------------------------------
# The clamp follows the voltage the present load needs plus headroom, so the output
# capacitance (C3, 10 nF) never holds more than headroom x C3 above what the current needs:
# at most (5 V + 3/16 x 60 V) x 10 nF = 0.16 uC, against 0.5 mA x 1 ms = 0.5 uC.
#   regulating:        clamp = V + CLAMP_HEADROOM_MV + V x 3/16  (skin noise, slow ramps)
#   short of command:  clamp rises by CLAMP_STEP_MV a period (the load needs more: a rise)
#   open, off, or at the contact-test current with the circuit open: CLAMP_FLOOR_MV
# Pulsed DC keeps the rail (the averaged readings cannot follow the gate).
CLAMP_HEADROOM_MV = const(5_000)
CLAMP_STEP_MV = const(5_000)
CLAMP_FLOOR_MV = const(3_000)

# --- Second current channel (ADC1 on the return-path sense resistor RS2) ----------------------
# Cross-checked with the INA219 every period (plain DC). They disagree when they differ by
# more than SENSE_TOL_UA + SENSE_TOL_PCT of the larger (RP2040 ADC: offset and INL of a few
# counts, ~17 uA each, plus RS2 0.1 % and the INA219's 0.5 %); a leaky count (up by the period
# while they disagree, down by half of it while they agree) past SENSE_WINDOW_MS is a fault,
# so noisy readings that disagree more than a third of the time are caught too.
# Regulation and the over-current rules use the HIGHER reading: a sensor that reads low
# (frozen, zero, a gain below 1, drift down) cannot make the regulator raise the true current,
# and one that reads high only lowers it. So the true current stays within target + 0.5 mA
# whatever one channel does, and detection only has to name the fault and cut the output.
SENSE_TOL_UA = const(500)
SENSE_TOL_PCT = const(6)
SENSE_WINDOW_MS = const(20)
# Frozen: the INA219's fresh readings identical for FROZEN_WINDOW_MS while the second
# channel shows at least FROZEN_MIN_UA flowing (a live 12-bit reading moves by a count or
# more from one conversion to the next; one frozen at the true value is harmless until the
# current changes, which the cross-check then sees).
FROZEN_MIN_UA = const(1_000)
FROZEN_WINDOW_MS = const(500)
# USB host plugged in during a treatment on a non-isolated unit: debounced, then the
# treatment ends with the STOP ramp (at most 3 s) and says why (HZ18).
USB_DEBOUNCE_MS = const(100)

# --- Contact check (before the ramp and while paused) -----------------------------------
# The test current is 50 uA, not the 0.5 mA one might expect. With the circuit open the
# source charges the output capacitance to test current x 105 kohm (the divider): 0.5 mA
# would leave 52 V waiting for the hand, which dumps ~100 mA into the skin on contact (and
# trips the hardware limiter); 50 uA leaves 5 V, a harmless discharge. Found by running the
# session against the plant model (hw/sim/plant.py, scenario hand_lifted).
CONTACT_TEST_UA = const(50)
CONTACT_OK_UA = const(30)  # the circuit counts as closed once this much flows ...
CONTACT_STABLE_MS = const(500)  # ... steadily for this long
CONTACT_TIMEOUT_MS = const(60_000)  # no skin contact within a minute: stop
PAUSE_TIMEOUT_MS = const(300_000)  # paused 5 min: end the session
CONFIRM_TIMEOUT_MS = const(30_000)  # the nurse's confirmation expires

# --- Sensor and loop --------------------------------------------------------------------
# Control loop: one tick every LOOP_PERIOD_US (10 ms, 100 Hz), chosen on the chip (firmware/
# app.py has the reasoning and the measured budget). Every window below is stated in ms and
# is a whole number of periods: a rule with window W trips on the ceil(W / period)-th tick that
# sees its condition, so its reaction bound is W + one period (to the first read that shows the
# condition) + the tick's own run time; hw/safety_case.md states each one in both units.
LOOP_PERIOD_US = const(10_000)
LOOP_PERIOD_MS = const(10)  # LOOP_PERIOD_US // 1000 (const() cannot divide another const)
# The sensor's status (conversion ready, overflow) is read every 2 periods; the current on
# every tick (ina219.py: one register read per tick).
SENSOR_FLAGS_MS = const(20)
# One or two failed I2C reads in a row are tolerated (the hardware limiter still guards); the
# third trips: 3 periods (30 ms).
I2C_ERROR_WINDOW_MS = const(30)
# No fresh conversion for 20 ms (2 periods; the status is read every SENSOR_FLAGS_MS, so a
# sensor that stops is seen at the first status read >= 20 ms after its last conversion).
STALE_MS = const(20)
# With the output disabled, current above this is a stuck switch (fault, refuse to start).
ZERO_TOL_UA = const(200)
OFF_SETTLE_MS = const(20)  # 2 periods after disabling, before the zero check applies
STUCK_WINDOW_MS = const(20)  # 2 periods
# A loop iteration longer than this with the output enabled breaks the fault-reaction bound
# (detection window + one tick): 2.5 periods, so one tick plus the collector's slot of two
# periods (app.py) stays under it. Storage must not block longer while current flows.
LOOP_OVERRUN_US = const(25_000)
DT_MAX_MS = const(1_000)  # a longer gap between ticks is counted as this much

# --- Time and dose ----------------------------------------------------------------------
DURATION_MIN_S = const(1_200)  # 20 min
DURATION_MAX_S = const(2_400)  # 40 min
MAX_SESSION_MS = const(2_700_000)  # 45 min of current above the test level, hard
REVERSE_MIN_S = const(600)  # no polarity reversal in sessions shorter than 10 min
REVERSE_SETTLE_MS = const(200)  # at zero this long before the bridge switches
# Dose in mA*min at the interface, uA*s inside (1 mA*min = 60_000 uA*s).
UAS_PER_MAMIN = const(60_000)
DOSE_MAX_MAMIN = const(1_200)  # 30 mA x 40 min
DOSE_MAX_UAS = const(72_000_000)
# The session ends treatment at the preset's dose cap; the supervisor faults only past the
# cap plus 10 % plus 1 mA*min (the final ramp-down still delivers a little).
DOSE_FAULT_PCT = const(110)
DOSE_FAULT_EXTRA_UAS = const(60_000)

# --- Drugs (config.py: a preset's "solution") --------------------------------------------
# A drug preset never reverses, keeps the drug under the electrode of its charge's polarity
# (the drug pad goes on electrode A: a cation needs A as the anode, polarity 0; an anion A as
# the cathode, polarity 1), and its ceiling and dose cap can only be tightened below these.
# (name, charge: +1 cation / -1 anion, ceiling uA, dose cap mA*min)
DRUG_CEILING_MAX_UA = const(8_000)
DRUG_DOSE_MAX_MAMIN = const(80)
DRUGS = (
    # Glycopyrrolate: a cation; side effects rise above 8 mA; caps of 80 mA*min are used.
    ("glycopyrrolate", 1, 8_000, 80),
)

# --- Ramps ------------------------------------------------------------------------------
# Slews in uA per second. The fastest allowed ramp up is 1 mA/s (15 mA in 15 s); down 2 mA/s.
RAMP_UP_MAX_UA_S = const(1_000)
RAMP_DOWN_MAX_UA_S = const(2_000)
RAMP_UP_S_MIN = const(10)
RAMP_UP_S_MAX = const(300)
RAMP_DOWN_S_MIN = const(5)
RAMP_DOWN_S_MAX = const(120)
# STOP: a quick smooth ramp-down, never longer than 3 s (planned at 2.5 s).
STOP_RAMP_MS = const(2_500)
STEP_UA_MIN = const(100)
STEP_UA_MAX = const(2_000)
TARGET_MIN_UA = const(500)

# --- Regulator --------------------------------------------------------------------------
# The source is a calibrated current source, so feed-forward does most of the work; the
# integral only trims gain and offset errors of a few percent.
TRIM_MAX_UA = const(1_500)
TRIM_TI_MS = const(1_000)  # integral time: trim rate = error / 1 s
TRIM_ERR_MAX_UA = const(1_000)  # error clamp: the trim moves at most 1 mA/s

# --- Pulsed DC (hardware gate on GP19) --------------------------------------------------
PULSE_FREQ_MIN_HZ = const(1_000)
PULSE_FREQ_MAX_HZ = const(10_000)
PULSE_DUTY_MIN_PCT = const(30)
PULSE_DUTY_MAX_PCT = const(90)

# --- Fault codes --------------------------------------------------------------------------
# Latching faults (the supervisor's), then blockers that refuse a start but do not latch.
F_NONE = const(0)
F_OVER_ABS = const(1)
F_OVER_CEIL = const(2)
F_OVER_SET = const(3)
F_DENSITY = const(4)
F_SHORT = const(5)
F_I2C = const(6)
F_OVF = const(7)
F_STALE = const(8)
F_STUCK_ON = const(9)
F_HW_LIMIT = const(10)
F_MAX_TIME = const(11)
F_DOSE_CAP = const(12)
F_OVERRUN = const(13)
F_OUTPUT_DEAD = const(14)
F_IMPLAUSIBLE = const(15)
F_SENSE_MISMATCH = const(16)
F_SENSE_FROZEN = const(17)
B_USB = const(20)
B_CONFIG = const(21)
B_SELFTEST = const(22)
B_CAUSE = const(23)
B_STORAGE = const(24)  # the session summary could not be written, or no log at all

# (code, short name for the log, display line 1, display line 2, what the nurse should do)
# Display lines are at most 16 characters: 128 px with the 8x8 font.
FAULTS = (
    (F_OVER_ABS, "over_abs", "OVERCURRENT", "above 30 mA", "Output cut. Check electrodes and skin; if it recurs, take unit out of use."),
    (F_OVER_CEIL, "over_ceiling", "OVERCURRENT", "above ceiling", "Output cut. Check electrodes and skin; restart with a lower current."),
    (F_OVER_SET, "over_setpoint", "CURRENT TOO HIGH", "source unstable", "Output cut. Current ran above the setpoint: service the unit."),
    (F_DENSITY, "density", "CURRENT DENSITY", "too high", "Output cut. Use larger electrodes or a lower current; check the preset."),
    (F_SHORT, "short", "SHORT CIRCUIT", "check trays", "Output cut. Electrodes touch or share one tray; separate them."),
    (F_I2C, "sensor_i2c", "SENSOR FAULT", "no reply", "Output cut. Current sensor not answering: service the unit."),
    (F_OVF, "sensor_ovf", "SENSOR FAULT", "overrange", "Output cut. Current beyond the sensor's range: service the unit."),
    (F_STALE, "sensor_stale", "SENSOR FAULT", "no new reading", "Output cut. Current sensor stopped converting: service the unit."),
    (F_STUCK_ON, "stuck_switch", "OUTPUT STUCK ON", "do not use", "Current flows while switched off: disconnect patient, take unit out of use."),
    (F_HW_LIMIT, "hw_limiter", "HW LIMITER", "tripped", "Hardware limiter cut the output: check electrodes; service if it recurs."),
    (F_MAX_TIME, "max_time", "TIME LIMIT", "45 min reached", "Session ran past the hard time limit: end the session, report it."),
    (F_DOSE_CAP, "dose_cap", "DOSE LIMIT", "reached", "Dose limit passed: end the session, report it."),
    (F_OVERRUN, "loop_overrun", "CONTROL FAULT", "loop too slow", "Control loop too slow: restart the unit; service if it recurs."),
    (F_OUTPUT_DEAD, "output_dead", "OUTPUT FAULT", "no current", "No current and no voltage at the electrodes: check cables; service."),
    (F_IMPLAUSIBLE, "sensor_implausible", "SENSOR FAULT", "reads no current", "Output cut. Voltage shows current the sensor does not see: service the unit."),
    (F_SENSE_MISMATCH, "sensor_mismatch", "SENSOR FAULT", "readings differ", "Output cut. The two current measurements disagree: service the unit."),
    (F_SENSE_FROZEN, "sensor_frozen", "SENSOR FAULT", "reading frozen", "Output cut. The current sensor's reading stopped changing: service the unit."),
    (B_USB, "usb_connected", "USB CONNECTED", "unplug to treat", "Unplug the USB cable before treating (patient isolation)."),
    (B_CONFIG, "config_invalid", "CONFIG INVALID", "see technician", "Configuration is invalid: the technician must fix it."),
    (B_SELFTEST, "selftest", "SELF-TEST FAILED", "see technician", "Self-test failed: the unit may not treat; call the technician."),
    (B_CAUSE, "cause_present", "FAULT PRESENT", "cannot clear", "The fault's cause is still there: fix it, then press STOP again."),
    (B_STORAGE, "storage", "STORAGE ERROR", "call technician", "The session record cannot be written to flash: the unit may not treat."),
)


def fault_info(code):
    """The FAULTS row for a code, or None. Not for the control loop (it is a search)."""
    for row in FAULTS:
        if row[0] == code:
            return row
    return None


# --- Alarm rules ------------------------------------------------------------------------
# (fault code, window ms): the supervisor computes one condition per rule each tick and trips
# the fault once the condition has held for longer than the window (0: at once). The
# conditions themselves are in supervisor.py, in this order, one line each.
RULES = (
    (F_OVER_ABS, 0),
    (F_OVER_CEIL, 0),
    (F_OVER_SET, OVER_SETPOINT_WINDOW_MS),
    (F_DENSITY, DENSITY_WINDOW_MS),
    (F_SHORT, SHORT_WINDOW_MS),
    (F_I2C, I2C_ERROR_WINDOW_MS),
    (F_OVF, 0),
    (F_STALE, STALE_MS),
    (F_STUCK_ON, STUCK_WINDOW_MS),
    (F_HW_LIMIT, 0),
    (F_MAX_TIME, 0),
    (F_DOSE_CAP, 0),
    (F_OVERRUN, 0),
    (F_OUTPUT_DEAD, DEAD_WINDOW_MS),
    (F_IMPLAUSIBLE, IMPLAUSIBLE_WINDOW_MS),
    (F_SENSE_MISMATCH, SENSE_WINDOW_MS),
    (F_SENSE_FROZEN, FROZEN_WINDOW_MS),
)


def periods(ms):
    """A window in ms as whole loop periods (rounded up): how bounds are also stated."""
    return (ms * 1000 + LOOP_PERIOD_US - 1) // LOOP_PERIOD_US

# Why a target is out of reach ("x of y mA"), for display (16 chars) and log.
LIM_NONE = const(0)
LIM_COMPLIANCE = const(1)
LIM_REGULATOR = const(2)
LIMIT_REASONS = (
    (LIM_NONE, "", ""),
    (LIM_COMPLIANCE, "skin resist high", "Electrode voltage at the 60 V rail: skin resistance too high for the target"),
    (LIM_REGULATOR, "output at limit", "Regulator trim at its limit below the target: output stage weak"),
)
