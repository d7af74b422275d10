# Output stage: setpoint PWM, enable switch, polarity bridge and pulse gate (hw/README.md).
#
#     out = Output(Pin, PWM)     # machine.Pin / machine.PWM from board.py; starts safe
#     out.apply(cmd)             # every tick: a supervisor.Cmd (enable, ua, polarity, gate...)
#     out.safe()                 # any path out: enable low FIRST, duty 0, gate low, pins low
#
# What was last commanded is kept for the supervisor's plausibility checks and the log:
# `enabled`, `ua` (setpoint uA), `duty` (duty_u16 written), `polarity`, `gate` (pulse gate
# passing), `gate_hz` (0: DC), `gate_duty` (u16). `refused` counts refused polarity changes.
#
# apply() allocates nothing while the command stays in the same mode (steady DC or pulsed):
# a PWM object is made only when the setpoint or gate pin changes between GPIO and PWM
# (session start, pulsed start, after safe()).
import pins

L_CLAMP_FLOOR_MV = 3_000  # = limits.CLAMP_FLOOR_MV (output.py stands on pins.py alone)

_FS_UA = pins.SETPOINT_FULL_SCALE_UA


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a

# uA -> duty_u16 = ua x 65535 / FULL_SCALE. Reduced by the gcd so ua x num stays below
# 2**30 for ua up to full scale (40 mA: 65535/40000 = 13107/8000, 40000 x 13107 = 5.2e8),
# so the tick's multiply never makes a big int on rp2.
_G = _gcd(65535, _FS_UA)
_NUM = 65535 // _G
_DEN = _FS_UA // _G

def ua_to_duty(ua):
    """Setpoint uA -> PWM duty_u16, clamped to 0..65535 (integer, rounds down)."""
    if ua <= 0:
        return 0
    if ua >= _FS_UA:
        return 65535
    return ua * _NUM // _DEN

def duty_to_ua(duty):
    return duty * _DEN // _NUM

# Clamp mV -> duty_u16 = mv x 65535 / CLAMP_FULL_SCALE_MV, reduced the same way (60 V:
# 4369/4000, 60000 x 4369 = 2.6e8 < 2**30).
_CL_FS_MV = pins.CLAMP_FULL_SCALE_MV  # (a global: one look-up a tick, not two)
_GC = _gcd(65535, _CL_FS_MV)
_CNUM = 65535 // _GC
_CDEN = _CL_FS_MV // _GC


def mv_to_clamp_duty(mv):
    if mv <= 0:
        return 0
    if mv >= _CL_FS_MV:
        return 65535
    return mv * _CNUM // _CDEN

