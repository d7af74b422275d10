"""`ionto monitor`: a live view from the read-only status channel that never disturbs a
treatment. Against the virtual unit over its pseudo-terminal (one module-scoped unit), and
against a bare pty for the parsing, drawing and error paths."""
import argparse
import csv
import fcntl
import io
import os
import threading
import tty

import pytest
import serial

from ionto import cli, link, monitor
from ionto.errors import EXIT_BUSY, EXIT_NO_DEVICE, EXIT_UNIT, IontoError
from ionto.scripted import press, wait_for
from ionto.simctl import VirtualUnit

from helpers import bytes_received, to_idle

TREATING = (2, 3, 4)  # CONTACT, RAMP UP, TREAT (firmware session.py)


@pytest.fixture(scope="module")
def vu(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, accel=2) as v:  # two status lines a second
        wait_for(v.ctl, "app is not None and app.ticks > 50", timeout=60)
        v.ctl.usb(host_present=False)  # isolated supply, as in the clinic: START is allowed
        yield v


@pytest.fixture
def ionto(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "monitor", ("ionto.monitor", "live view of a unit"))

    def run(*argv):
        rc = cli.main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


def args(port, duration, plot=False, csv_path=None):
    return argparse.Namespace(port=port, plot=plot, duration=duration, csv=csv_path)


@pytest.fixture
def listening(monkeypatch):
    """An event set once the monitor has skipped what waited in the port and listens live (its
    first quiet read), and a `stop` event that ends it as Ctrl-C would, at its next read."""
    real = monitor.ReadOnlyPort.read
    live, stop = threading.Event(), threading.Event()

    def read(self, timeout):
        if stop.is_set():
            raise KeyboardInterrupt
        data = real(self, timeout)
        if not data:
            live.set()
        return data

    monkeypatch.setattr(monitor.ReadOnlyPort, "read", read)
    return live, stop


def host_bytes_waiting(ctl):
    """Bytes the unit received from the host and has not consumed (main.py never reads them:
    only the REPL would)."""
    return ctl.eval("len(serial.buf) - serial.rd", scope="sim")


# --- words and drawing (no unit) ---------------------------------------------------------------
def test_events_and_faults_in_the_firmwares_words():
    assert "SHORT CIRCUIT" in monitor.event_words("fault", 5, 31000) and "31.0 mA" in monitor.event_words("fault", 5, 31000)
    assert monitor.event_words("end", 1, 600000) == "ended: time complete, dose 10.0 mA.min"
    assert monitor.event_words("state", 4, 3) == "RAMP UP -> TREAT"
    assert "usb_connected" in monitor.event_words("refused", 20, 0)
    assert monitor.event_words("PAUSE", 75, 9000).startswith("paused: skin contact lost after 1:15")
    assert monitor.event_words("reverse", 1, 600) == "polarity reversed to B+ after 10:00 of treatment"
    assert monitor.event_words("nonsense", 1, 2) == "nonsense 1 2"


def test_view_parses_status_and_draws_actual_against_set():
    v = monitor.View()
    v.feed("@ID 0123ABCD 0.1.0\r\n", 0.0)
    # Older firmware: nine fields, no dose: the dose is estimated, one line per unit second.
    for i in range(30):
        v.feed("@ST TREAT %d 15000 15000 %d 0 0 -1 30000\r\n" % (1200 - i, 15000 if i < 20 else 9000), float(i))
    v.feed("@ST TREAT 1170 15000 15000 9000 1 0 9000 60000\r\n", 30.0)
    v.feed("@EV 1234 limited 9000 15000\r\n", 30.0)
    dose, est = v.dose()
    assert est and dose == pytest.approx((20 * 15000 + 11 * 9000) / 60000.0)
    line = v.line("12:00:00")
    assert "TREAT" in line and "left 19:30" in line and "actual 9.00 mA" in line and "pol B+" in line
    assert "LIMITED to 9.0 mA of 15.0 mA" in line and "~" in line
    assert [e["words"] for e in v.events] == ["current limited: 9.0 mA reachable of 15.0 mA target"]
    frame = v.frame("/dev/x", 100, 31.0, plot=True)
    text = "\n".join(frame)
    assert "unit 0123ABCD  firmware 0.1.0" in text and "current limited" in text
    chart = [ln[8:] for ln in frame if ln[6:7] in ("┤", "│")]
    assert len(chart) == 5 and frame[[i for i, ln in enumerate(frame) if ln[6:7] == "┤"][0]].startswith(" 15.0")
    # Right-aligned: the newest samples at the right edge, nothing yet at the left.
    assert chart[-1][-1] != "\u2800" and chart[-1][0] == "\u2800"
    # The gap between the set line and the actual fill shows where the current fell short.
    top = monitor.plot_lines([15000] * 10, [15000] * 5 + [7500] * 5, width=16, height=4)
    assert top[0].startswith(" 15.0")
    cells = [ln.split("┤")[-1].split("│")[-1] for ln in top[:4]]
    assert cells[0][-1] != cells[0][-5]  # set line only at the end vs set line + fill
    assert all("\u2800" <= ch <= "\u28ff" for row in cells for ch in row)
    # Fault in words, with what the nurse should do, once the unit is in FAULT.
    v.feed("@ST FAULT 0 15000 0 0 0 5 -1 0 90000 3\r\n", 32.0)
    assert "short (SHORT CIRCUIT / check trays): Output cut" in v.line("t")
    assert v.dose() == (1.5, False)  # the unit's own dose when it reports one


