# The start every emulated-chip script shares (the host sends it before loop_window.py or
# reactions.py, after its option lines): the firmware's App on the real board module with a
# 10 mA hands-and-feet preset, heap-locked as main.py runs it; buttons are injected through
# inj[0]; step(n) runs n ticks; finish(res) leaves the chip safe and prints "@RESULT {json}".
# Option: RAMP_UP_S = the preset's ramp-up in seconds (the configuration's when absent).
import gc
import json

try:
    RAMP_UP_S
except NameError:
    RAMP_UP_S = None

import board as fwboard  # noqa: E402  (output safe at import)
import config  # noqa: E402
import session as S  # noqa: E402
from app import App, PERIOD_US  # noqa: E402

TPS = 1_000_000 // PERIOD_US
c = config.defaults()
c["default_preset"] = "hands_feet"
for p in c["presets"]:
    if p["name"] == "hands_feet":
        p["target_ua"] = 10_000
        if RAMP_UP_S:
            p["ramp_up_s"] = RAMP_UP_S
b = fwboard.Board()
b.init_devices()
app = App(b, c, True, lock_heap=True)
take0 = app._take
inj = [0]


def take():
    m = take0()
    if inj[0]:
        m |= inj[0]
        inj[0] = 0
    return m


app._take = take


def step(n):
    app.run(max_ticks=app.ticks + n)


def finish(res):
    b.safe()
    # As main.py's finally: the watchdog the session armed is fed from a timer while the chip
    # sits at its REPL with the output off (otherwise it resets the chip a second later, under
    # the next run).
    if b.output.enable_level() == 0:
        b.feed_from_timer(250)
    print("@RESULT " + json.dumps(res))
