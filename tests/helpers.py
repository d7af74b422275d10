"""Shared steps of the tests that drive the virtual unit: waiting for its application, host
sessions that end in a restart, a treatment run with the buttons, files read off its flash and
the bytes that reached it from the host.

Every wait here is on the unit's state through its control channel (ionto.scripted.wait_for,
with a deadline), never a fixed delay."""
import binascii
import time

from ionto import link
from ionto.scripted import press, wait_for, wait_virtual_s

import session as S

IDLE_APP = "globals().get('app') is not None and app.ticks > 50 and app.s.state == %d" % S.IDLE


def ready(c, timeout=60):
    """main.py's application runs and is idle (after a boot, a host session's restart, a power
    cut); then the supply is isolated, as in the clinic, so START is allowed."""
    wait_for(c, IDLE_APP, timeout=timeout)
    c.usb(host_present=False)


def to_idle(c, timeout=60):
    """Bring the application back to IDLE from wherever an earlier test left it: a START
    waiting for its confirmation is cancelled (STOP), a treatment is stopped (STOP, its ramp
    down), a STOPPED or DONE screen acknowledged (STOP)."""
    wait_for(c, "globals().get('app') is not None and app.ticks > 20", timeout=timeout)
    if c.eval("app.s.state") not in (S.IDLE, S.STOPPED, S.DONE, S.FAULT):
        press(c, "STOP")
        wait_for(c, "app.s.state in (%d, %d, %d)" % (S.IDLE, S.STOPPED, S.DONE), timeout=timeout)
    if c.eval("app.s.state") != S.IDLE:
        press(c, "STOP")
    wait_for(c, "app.s.state == %d" % S.IDLE, timeout=timeout)


def bytes_received(c):
    """Every byte that has crossed the unit's port from the host since the virtual unit started
    (counted on the pseudo-terminal as its host process hands them to the unit)."""
    return c.status()["bytes"]["from_host"]


def unit_file(c, name):
    """A file of the unit's /log, read through the control channel (no host session)."""
    return binascii.unhexlify(c.eval("__import__('binascii').hexlify(open('/log/%s', 'rb').read()).decode()" % name))


def boots(c):
    """How many times the unit has started (power-ons, resets, soft reboots' restarts)."""
    return c.status()["boots"]


def until(cond, what, timeout=60.0, poll=0.02):
    """Wait until cond() is true: the unit runs in other processes, so its state is looked at
    through the control channel every `poll` s until the deadline (a condition, not a delay)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(poll)
    return True


def wait_restart(c, since, timeout=60):
    """Wait for a boot after `since` (a host session ending in a watchdog reset, a power cut)."""
    until(lambda: boots(c) > since, "the unit to restart", timeout)


def host_session(vu, *calls, armed=None):
    """A host command's session: enter, hostcmd calls, leave (a soft reboot; after a treatment
    the watchdog is armed and the host's leaving resets the unit: wait for that boot)."""
    c = vu.ctl
    armed = c.eval("_b.wdt is not None") if armed is None else armed
    n = boots(c)
    with link.Link.open(vu.port) as u:
        u.enter()
        out = [u.hostcmd(*call) for call in calls]
    if armed:
        wait_restart(c, n)
    ready(c)
    return out


def run_treatment(c, treat_s=2):
    """START, confirm, `treat_s` virtual seconds of TREAT, STOP; wait until its log is on flash.
    -> (session number, end reason) as the firmware has them; the unit is left STOPPED."""
    press(c, "START", "START")
    wait_for(c, "app.s.state == %d" % S.TREAT, timeout=120)
    wait_virtual_s(c, treat_s)
    press(c, "STOP")
    wait_for(c, "app.s.state == %d and not log.pending()" % S.STOPPED, timeout=60)
    return c.eval("log.session"), c.eval("app.s.end_reason")


def drive_outputs(ua=10_000):
    """Drive the analog output stage through the machine mock's pins as the firmware would:
    setpoint PWM for `ua`, pulse gate open, polarity A, the adaptive clamp at the rail (the
    firmware sets it to what the load needs), output enabled. -> (setpoint PWM, enable pin)"""
    import machine
    import pins

    pwm = machine.PWM(machine.Pin(pins.PIN_SETPOINT_PWM), freq=pins.SETPOINT_PWM_FREQ, duty_u16=0)
    en = machine.Pin(pins.PIN_OUTPUT_ENABLE, machine.Pin.OUT, value=0)
    machine.Pin(pins.PIN_PULSE_GATE, machine.Pin.OUT, value=1)
    machine.Pin(pins.PIN_POLARITY, machine.Pin.OUT, value=0)
    machine.PWM(machine.Pin(pins.PIN_CLAMP_PWM), freq=pins.CLAMP_PWM_FREQ, duty_u16=65535)
    en.value(1)
    pwm.duty_u16(ua * 65535 // pins.SETPOINT_FULL_SCALE_UA)
    return pwm, en


# --- stand-ins for the log's CPython tests ---------------------------------------------------
class Clock:
    """A wall clock the test sets (logstore.Log(clock=...)): unix seconds in .t."""

    def __init__(self, t=1000):
        self.t = t

    def __call__(self):
        return self.t


class FakeSession:
    """What logstore.Log.on_session_event reads from a session.Session: the default preset."""

    def __init__(self):
        import config

        self.preset_idx = 0
        self.preset = config.compile_presets(config.defaults())[0]
        self.target_ua = 15000
        self.treat_ms = 0