class Output:
    def __init__(self, Pin, PWM, freq=pins.SETPOINT_PWM_FREQ):
        self._Pin = Pin
        self._PWM = PWM
        self._freq = freq
        # Enable low before anything else is touched (the board's pull-down holds it anyway).
        self._en = Pin(pins.PIN_OUTPUT_ENABLE, Pin.OUT, value=0)
        self._gate_pin = Pin(pins.PIN_PULSE_GATE, Pin.OUT, value=0)
        self._sp_pin = Pin(pins.PIN_SETPOINT_PWM, Pin.OUT, value=0)
        self._pol = Pin(pins.PIN_POLARITY, Pin.OUT, value=0)
        self._cl_pin = Pin(pins.PIN_CLAMP_PWM, Pin.OUT, value=0)  # clamp at 0 V until set
        self._cl = None  # the clamp's PWM once created (prepare)
        self.clamp_duty = 0
        self._sp = None  # setpoint PWM while running; None: the pin is a GPIO held low
        self._gate_pwm = None  # gate PWM while pulsing
        self.enabled = False
        self.ua = 0
        self.duty = 0
        self.polarity = 0
        self.gate = False
        self.gate_hz = 0
        self.gate_duty = 0
        self.refused = 0
        self.safe_errors = 0  # steps of safe() that raised (each is still attempted)

    # --- pieces -----------------------------------------------------------------------------
    def set_enable(self, on):
        self._en.value(1 if on else 0)
        self.enabled = bool(on)

    def set_ua(self, ua):
        """Setpoint in uA (clamped to 0..full scale). 0 keeps the PWM running at duty 0."""
        d = ua_to_duty(ua)
        sp = self._sp
        if sp is None:
            if d == 0:
                self.ua = 0
                self.duty = 0
                return
            sp = self._sp = self._PWM(self._sp_pin, freq=self._freq, duty_u16=d)
        elif d != self.duty:
            sp.duty_u16(d)
        self.duty = d
        self.ua = 0 if ua < 0 else (ua if ua < _FS_UA else _FS_UA)

    def prepare(self):
        """Create the setpoint PWM (at duty 0) ahead of a treatment: constructing it allocates,
        so the loop does it while idle, never in the first tick of a session. safe() removes it
        again (deinit and drive the pin low). The clamp's PWM likewise, at the floor."""
        if self._sp is None:
            self._sp = self._PWM(self._sp_pin, freq=self._freq, duty_u16=0)
            self.duty = 0
        if self._cl is None:
            d = mv_to_clamp_duty(L_CLAMP_FLOOR_MV)
            self._cl = self._PWM(self._cl_pin, freq=pins.CLAMP_PWM_FREQ, duty_u16=d)
            self.clamp_duty = d

    def set_clamp(self, mv):
        """Adaptive compliance: the output clamp's voltage (a PWM duty write when it moves)."""
        d = mv_to_clamp_duty(mv)
        if d != self.clamp_duty:
            if self._cl is None:  # normally made by prepare(), while idle
                self._cl = self._PWM(self._cl_pin, freq=pins.CLAMP_PWM_FREQ, duty_u16=d)
            else:
                self._cl.duty_u16(d)
            self.clamp_duty = d

    def set_polarity(self, p):
        """0: electrode A is the anode, 1: reversed. Refused (False) while enabled with a
        non-zero setpoint: the bridge switches only at zero current."""
        p = 1 if p else 0
        if p == self.polarity:
            return True
        if self.enabled and self.ua:
            self.refused += 1
            return False
        self._pol.value(p)
        self.polarity = p
        return True

    def set_gate(self, on, hz=0, duty_u16=65535):
        """Pulse gate: off (low), DC (on, hz 0: held high) or pulsed (PWM at hz, duty)."""
        if not on:
            if self._gate_pwm is not None:
                self._gate_pwm.duty_u16(0)
                self._gate_pwm.deinit()
                self._gate_pwm = None
                self._gate_pin.init(self._Pin.OUT, value=0)
            elif self.gate:
                self._gate_pin.value(0)
            self.gate = False
            self.gate_hz = 0
            self.gate_duty = 0
            return
        if hz <= 0 or duty_u16 >= 65535:
            if self._gate_pwm is not None:
                self._gate_pwm.deinit()
                self._gate_pwm = None
                self._gate_pin.init(self._Pin.OUT, value=1)
            elif not self.gate:
                self._gate_pin.value(1)
            self.gate = True
            self.gate_hz = 0
            self.gate_duty = 65535
            return
        g = self._gate_pwm
        if g is None:
            self._gate_pwm = self._PWM(self._gate_pin, freq=hz, duty_u16=duty_u16)
        else:
            if hz != self.gate_hz:
                g.freq(hz)
            if duty_u16 != self.gate_duty:
                g.duty_u16(duty_u16)
        self.gate = True
        self.gate_hz = hz
        self.gate_duty = duty_u16

    # --- per tick ---------------------------------------------------------------------------
    def apply(self, cmd):
        """Apply a supervisor.Cmd. Returns False if a polarity change was refused (the
        setpoint is then held at 0 for this tick: the command was inconsistent)."""
        if not cmd.enable:
            if self.enabled:
                self.set_enable(False)  # enable first, as in safe()
            if self._cl is not None:  # (no PWM yet: its pin is held low, a 0 V clamp)
                self.set_clamp(cmd.clamp_mv)
            if self.duty:
                self.set_ua(0)
            if self.gate:
                self.set_gate(False)
            if cmd.polarity != self.polarity:
                self.set_polarity(cmd.polarity)
            return True
        ok = True
        ua = cmd.ua
        self.set_clamp(cmd.clamp_mv)  # before the setpoint: a lower clamp first bleeds C3
        if cmd.polarity != self.polarity:
            if ua == 0 and self.ua:
                self.set_ua(0)  # down to zero first: then the change is allowed
            ok = self.set_polarity(cmd.polarity)
            if not ok:
                ua = 0
        if cmd.gate:
            # Plain DC with the gate already held high (no gate PWM): set_gate would change
            # nothing, so the tick skips the call.
            hz = cmd.gate_hz
            du = cmd.gate_duty_u16
            if not (self.gate and self._gate_pwm is None and (hz <= 0 or du >= 65535)):
                self.set_gate(True, hz, du)
        elif self.gate:
            self.set_gate(False)
        self.set_ua(ua)
        if not self.enabled:
            self.set_enable(True)
        return ok

    def off(self):
        """Everything off through the normal path (no PWM teardown)."""
        self.set_enable(False)
        self.set_ua(0)
        self.set_gate(False)

    # --- the one safe path ------------------------------------------------------------------
    def safe(self):
        """Enable low FIRST, then setpoint duty 0 and its pin driven low as a GPIO, gate low.

        Never raises: every step is attempted whatever the others did (a PWM deinit on rp2
        leaves the pin at whatever level the counter stopped, so the pins are re-driven).
        """
        Pin = self._Pin
        try:
            self._en.value(0)
        except Exception:
            self.safe_errors += 1
        try:
            self._en.init(Pin.OUT, value=0)
        except Exception:
            self.safe_errors += 1
        self.enabled = False
        try:
            if self._sp is not None:
                self._sp.duty_u16(0)
        except Exception:
            self.safe_errors += 1
        try:
            if self._sp is not None:
                self._sp.deinit()
        except Exception:
            self.safe_errors += 1
        self._sp = None
        try:
            self._sp_pin.init(Pin.OUT, value=0)
        except Exception:
            self.safe_errors += 1
        try:
            self._sp_pin.value(0)
        except Exception:
            self.safe_errors += 1
        self.ua = 0
        self.duty = 0
        try:
            if self._gate_pwm is not None:
                self._gate_pwm.duty_u16(0)
                self._gate_pwm.deinit()
        except Exception:
            self.safe_errors += 1
        self._gate_pwm = None
        try:
            self._gate_pin.init(Pin.OUT, value=0)
        except Exception:
            self.safe_errors += 1
        try:
            if self._cl is not None:
                self._cl.duty_u16(0)
                self._cl.deinit()
        except Exception:
            self.safe_errors += 1
        self._cl = None
        self.clamp_duty = 0
        try:
            self._cl_pin.init(Pin.OUT, value=0)  # clamp at 0 V: the node cannot hold charge
        except Exception:
            self.safe_errors += 1
        self.gate = False
        self.gate_hz = 0
        self.gate_duty = 0

    def enable_level(self):
        """The enable pad as read back (self-test: low while off)."""
        return self._en.value()

    def setpoint_level(self):
        return self._sp_pin.value()
