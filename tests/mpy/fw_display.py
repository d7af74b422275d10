# The display follows every state change at once, and the clock survives a watchdog reset, on
# the in-process virtual unit (argv[1] names the topic). Results as "@R [key, value]" lines
# for tests/test_display_clock.py.
import sys
import time

import machine
import fwsim
import board as fwboard
import session as S
from fw_common import emit

topic = sys.argv[1]


def page_when(u, pred):
    # Tick until pred() holds; the page drawn by the end of that same tick.
    u.ticks_until(pred)
    return u.text()


if topic == "fault":
    # A fault, STOP with its cause still present (refused), the cause gone, STOP: IDLE shows
    # the settings, not the old "cannot clear" page; MODE shows the new preset at once.
    u = fwsim.Unit("palms", cfg=fwsim.fast_cfg())
    u.start_treatment()
    u.run_s(1)
    u.fault("i2c_nack")
    emit("fault_page", page_when(u, lambda: u.s.state == S.FAULT)[:2])
    u.sb.handle({"cmd": "press", "button": "STOP"})
    emit("refused_page", page_when(u, lambda: u.s.refuse != 0)[:2])
    u.run_s(1)
    u.sb.clear_faults()
    u.run_s(0.5)
    u.sb.handle({"cmd": "press", "button": "STOP"})
    emit("idle_page", page_when(u, lambda: u.s.state == S.IDLE)[:2])
    u.run_s(1)
    emit("idle_page_later", u.text()[:2])
    before = u.s.preset.name
    u.sb.handle({"cmd": "press", "button": "MODE"})
    emit("mode_page", page_when(u, lambda: u.s.preset.name != before)[:2])
    emit("mode_preset", u.s.preset.name)

elif topic == "refused":
    # START refused (a USB host on a non-isolated port), then MODE: the preset is shown.
    u = fwsim.Unit("palms", usb_host=True)
    u.press("START")
    emit("refused_page", u.text()[:2])
    emit("refuse", u.s.refuse)
    before = u.s.preset.name
    u.sb.handle({"cmd": "press", "button": "MODE"})
    emit("mode_page", page_when(u, lambda: u.s.preset.name != before)[:2])
    emit("mode_preset", u.s.preset.name)
    u.sb.handle({"cmd": "press", "button": "UP"})
    u.run_s(0.3)

elif topic == "clock":
    # A host set the clock; a treatment ran (the watchdog is armed); the host's restart is a
    # watchdog reset: the next boot's RTC carries on from the time kept in the scratch
    # registers. A power-on reset clears them: the RTC starts at 2021 again.
    u = fwsim.Unit("palms", cfg=fwsim.fast_cfg())
    machine.RTC().datetime((2026, 12, 3, 3, 18, 0, 0, 0))
    set_at = time.time()
    u.start_treatment()
    u.run_s(3)
    u.press("STOP")
    u.until(lambda s: s.state == S.STOPPED, 10)
    u.run_s(1.2)
    before = time.time()
    emit("elapsed_before_reset", before - set_at)
    emit("kept", fwboard.kept_time())
    u.close()
    machine.sim_power_on(machine.WDT_RESET)
    emit("rtc_after_reset_raw", time.gmtime()[0])
    b = fwboard.Board()
    r = b.restore_time()
    emit("restored", r is not None)
    emit("time_after", time.time())
    emit("time_before", before)
    emit("year_after", time.gmtime()[0])
    emit("restore_again", b.restore_time())  # the RTC is set now: nothing to do
    b.close()
    machine.sim_power_on(machine.PWRON_RESET)
    b = fwboard.Board()
    emit("after_power_on", b.restore_time())
    emit("year_after_power_on", time.gmtime()[0])
    emit("kept_after_power_on", fwboard.kept_time())
    b.close()
