# Self-test at boot: the unit treats only when every item passes.
#
# Items: sensor present and calibrated; zero current with the output disabled (a welded
# switch or a leaking source shows here); hardware limiter not tripped; no button held (a
# stuck START must not confirm a treatment); configuration valid; firmware files intact.
# Before each start the supervisor repeats the dynamic checks (sensor error, current with
# the output off, USB interlock) in Supervisor.start_block.
from time import sleep_ms

import integrity
import limits as L

_SAMPLES = 8


def run(board, config_ok, config_text=""):
    """Returns (ok, results) where results is a list of (item, ok, words)."""
    res = []
    board.output.safe()
    sensor = board.ina_ok
    res.append(("sensor", sensor, "INA219 calibrated" if sensor else
                "current sensor not answering (I2C error %d)" % board.ina.error))
    if sensor:
        # Let the output settle off, then look for current that should not be there.
        sleep_ms(20)
        worst = 0
        err = 0
        for _ in range(_SAMPLES):
            sleep_ms(2)
            ua = board.ina.read_shunt_ua()
            if board.ina.error:
                err = board.ina.error
                break
            if ua > worst:
                worst = ua
        if err:
            res.append(("zero current", False, "current sensor read failed (error %d)" % err))
        else:
            ok = worst <= L.ZERO_TOL_UA
            res.append(("zero current", ok, "%d uA with output off" % worst if ok else
                        "current flows with output off (%d uA): output switch stuck" % worst))
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
