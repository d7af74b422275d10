"""ionto/link.py (the mpremote adapter) and `ionto devices`, end to end against the virtual
unit over its pseudo-terminal with the real mpremote underneath."""
import json
import os
import zlib

import pytest
import serial

from ionto import firmware_build, link
from ionto.cli import main as ionto
from ionto.errors import (EXIT_AMBIGUOUS, EXIT_BUSY, EXIT_NO_DEVICE, EXIT_TREATING, EXIT_UNIT, IontoError)
from ionto.scripted import app_ready, paced, press, wait_for, wait_virtual_s
from ionto.simctl import VirtualUnit

from helpers import boots, bytes_received, run_treatment, to_idle, wait_restart


@pytest.fixture(scope="module")
def bundle(fw_bundle):
    return fw_bundle


def test_status_lines_parse_old_and_new_formats():
    kind, st = link.parse_line("@ST TREAT 1190 15000 8000 7990 0 0 -1 24000 123 7\r\n")
    assert kind == "ST" and st.state == "TREAT" and st.actual_ua == 7990 and st.session == 7 and st.treating
    kind, st = link.parse_line(b"@ST IDLE 1200 15000 0 0 0 0 -1 0\n")  # older firmware: 9 fields
    assert st.dose_uas is None and not st.treating
    assert link.parse_line("@EV 512 PAUSE 30 9000\n")[1] == {"ticks": 512, "name": "PAUSE", "a": 30, "b": 9000}
    assert link.parse_line("@ID 0123ABCD 0.1.0\n")[1] == {"serial": "0123ABCD", "version": "0.1.0"}
    assert link.parse_line("@ST\n") is None and link.parse_line("hello\n") is None
    # A board's lines: rp2's text stdout turns the firmware's "\r\n" into "\r\r\n".
    kind, st = link.parse_line(b"@ST IDLE 1200 15000 0 0 0 0 -1 0 0 1\r\r\n")
    assert kind == "ST" and st.state == "IDLE" and st.session == 1
    assert link.parse_line(b"@ID 8FEC6E350355DCE7 0.1.0\r\r\n")[1] == {"serial": "8FEC6E350355DCE7", "version": "0.1.0"}


class _QuietUnit:
    """A port on which nothing comes, in a fake time: each read waits its timeout of wall time,
    during which the unit's own clock moves `rate` times as far (None: it tells no time)."""

    def __init__(self, rate):
        self.wall = 0.0
        self.unit = 100.0
        self.rate = rate
        self.timeout = 0.05
        self.in_waiting = 0

    def read(self, n):
        self.wall += self.timeout
        self.unit += self.timeout * (self.rate or 0)
        return b""

    def clock(self):
        return None if self.rate is None else self.unit


@pytest.mark.parametrize("rate, scale, ends_at", [
    (0.1, 200.0, 10.0),  # a slow emulated chip: once it has lived the second asked
    (5.0, 200.0, 1.0),  # a chip faster than a board (asleep at its REPL): never sooner than a board
    (None, 20.0, 20.0),  # a unit that does not tell its time: the stretched deadline
    (0.0, 20.0, 20.0),  # one whose clock stopped (the emulator hung): the same
])
def test_listening_to_a_silent_unit_ends_on_its_own_clock(monkeypatch, rate, scale, ends_at):
    q = _QuietUnit(rate)
    monkeypatch.setattr(link, "time", type("FakeTime", (), {"monotonic": staticmethod(lambda: q.wall)}))
    u = link.Link.__new__(link.Link)
    u.ser, u.port, u._buf, u.scale = q, "fake", b"", scale
    u.status = u.identity = None
    u.events = []
    u.unit_clock = q.clock if rate is not None else None
    assert u.listen(1.0) is None
    assert ends_at <= q.wall <= ends_at + 0.11, q.wall


def test_listen_is_read_only_and_sees_the_application(vu):
    _ready(vu)
    to_idle(vu.ctl)
    with link.Link.open(vu.port) as u:
        st = u.listen(3)
        assert st is not None and st.state == "IDLE"
        assert not u.in_repl
    assert vu.ctl.eval("app.s.state") == 0  # main.py still runs: nothing interrupted it


