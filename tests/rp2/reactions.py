# On the emulated RP2040 (rp2 port, our image): fault reactions of the unit's firmware, heap-locked
# as main.py runs it. For each fault the board has armed (picoboard.arm(): kind, value, delay),
# a session is brought to TREAT at the target, the trigger pin (GP28, not wired on a unit) rises,
# the board applies the fault on its pins delay_us later and times the enable pin's fall (and the
# setpoint's) on its clock, which is the chip's; the loop runs until it has reacted, then the pin
# falls (the board clears the fault) and the session is ended. Prints "@RESULT {json}": per fault,
# the state before and after and the fault code the firmware named.
# The host sends it after app_prelude.py (the App, step, finish) and option lines: N = how many
# faults are armed; HOLD_MS = the longest wait.
from machine import Pin

try:
    N
except NameError:
    N = 1
try:
    HOLD_MS
except NameError:
    HOLD_MS = 1_000

trigger = Pin(28, Pin.OUT, value=0)
heap_min = [gc.mem_free()]


def heap_look():
    f = gc.mem_free()
    if f < heap_min[0]:
        heap_min[0] = f


def until(states, ms):
    # One tick per call, in phase (run() carries on the loop's schedule): the script's check
    # between two ticks is a few tens of us of a tick's slack. Nothing slower here: the heap is
    # looked at between sessions only (gc.mem_free() walks the heap: milliseconds).
    n = 0
    while app.s.state not in states and n < ms:
        step(1)
        n += PERIOD_US // 1000


def press(btn):
    inj[0] = btn
    step(TPS // 20)


def to_idle():
    for _ in range(8):
        if app.s.state == S.IDLE:
            return
        press(S.BTN_STOP)
        until((S.IDLE, S.STOPPED, S.DONE, S.FAULT), 4_000)
    raise RuntimeError("not back to IDLE: " + S.STATE_NAMES[app.s.state])


res = {"period_us": PERIOD_US, "faults": []}
step(TPS // 10)
for _ in range(N):
    to_idle()
    heap_look()
    press(S.BTN_START)
    press(S.BTN_START)
    until((S.RAMP_UP,), 3_000)
    app.s.ramp.reset(app.s.target_ua)  # no need to wait for the ramp: the target at once
    until((S.TREAT,), 1_000)
    step(TPS // 4)
    st0 = app.s.state
    app.rephase()
    gc0 = app.gc_runs
    trigger.value(1)
    until((S.FAULT, S.PAUSED), HOLD_MS)
    # the collector's planned slot (two periods, every 10 s) may fall inside the reaction
    gc1 = app.gc_runs
    step(TPS // 20)
    res["faults"].append({"from": S.STATE_NAMES[st0], "to": S.STATE_NAMES[app.s.state], "fault": app.s.fault,
                          "gc_slots": gc1 - gc0})
    trigger.value(0)
    step(TPS // 20)
to_idle()
res["heap_free_min"] = heap_min[0]
finish(res)
