# The `machine` mock's ADC (machine.ADC; sim_adc supplies the readings). Re-exported by machine.py.
import vclock
from machine_pins import Pin, sim_pin

try:
    from micropython import const
except ImportError:
    def const(x):
        return x


# --- ADC ------------------------------------------------------------------------------------
_adc_src = {}


def sim_adc(pin_id, fn):
    """fn() -> u16 supplies readings for ADC pin 26..29, or 4 for the temperature sensor."""
    _adc_src[pin_id] = fn


class ADC:
    CORE_TEMP = const(4)

    def __init__(self, id):
        if isinstance(id, Pin):
            id = id._id
        if not isinstance(id, int):
            raise ValueError("invalid ADC source")
        if 0 <= id <= 3:
            id += 26
        elif id != 4 and not 26 <= id <= 29:
            raise ValueError("invalid pin")
        self._key = id
        if id != 4:
            st = sim_pin(id)
            st.mode = 3
            st.alt = 31  # analog: digital input disabled
            st.pull = None

    def read_u16(self):
        v = _adc_src.get(self._key)  # the source, then its reading (one local less: see below)
        if v is None:
            # Temperature sensor at 27 C reads 0.706 V
            v = 14020 if self._key == 4 else 0
        else:
            # The source answers outside the firmware's heap lock (simulator code). Few locals:
            # a frame over 11 words goes on the heap at every call when the heap is unlocked.
            d = vclock.sim_unlock()
            try:
                v = int(v())
            finally:
                vclock.sim_relock(d)
            if v < 0:
                v = 0
            elif v > 65535:
                v = 65535
        v >>= 4  # 12-bit converter, scaled to 16 bits as rp2 does
        return (v << 4) | (v >> 8)