def test_bulk_transfer_round_trip_and_hashes(vu):
    data = os.urandom(50_000) + b"\x04\x03\x01\r\n>" * 100  # REPL control bytes in the payload
    seen = []
    with link.Link.open(vu.port) as u:
        u.enter()
        u.write_file("/blob.bin", data, progress=seen.append)
        assert seen[-1] == len(data)
        back = u.read_file("/blob.bin")
        assert back == data
        assert u.read_file("/blob.bin", offset=49_990) == data[49_990:]
        import hashlib

        h = u.sha256(["/blob.bin", "/missing"])
        assert h == {"/blob.bin": hashlib.sha256(data).hexdigest(), "/missing": None}
        names = {n: (size, d) for n, size, d in u.listdir("/")}
        assert names["blob.bin"] == (len(data), False) and names["log"][1] is True
        assert "blob.bin.part" not in names  # written to .part, then renamed
        u.remove("/blob.bin")
        assert "blob.bin" not in [n for n, _s, _d in u.listdir("/")]
        with pytest.raises(IontoError) as e:
            u.read_file("/missing")
        assert e.value.code == EXIT_UNIT and "/missing" in e.value.message
        # The unit's own errors come back as one line.
        with pytest.raises(IontoError) as e:
            u.exec("1/0")
        assert "ZeroDivisionError" in e.value.message
        assert u.eval("1 + 2") == 3
    # Leaving soft-rebooted the unit: the application runs again.
    with link.Link.open(vu.port) as u:
        assert u.listen(5) is not None


def test_hostcmd_info_reports_identity_integrity_storage(vu):
    with link.Link.open(vu.port) as u:
        info = u.hostcmd("info")
    assert info["version"] == firmware_build.version()
    assert info["integrity"][0] is True
    assert len(info["serial"]) == 16 and info["serial"] == (vu.state_dir / "serial").read_text().strip()
    assert info["fs"]["total"] > info["fs"]["free"] > 0
    assert info["config"]["source"] in ("defaults", "config.json")


def test_clock_set_is_logged_and_marks_the_rtc_valid(vu):
    with link.Link.open(vu.port) as u:
        r = u.hostcmd("clock_set", 1_800_000_000)
        assert r["new"] >= 1_800_000_000
        ev = u.read_file("/log/events.log")
    import records

    recs = records.read(ev)
    clock = [r for r in recs if r["type"] == "event" and r["code"] == 5]
    assert clock and clock[-1]["b"] == 1_800_000_000
    assert 1_609_459_200 <= clock[-1]["a"] < 1_700_000_000  # the old (unset, 2021) time, not the new
    assert recs[-1]["rtc_valid"]


def test_refuses_while_treating_without_sending_a_byte(vu):
    # VBUS sense low, as behind a USB isolator: the USB interlock (tested with the firmware)
    # would otherwise refuse START while a host is attached.
    _ready(vu)
    to_idle(vu.ctl)
    vu.ctl.usb(host_present=False)
    press(vu.ctl, "START", "START")
    wait_for(vu.ctl, "app.s.state in (3, 4)", timeout=60)
    with paced(vu.ctl):  # 10x while the host works: the treatment is still running after
        before = vu.ctl.eval("app.ticks")
        sent = bytes_received(vu.ctl)
        with pytest.raises(IontoError) as e:
            with link.Link.open(vu.port) as u:
                u.enter()
        assert e.value.code == EXIT_TREATING and "treatment is running" in e.value.message
        assert bytes_received(vu.ctl) == sent  # not one byte reached the unit
        assert vu.ctl.eval("app.ticks") > before and vu.ctl.eval("app.s.state") in (3, 4)  # carried on
    press(vu.ctl, "STOP")
    wait_for(vu.ctl, "app.s.state == 11", timeout=60)  # STOPPED: ramped down, output off
    press(vu.ctl, "STOP")  # back to IDLE for whatever comes next
    vu.ctl.usb(host_present=True)


def _ready(vu):
    vu.wait_ready()  # the control channel answers again after a restart
    app_ready(vu.ctl)


def _boots(vu):
    import records

    _ready(vu)
    with link.Link.open(vu.port) as u:
        recs = records.read(u.read_file("/log/events.log"))
    return [r["text"] for r in recs if r["type"] == "text" and r["code"] == 1]


