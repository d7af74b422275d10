# What the storage and power-cut checks share (MicroPython and CPython): a stand-in for the
# config.Preset fields a session summary records, and reading a file that may not be there.


class Preset:
    # config.Preset's fields that the summary records (config.compile_presets in real use).
    name = "feet"
    ceiling_ua = 30000
    duration_ms = 1_200_000
    slew_up = 300
    slew_down = 600
    reverse = True
    polarity = 0
    area_cm2 = 150
    gate_hz = 0
    gate_duty_pct = 100
    dose_cap_uas = 42_000_000


def read(path):
    """The file's bytes, or None when it cannot be read (not written yet, or cut away)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None
