# A hung control loop: the watchdog (armed by the loop at START, fed only while every check
# passes) must reset the chip. The mock calls the reset handler fwsim records.
import time
import vclock
import fwsim
from fw_common import emit

u = fwsim.Unit("palms", cfg=fwsim.fast_cfg())
u.run_s(2)
emit("armed_in_idle", vclock.wdt_running())
u.start_treatment()
u.run_s(1)
last_feed = [0]
feed = u.app._feed


def fed():
    last_feed[0] = vclock.now_us()
    feed()


u.app._feed = fed
u.run_s(0.1)


def hang(now_ms):
    while True:  # a driver spinning on a flag that never comes
        time.sleep_us(100)


u.app._bz_tick = hang
try:
    u.run_s(5)
    emit("reset", None)
except fwsim.Reset:
    emit("reset", u.resets[0][1])
    emit("hang_to_reset_ms", (u.resets[0][0] - last_feed[0]) // 1000)