def test_leaving_after_a_treatment_is_one_clean_restart_logged_as_a_host_session(vu):
    # A host session first, so the boot before is one after a host session whatever ran before.
    _ready(vu)
    armed, restarts = vu.ctl.eval("_b.wdt is not None"), boots(vu.ctl)
    _boots(vu)
    if armed:
        wait_restart(vu.ctl, restarts)
    _ready(vu)
    to_idle(vu.ctl)
    # After a treatment the watchdog is armed and cannot be stopped.
    vu.ctl.usb(host_present=False)
    run_treatment(vu.ctl, treat_s=1)
    press(vu.ctl, "STOP")  # STOPPED -> IDLE
    vu.ctl.usb(host_present=True)
    assert vu.ctl.eval("_b.wdt is not None") is True
    restarts = boots(vu.ctl)
    before = _boots(vu)  # this session itself ends with a restart: count from after it
    wait_restart(vu.ctl, restarts)
    _ready(vu)
    wait_virtual_s(vu.ctl, 3)  # a watchdog (1 s) would have bitten by now
    n0 = len(_boots(vu))
    _ready(vu)
    wait_virtual_s(vu.ctl, 3)
    after = _boots(vu)
    _ready(vu)
    assert len(after) == n0 + 1  # one restart per host session, no watchdog bite after it
    assert "after a host session" in after[-1] and "after a host session" in before[-1]
    assert vu.ctl.eval("_b.wdt is None") is True  # the hard reset disarmed it
    assert vu.ctl.eval("app.s.selftest_ok") is True, vu.ctl.eval("app.selftest_text")


def test_port_errors_are_one_line_with_their_codes(vu, tmp_path, capsys):
    with pytest.raises(IontoError) as e:
        link.Link.open(str(tmp_path / "ttyNOPE"))
    assert e.value.code == EXIT_NO_DEVICE
    holder = serial.Serial(vu.port, 115200, exclusive=True)
    try:
        with pytest.raises(IontoError) as e:
            link.Link.open(vu.port)
        assert e.value.code == EXIT_BUSY and "busy" in e.value.message
    finally:
        holder.close()


def test_permission_denied_says_what_to_do(vu, monkeypatch, capsys):
    # Tests run as root, where every port is accessible: stand in for a user outside dialout.
    monkeypatch.setattr(link.os, "access", lambda path, mode: False)
    rc = ionto(["status", "--port", vu.port])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_BUSY and len(err) == 1
    assert "permission denied on %s" % vu.port in err[0] and "dialout" in err[0]


def test_devices_lists_the_virtual_unit_with_serial_and_version(vu, capsys):
    rc = ionto(["devices", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    mine = [d for d in out if d["port"] == vu.port]
    assert mine and mine[0]["kind"] == "virtual"
    assert mine[0]["serial"] == (vu.state_dir / "serial").read_text().strip()
    assert mine[0]["version"] == firmware_build.version() and mine[0]["state"] in link.IDLE_STATES


def test_resolve_port_none_and_several(vu, bundle, monkeypatch, tmp_path, capsys):
    assert link.resolve_port() == vu.port  # the only unit
    assert link.resolve_port("/dev/ttyX") == "/dev/ttyX"
    monkeypatch.setenv("IONTO_PORT", "/dev/ttyY")
    assert link.resolve_port() == "/dev/ttyY"
    monkeypatch.delenv("IONTO_PORT")
    with VirtualUnit(seed_from=bundle, accel=0) as other:
        with pytest.raises(IontoError) as e:
            link.resolve_port()
        assert e.value.code == EXIT_AMBIGUOUS and other.port in e.value.message
    monkeypatch.setenv("IONTO_SIM_REGISTRY", str(tmp_path / "empty"))
    with pytest.raises(IontoError) as e:
        link.resolve_port()
    assert e.value.code == EXIT_NO_DEVICE
    rc = ionto(["devices"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == EXIT_NO_DEVICE and len(err) == 1 and err[0].startswith("ionto devices: error: no unit found")


def test_read_file_detects_a_corrupted_transfer(vu, monkeypatch):
    real = zlib.crc32
    monkeypatch.setattr(link.zlib, "crc32", lambda b, *a: real(b, *a) ^ 1)  # as if a byte flipped
    with link.Link.open(vu.port) as u:
        u.enter()
        with pytest.raises(IontoError) as e:
            u.read_file("/version.py")
    assert e.value.code == EXIT_UNIT and "CRC32" in e.value.message
