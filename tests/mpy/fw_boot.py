# Boot as the unit does it: firmware/main.py runs on the simulated board (cwd = a firmware
# bundle with its manifest, built by the test), the nurse presses START at 1 s, and a host's
# Ctrl-C ends main.py at 2 s. argv[1] names what is wrong with the unit at power-on.
import sys
import machine
import pins
import vclock
import fwsim
import session as S
from regulator import ua_to_duty
from fw_common import emit

case = sys.argv[1]
bundle = sys.argv[2]  # the firmware bundle (files + manifest.json), a host directory
image = sys.argv[3]  # a flash image file to create

# main.py uses absolute paths ("/config.json", "/log"): give it the unit's own filesystem,
# a LittleFS on the simulated flash mounted at "/", as hw/sim/unit.py does, so nothing here
# touches the host's root. Everything the run needs is read or imported before the remount.
import os
import vfs
import flash
import simboard  # noqa: F401
import scenario
scenario.preload()
for m in ("cfgstore", "logstore", "journal", "fram", "selftest", "app", "version", "config", "board", "integrity",
          "records", "display", "buzzer", "buttons", "output", "ina219", "ssd1306", "ramp",
          "regulator", "supervisor", "session", "limits", "pins", "json", "ina219_model",
          "ssd1306_model", "panel", "plant"):
    try:
        __import__(m)
    except ImportError:
        pass
files = []
for name in os.listdir(bundle):
    with open(bundle + "/" + name, "rb") as f:
        files.append((name, f.read()))
with open(sys.argv[2] + "/main.py") as f:
    main_src = f.read()
flash.create_image(image)
dev = flash.Flash(image)
vfs.umount("/")
vfs.VfsLfs2.mkfs(dev, progsize=256)
vfs.mount(vfs.VfsLfs2(dev, progsize=256), "/")
os.chdir("/")
for name, data in files:
    with open("/" + name, "wb") as f:
        f.write(data)
main_py = "/main.py"


def leak(sb, ua=3_000):
    # A welded output switch and a source that leaks: current flows with the output off.
    p = sb.plant
    p.set_faults(stuck_on=True)
    floor = ua_to_duty(ua)
    orig = p.set_duty
    p.set_duty = lambda d: orig(d if d > floor else floor)
    orig(floor)


before = None
actions = [(1.0, lambda sb: sb.panel.press("START"))]
if case == "sensor_nack":
    before = lambda sb: sb.fault("i2c_nack", addr=pins.INA219_ADDR)
elif case == "stuck_on":
    before = leak
elif case == "button_held":
    before = lambda sb: sb.panel.hold("START")
    actions = [(0.5, lambda sb: sb.panel.release("START")), (1.0, lambda sb: sb.panel.press("START"))]

g, sb, err = fwsim.run_main(stop_s=2.0, actions=actions, before_boot=before, path=main_py)
app = g.get("app")
emit("ended_by", type(err).__name__ if err else None)
emit("app", app is not None)
if app is not None:
    s = app.s
    emit("selftest_ok", s.selftest_ok)
    emit("config_ok", s.config_ok)
    emit("state", S.STATE_NAMES[s.state])
    emit("refuse", s.refuse)
    emit("fault", s.fault)
    emit("screen", app.b.display.text())
    emit("ui_errors", app.ui_errors)
    emit("wdt_armed", app.b.wdt is not None)
st = sb.state()
emit("enable_pin", machine.sim_pin(pins.PIN_OUTPUT_ENABLE).value)
emit("plant_enable", st["enable"])
emit("duty", st["setpoint_duty"])
vclock.advance(50_000)  # 50 ms after the finally: the source has settled
emit("true_ua_after", sb.plant.current_ua(vclock.now_us()))
