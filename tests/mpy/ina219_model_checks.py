# The INA219 register model under the MicroPython unix port (run by
# tests/test_ina219_model.py with hw/sim on MICROPYPATH). Prints
# "ina219_model_checks: all ok" at the end; a failed check raises and exits non-zero.
import machine
import vclock
import ina219_model
from ina219_model import INA219

from checkrun import check


T = [0]


def clk():
    return T[0]


IN = [0, 0]
ASKED = [0, -1]  # calls, last time asked


def src(now):
    check(now >= ASKED[1], "source asked about the past")
    ASKED[0] += 1
    ASKED[1] = now
    return IN[0], IN[1]


def rd(ina, reg):
    ina.i2c_write(bytes((reg,)))
    b = ina.i2c_read(2)
    return (b[0] << 8) | b[1]


def wr(ina, reg, v):
    ina.i2c_write(bytes((reg, v >> 8, v & 0xFF)))


def s16(v):
    return v - 0x10000 if v & 0x8000 else v


import checkrun


# power-on values, pointer at config
@checkrun.section
def check_power_on_values_pointer_at_config():
    global ina, r
    ina = INA219(src, clock=clk, noise_uv=0)
    check(ina.i2c_read(2) == b"\x39\x9f", "POR config")
    for r in (1, 2, 3, 4, 5):
        check(rd(ina, r) == 0, "POR reg %d" % r)


# a conversion cycle, the shunt format at /8, current and power gated by calibration
@checkrun.section
def check_a_conversion_cycle_the_shunt_format_at_8_current():
    IN[0], IN[1] = -320_000, 12_000
    T[0] = 1064
    check(rd(ina, 1) == 0x8300, "shunt -320 mV")
    check(rd(ina, 2) == (3000 << 3) | 2, "bus + CNVR")
    check(rd(ina, 4) == 0 and rd(ina, 3) == 0, "gated")
    check(rd(ina, 2) & 2 == 0, "power read clears CNVR")
    wr(ina, 5, 4097)
    check(rd(ina, 5) == 4096, "cal bit 0")
    T[0] = 2 * 1064
    check(s16(rd(ina, 4)) == -32000 and rd(ina, 3) == 32000 * 3000 // 5000, "eq. 4, 5")


# pointer retention
@checkrun.section
def check_pointer_retention():
    ina.i2c_write(b"\x01")
    check(ina.i2c_read(2) == ina.i2c_read(2) == b"\x83\x00", "pointer kept")
    check(ina.i2c_read(3) == b"\x83\x00\xff", "pad")


# PGA /1 clips and flags OVF; 9-bit quantisation
@checkrun.section
def check_pga_1_clips_and_flags_ovf_9_bit_quantisation():
    IN[0] = 55_000
    wr(ina, 0, (1 << 13) | (0 << 11) | (3 << 7) | (3 << 3) | 7)
    T[0] += 1064
    check(rd(ina, 1) == 4000 and rd(ina, 2) & 1 == 1, "OVF at /1")
    IN[0] = 12_345
    wr(ina, 0, (1 << 13) | (3 << 11) | (3 << 7) | (0 << 3) | 7)
    T[0] += 1064
    check(rd(ina, 1) == 1232 and rd(ina, 2) & 1 == 0, "9-bit shunt")


# triggered: one cycle, then the registers hold until the next trigger
@checkrun.section
def check_triggered_one_cycle_then_the_registers_hold_unti():
    wr(ina, 0, 0x399B)
    IN[0] = 10_000
    T[0] += 1063
    check(rd(ina, 2) & 2 == 0, "not yet")
    T[0] += 1
    check(rd(ina, 1) == 1000 and rd(ina, 2) & 2 == 2, "triggered done")
    IN[0] = 20_000
    T[0] += 100_000
    check(rd(ina, 1) == 1000, "triggered holds")
    wr(ina, 0, 0x399B)
    T[0] += 1064
    check(rd(ina, 1) == 2000, "re-triggered")
    check(ina.cycle_us == 1064 and ina219_model.adc_time_us(15) == 68100, "times")


# RST
@checkrun.section
def check_rst():
    wr(ina, 0, 0x8000)
    check(rd(ina, 0) == 0x399F and rd(ina, 5) == 0 and rd(ina, 1) == 0, "RST")


# seeded noise repeats
@checkrun.section
def check_seeded_noise_repeats():
    global a, noisy
    def noisy(seed):
        T[0] = 0
        m = INA219(lambda now: (100_000, 0), clock=clk, noise_uv=30, seed=seed)
        out = []
        for k in range(1, 50):
            T[0] = k * 1064
            out.append(rd(m, 1))
        return out


    a = noisy(3)
    check(a == noisy(3) and a != noisy(4), "seeded noise")
    check(min(a) >= 9997 and max(a) <= 10003 and len(set(a)) > 2, "noise bounds")


# exact sampling with a pure source: the mean of 4 samples at their instants
@checkrun.section
def check_exact_sampling_with_a_pure_source_the_mean_of_4():
    global m
    T[0] = 0
    m = INA219(lambda now: (now * 10, 0), clock=clk, exact=True, noise_uv=0)
    wr(m, 0, (1 << 13) | (3 << 11) | (3 << 7) | (10 << 3) | 1)
    T[0] = 2130
    check(rd(m, 1) == (532 + 1065 + 1597 + 2130) // 4, "exact averaging")


# on the machine mock's bus, timed by vclock
@checkrun.section
def check_on_the_machine_mock_s_bus_timed_by_vclock():
    global _, buf, bus, dev, i2c
    machine.sim_power_on()
    bus = machine.sim_i2c_bus(1)
    IN[0], IN[1] = 123_450, 0
    ASKED[1] = -1
    dev = INA219(src, noise_uv=0)
    bus.attach(0x45, dev)
    i2c = machine.I2C(1, scl=machine.Pin(7), sda=machine.Pin(6))
    check(0x45 in i2c.scan(), "scan")
    i2c.writeto_mem(0x45, 5, b"\x10\x00")
    vclock.advance(5000)
    buf = bytearray(2)
    i2c.readfrom_mem_into(0x45, 1, buf)
    check(buf == b"\x30\x39", "shunt over the bus %r" % buf)
    i2c.readfrom_mem_into(0x45, 4, buf)
    check(buf == b"\x30\x39", "current over the bus")
    # a 500 Hz loop of shunt reads for a virtual minute
    for _ in range(30_000):
        i2c.readfrom_mem_into(0x45, 1, buf)
        vclock.advance(2000)
    check(buf == b"\x30\x39", "loop")
    bus.detach(0x45)


if checkrun.run():
    print("ina219_model_checks: %d checks" % checkrun.count())
    print("ina219_model_checks: all ok")
