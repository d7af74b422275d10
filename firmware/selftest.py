# Self-test at boot: the unit treats only when every item passes.
#
# Items: sensor present and calibrated; zero current with the output disabled (a welded
# switch with a leaking source shows here); the switch opens (a welded switch with a clean
# source moves no current at setpoint 0, so the setpoint is raised briefly with enable low:
# any current then is the switch); hardware limiter not tripped; no button held (a stuck
# START must not confirm a treatment); configuration valid; firmware files intact.
# Before each start the supervisor repeats the dynamic checks (sensor error, current with
# the output off, USB interlock) in Supervisor.start_block.
from micropython import const
from time import sleep_ms

import integrity
import limits as L

_SAMPLES = 8
# Switch test: twice the zero tolerance, so a closed switch reads well above it once the
# setpoint filter (2 x 1.6 ms) has risen; far below every limit (ABS_MAX 30 mA). Read for
# _SWITCH_READS ms (the filter settles within ~10 ms); stop at the first reading over.
_SWITCH_TEST_UA = 2 * L.ZERO_TOL_UA
_SWITCH_READS = const(12)
STUCK_WORDS = "output switch stuck closed: service the unit"


def switch_opens(board):
    """With enable low and the gate passing (as in plain DC: only enable holds it off), command
    _SWITCH_TEST_UA for ~12 ms: current must stay within ZERO_TOL_UA. Returns (ok, words).
    The output ends safe whatever happens.

    On the reference board enable also gates the source's input and the bridge (hw/README.md),
    so this proves the enable path as a whole opens (GP17, the AND gate and what it drives);
    a weld of K1 alone is still held off there and cannot show as current."""
    out = board.output
    ina = board.ina
    worst = 0
    fresh = 0
    err = 0
    try:
        out.safe()  # enable low first
        out.set_clamp(L.CLAMP_FLOOR_MV)  # the open level: a 0 V clamp would sink a closed switch
        out.set_gate(True)  # DC: held high, ANDed with enable in hardware
        out.set_ua(_SWITCH_TEST_UA)
        if out.enabled or out.enable_level():
            return False, "enable line does not read low: service the unit"
        ina.status_next()
        for _ in range(_SWITCH_READS):
            sleep_ms(1)
            ua = ina.read_shunt_ua()
            if ina.error:
                err = ina.error
                break
            if ina.fresh:
                fresh += 1
            if ua < 0:
                ua = -ua
            if ua > worst:
                worst = ua
            if worst > L.ZERO_TOL_UA:
                break  # proven closed: no need to keep it flowing
    finally:
        out.safe()
    if err:
        return False, "current sensor read failed (error %d)" % err
    if worst > L.ZERO_TOL_UA:
        return False, "%s (%d uA, enable off)" % (STUCK_WORDS, worst)
    if not fresh:
        return False, "current sensor not converting: switch not tested"
    return True, "opens (%d uA at %d uA test setpoint)" % (worst, _SWITCH_TEST_UA)


def run(board, config_ok, config_text=""):
    """Returns (ok, results) where results is a list of (item, ok, words)."""
    res = []
    board.output.safe()
    sensor = board.ina_ok
    res.append(("sensor", sensor, "INA219 calibrated" if sensor else
                "current sensor not answering (I2C error %d)" % board.ina.error))
    if sensor:
        # Let the output settle off, then look for current that should not be there. Off,
        # the clamp's pin is held low (a 0 V clamp) and would sink a welded switch's current
        # out of sight: the check runs with the clamp at its open-circuit level, where a
        # closed switch drives the skin as it would in a treatment.
        worst = 0
        err = 0
        try:
            board.output.set_clamp(L.CLAMP_FLOOR_MV)
            sleep_ms(L.OFF_SETTLE_MS)
            for _ in range(_SAMPLES):
                sleep_ms(2)
                ua = board.ina.read_shunt_ua()
                if board.ina.error:
                    err = board.ina.error
                    break
                if ua > worst:
                    worst = ua
        finally:
            board.output.safe()  # the clamp back to 0 V and its PWM gone
        if err:
            res.append(("zero current", False, "current sensor read failed (error %d)" % err))
        else:
            ok = worst <= L.ZERO_TOL_UA
            res.append(("zero current", ok, "%d uA with output off" % worst if ok else
                        "current flows with output off (%d uA): output switch stuck" % worst))
            # Only on a quiet output: a leak already failed it, and would hide the switch.
            if ok:
                ok, words = switch_opens(board)
                res.append(("switch", ok, words))
    lim = not board.hw_limit_tripped()
    res.append(("hw limiter", lim, "ready" if lim else "hardware current limiter tripped"))
    held = board.buttons.raw_mask()
    res.append(("buttons", held == 0, "none held" if held == 0 else "a button is held or stuck"))
    res.append(("config", config_ok, "valid" if config_ok else (config_text or "configuration invalid")))
    fw_ok, fw_text = integrity.check()
    res.append(("firmware", fw_ok, fw_text))
    ok = True
    for r in res:
        ok = ok and r[1]
    return ok, res


def first_failure(results):
    for name, ok, words in results:
        if not ok:
            return words
    return ""