def test_silent_port_is_exit_unit_and_missing_port_no_device(ionto, tmp_path):
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        rc, out, err = ionto("monitor", "--port", os.ttyname(slave), "--duration", "0.4")
        assert rc == EXIT_UNIT and "no status" in err and err.count("\n") == 1
    finally:
        os.close(master)
        os.close(slave)
    rc, out, err = ionto("monitor", "--port", str(tmp_path / "ttyACM9"), "--duration", "0.4")
    assert rc == EXIT_NO_DEVICE and "ttyACM9" in err


def test_redraws_in_place_on_a_terminal(listening):
    live, stop = listening
    master, slave = os.openpty()
    tty.setraw(slave)
    drawn = threading.Condition()

    class Term(io.StringIO):
        def isatty(self):
            return True

        def write(self, s):
            with drawn:
                n = super().write(s)
                drawn.notify_all()
            return n

    term = Term()

    def shown(text):
        with drawn:
            assert drawn.wait_for(lambda: text in term.getvalue(), timeout=30), text

    def feed():
        try:
            assert live.wait(30)  # the monitor skipped the (empty) backlog: what comes now is live
            # One line at a time, each drawn before the next: every one is a redraw in place.
            for i in range(4):
                os.write(master, b"noise\r\n@ST TREAT %d 10000 10000 9500 0 0 -1 20000 %d 2\r\n" % (600 - i, i * 9500))
                shown("time left %d:%02d" % divmod(600 - i, 60))
            os.write(master, b"@EV 99 pause 75 9000\r\n")
            shown("paused: skin contact lost")
        finally:
            stop.set()

    th = threading.Thread(target=feed)
    th.start()
    try:
        assert monitor.run(args(os.ttyname(slave), None, plot=None), stream=term) == 0
    finally:
        stop.set()
        th.join()
        os.close(master)
        os.close(slave)
    text = term.getvalue()
    assert "\x1b[" in text and "F\x1b[J" in text  # cursor back up, clear: redrawn in place
    assert "time left 9:57" in text and "paused: skin contact lost" in text
    assert any("\u2801" <= ch <= "\u28ff" for ch in text)  # the plot is on by default on a terminal


