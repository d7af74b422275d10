"""`ionto bench --port PORT` against the virtual unit (`ionto sim` on a pty, firmware bundle
on its flash): the output format of `make bench`, the JSON, the output kept off, the
refusal while a treatment runs (without interrupting it), and the one-line errors.

Figures are not asserted (speed goes to benchmarks); only their form and the unit's state.
"""
import json
import re
import subprocess
import sys

import pytest
import serial

from ionto import bench_cmd, cli
from ionto.scripted import paced, press, wait_for
from ionto.simctl import VirtualUnit

pytestmark = pytest.mark.slow

LINE = re.compile(r"^(\w+): (\S+) (.*)$")  # bench/run.py prints "%s: %s %s" % (name, value, unit)
NAMES = ("onboard_loop_period_us_median", "onboard_loop_jitter_us_p99", "onboard_loop_jitter_us_max",
         "onboard_tick_us_median", "onboard_i2c_read_shunt_us_median", "onboard_heap_free_bytes",
         "onboard_output_enabled")


@pytest.fixture(scope="module")
def vu(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, scenario="palms", accel=0) as v:
        yield v


def fresh(vu):
    """Power-cycle: main.py runs again, the watchdog is off; wait for the loop to tick."""
    vu.ctl.power_cycle()
    vu.wait_ready()
    wait_for(vu.ctl, "app is not None and app.ticks > 20", timeout=30)


def bench(capsys, *args):
    rc = cli.main(["bench", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def test_bench_on_the_virtual_unit_prints_make_bench_lines(vu, capsys, tmp_path):
    fresh(vu)
    js = tmp_path / "onboard.json"
    rc, out, err = bench(capsys, "--port", vu.port, "--json", str(js), "--ticks", "300", "--i2c", "50")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("# ") and "VIRTUAL" in lines[0] and "virtual clock" in lines[0]
    figures = {}
    for ln in lines[1:]:
        if ln.startswith("#"):
            continue
        m = LINE.match(ln)
        assert m, "not a `name: value unit` line: %r" % ln
        figures[m.group(1)] = m.group(2)
    for name in NAMES:
        assert name in figures, name
    assert int(figures["onboard_loop_ticks"]) == 300
    assert int(figures["onboard_i2c_errors"]) == 0
    assert int(figures["onboard_loop_period_us_median"]) > 0 and int(figures["onboard_heap_free_bytes"]) > 0
    # The JSON holds the same figures in bench/results.json's shape.
    data = json.loads(js.read_text())
    assert set(data) == set(figures)
    assert all(set(v) == {"value", "unit"} for v in data.values())
    assert str(data["onboard_tick_us_median"]["value"]) == figures["onboard_tick_us_median"]
    # The bench never enabled the output, and left the unit at its REPL with the output off.
    assert figures["onboard_output_enabled"] == "0"
    st = vu.ctl.state()
    assert st["enable"] == 0 and st["true_ua"] == 0


def test_bench_refuses_while_a_treatment_runs(vu, capsys):
    fresh(vu)
    c = vu.ctl
    c.usb(host_present=False)  # as in the clinic: START is allowed
    try:
        press(c, "START", "START")  # one sequence on the unit's clock, a nurse's pace apart
        wait_for(c, "app.s.state in (3, 4) and app.s.actual_ua > 1000", timeout=120)
        with paced(c):  # 10x while the host works: the treatment is still running after
            ticks = c.eval("app.ticks")
            rc, out, err = bench(capsys, "--port", vu.port)
            assert rc == bench_cmd.EXIT_REFUSED
            assert out == ""
            assert len(err.strip().splitlines()) == 1 and "treatment is running" in err and "Traceback" not in err
            # Not interrupted: main.py still runs the treatment with current flowing.
            wait_for(c, "app.ticks > %d" % (ticks + 50), timeout=30)
            assert c.eval("app.s.state") in (3, 4)
            assert c.state()["enable"] == 1
    finally:
        c.usb(host_present=True)
        c.press("STOP")


def test_bench_on_a_busy_port_fails_in_one_line(vu, capsys):
    holder = serial.Serial(vu.port, 115200, exclusive=True)
    try:
        rc, out, err = bench(capsys, "--port", vu.port)
    finally:
        holder.close()
    assert rc == bench_cmd.EXIT_BUSY, err
    assert out == "" and len(err.strip().splitlines()) == 1 and "busy" in err


def test_bench_without_a_device_fails_in_one_line(tmp_path):
    port = str(tmp_path / "ttyACM9")
    r = subprocess.run([sys.executable, "-m", "ionto.cli", "bench", "--port", port],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == bench_cmd.EXIT_NO_DEVICE
    assert r.stdout == ""
    assert r.stderr.strip().splitlines() == ["ionto bench: error: no device at %s: is the unit plugged in "
                                             "(or `ionto sim` running)?" % port]
