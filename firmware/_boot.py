# _boot.py: frozen into our rp2 build in place of the stock one (hw/rp2/manifest.py). It runs
# before boot.py and main.py at every reset and soft reset, from the firmware image, so it
# works when the filesystem does not.
#
# The stock one formats the flash when mounting fails, erasing every log. This one mounts
# through fsmount, which formats only a blank chip. When the filesystem does not mount,
# nothing is mounted, so neither boot.py nor main.py exists and the unit cannot treat; this
# file makes the output safe, says STORAGE ERROR on the display if it can, prints one line
# with the recovery on the USB REPL, and leaves the REPL to the technician (the image is kept
# as it was: hw/rp2/README.md, "Recovery").
import fsmount


def _storage_error(words):
    # Only frozen modules are importable here: pins, ssd1306, display, limits (the manifest).
    try:
        import pins
        from machine import Pin

        for p in (pins.PIN_OUTPUT_ENABLE, pins.PIN_SETPOINT_PWM, pins.PIN_PULSE_GATE):
            Pin(p, Pin.OUT, value=0)
    except Exception as e:
        print("_boot: output could not be made safe:", e)
    try:
        import pins
        from machine import I2C, Pin
        from ssd1306 import SSD1306
        from display import Display

        i2c = I2C(pins.I2C_ID, scl=Pin(pins.I2C_SCL), sda=Pin(pins.I2C_SDA), freq=pins.I2C_FREQ)
        oled = SSD1306(i2c, pins.SSD1306_ADDR)
        oled.init_display()
        d = Display(oled)
        d.message("STORAGE ERROR", "Flash damaged. Unit will not treat. Call technician.")
        d.show()
    except Exception:
        pass  # no display: the REPL line below still says it
    print("STORAGE ERROR: %s. The unit will not treat. Recovery (hw/rp2/README.md): save the"
          " partition with picotool or rp2.Flash().readblocks, then format it deliberately." % words)


def _boot():
    import rp2

    ok, words = fsmount.mount_root(rp2.Flash())
    if not ok:
        _storage_error(words)


_boot()
del _boot, _storage_error