# --- against the virtual unit ----------------------------------------------------------------
def test_port_is_opened_read_only_and_locked(vu):
    with monitor.ReadOnlyPort(vu.port) as rp:
        assert fcntl.fcntl(rp.fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
        with pytest.raises(OSError):
            os.write(rp.fd, b"\x03")  # the kernel refuses: a Ctrl-C cannot even be tried
        # While the monitor listens, other commands find the port busy instead of reading
        # from under it (or breaking in).
        with pytest.raises(IontoError) as e:
            link.Link.open(vu.port)
        assert e.value.code == EXIT_BUSY
    # And the other way round: a program holding the port keeps the monitor out.
    s = serial.Serial(vu.port, 115200, exclusive=True)
    try:
        with pytest.raises(IontoError) as e:
            monitor.ReadOnlyPort(vu.port)
        assert e.value.code == EXIT_BUSY and "busy" in e.value.message
    finally:
        s.close()


def test_monitor_idle_unit_with_plot_at_the_end(ionto, vu):
    to_idle(vu.ctl)
    rc, out, err = ionto("monitor", "--port", vu.port, "--duration", "3", "--plot")
    assert rc == 0, err
    st_lines = [ln for ln in out.splitlines() if " IDLE " in ln]
    assert st_lines and "set 0.00 mA" in st_lines[-1] and "target 15.00 mA" in st_lines[-1]
    assert " unit " in out and " firmware " in out  # its @ID line
    assert "filled = actual current" in out  # the plot, once, at the end in a pipe
    assert vu.ctl.eval("app.s.state") == 0


def test_monitor_during_a_treatment_leaves_it_unharmed(ionto, vu, tmp_path, listening):
    live, _stop = listening
    c = vu.ctl
    to_idle(c)
    boots = c.state()["unit"]["boots"]
    assert host_bytes_waiting(c) == 0
    received = bytes_received(c)
    out = io.StringIO()
    csv_path = tmp_path / "mon.csv"
    result = {}
    th = threading.Thread(target=lambda: result.setdefault("rc", monitor.run(args(vu.port, 7.0, csv_path=str(csv_path)),
                                                                            stream=out)))
    th.start()
    try:
        assert live.wait(30)  # the monitor has the port and has skipped what waited in it
        press(c, "START", "START")
        wait_for(c, "app.s.state in (3, 4) and app.s.actual_ua > 1000", timeout=30)
        with pytest.raises(IontoError) as e:  # nothing else can break in while it listens
            link.Link.open(vu.port)
        assert e.value.code == EXIT_BUSY
    finally:
        th.join()
    assert result["rc"] == 0
    text = out.getvalue()
    # It saw the session start, in words, and the current flowing.
    assert "event: IDLE -> CONFIRM" in text
    assert "event: treatment started: preset 0, target 15.0 mA" in text
    ramp = [ln for ln in text.splitlines() if " RAMP UP " in ln or " TREAT " in ln]
    assert ramp, text
    assert float(ramp[-1].split("actual ")[1].split()[0]) > 0.5
    rows = list(csv.DictReader(open(csv_path)))
    assert {r["kind"] for r in rows} == {"ST", "EV"}
    seen_ua = max(int(r["actual_ua"]) for r in rows if r["kind"] == "ST")
    assert seen_ua > 500
    # The treatment carries on: still treating, no fault, current flowing and still rising
    # in its ramp, main.py never interrupted, nothing sent to the unit.
    assert c.eval("app.s.state") in TREATING and c.eval("app.s.fault") == 0
    assert c.state()["true_ua"] > 1000
    unit = c.state()["unit"]
    assert unit["state"] == "main" and unit["repl"] == "friendly" and unit["boots"] == boots
    assert host_bytes_waiting(c) == 0 and bytes_received(c) == received
    # Into full treatment (fast), then a second look through the command itself.
    c.accel(0)
    wait_for(c, "app.s.state == 4", timeout=40)
    c.accel(2)
    rc, text, err = ionto("monitor", "--port", vu.port, "--duration", "1.5", "--no-plot")
    assert rc == 0, err
    treat = [ln for ln in text.splitlines() if " TREAT " in ln]
    assert treat and float(treat[-1].split("actual ")[1].split()[0]) > 10.0
    assert "session " in treat[-1] and "dose " in treat[-1]
    assert c.eval("app.s.state") == 4 and c.eval("app.s.fault") == 0 and c.state()["true_ua"] > 10_000
    unit = c.state()["unit"]
    assert unit["state"] == "main" and unit["repl"] == "friendly" and unit["boots"] == boots
    assert host_bytes_waiting(c) == 0 and bytes_received(c) == received
    press(c, "STOP")  # the nurse ends it; the unit is left idle for whoever comes next


def test_ctrl_c_ends_the_monitor_cleanly(ionto, vu, monkeypatch):
    calls = {"n": 0}
    real = monitor.ReadOnlyPort.read

    def read(self, timeout):
        calls["n"] += 1
        if calls["n"] > 6:
            raise KeyboardInterrupt
        return real(self, timeout)

    monkeypatch.setattr(monitor.ReadOnlyPort, "read", read)
    rc, out, err = ionto("monitor", "--port", vu.port)
    assert rc == 0 and err == ""
    assert vu.ctl.state()["unit"]["repl"] == "friendly"
