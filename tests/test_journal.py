"""The power-cut journal: a session's dose, treatment time and trace kept on the board's FRAM
while current flows (firmware/journal.py, fram.py; model hw/sim/fram_model.py), and the next
boot closing a session cut by power loss with what was kept (logstore._recover).

CPython: the FRAM driver over the machine mock's I2C bus and the model; the journal's slots and
torn writes; logstore recovering through it; no chip. MicroPython: the power-cut campaign over
treatments (tests/mpy/journal_powercut.py; its hundreds-of-cuts run is in `make bench`)."""
import os

import pytest

import flash
import fram_model
import journal as J
import logstore as LS
import machine
import pins
import records as R
import session as S
from fram import FRAM

from helpers import FakeSession


@pytest.fixture
def chip():
    """The FRAM model on I2C0 and the firmware's driver for it (detached afterwards)."""
    model = fram_model.FRAM()
    bus = machine.sim_i2c_bus(pins.I2C_ID)
    bus.attach(pins.FRAM_ADDR, model)
    i2c = machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA), freq=pins.I2C_FREQ)
    yield model, FRAM(i2c, pins.FRAM_ADDR)
    bus.detach(pins.FRAM_ADDR)


def _ring(values):
    r = bytearray(10 * len(values))
    for i, v in enumerate(values):
        r[i * 10:(i + 1) * 10] = bytes([v & 0xFF]) * 10
    return r


def test_driver_reads_back_what_it_wrote_and_the_model_persists(tmp_path):
    path = str(tmp_path / "j.fram")
    model = fram_model.FRAM(path)
    bus = machine.sim_i2c_bus(pins.I2C_ID)
    bus.attach(pins.FRAM_ADDR, model)
    try:
        f = FRAM(machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA)), pins.FRAM_ADDR)
        assert f.probe()
        f.write(0x7FFE, b"abcd")  # wraps round the end of the 32 KiB array, as the chip does
        buf = bytearray(4)
        f.read_into(0x7FFE, buf)
        assert buf == b"abcd" and model.mem[:2] == b"cd"
        model.close()
        again = fram_model.FRAM(path)  # non-volatile: a new process finds the bytes
        assert again.mem[0x7FFE:] == b"ab" and again.mem[:2] == b"cd"
        again.close()
    finally:
        bus.detach(pins.FRAM_ADDR)


def test_checkpoints_alternate_and_the_newest_whole_one_wins(chip):
    model, dev = chip
    j = J.Journal(dev)
    assert j.ok and j.open(7)
    assert j.checkpoint(7) == (0, 0, 0)
    ring = _ring(range(5))
    for sec in range(5):
        j.put(sec, ring, sec * 10, 1000 * (sec + 1), sec + 1)
    assert j.checkpoint(7) == (5, 5000, 5)
    assert j.checkpoint(6) is None  # another session's numbers never match
    buf = bytearray(50)
    j.read(0, buf)
    assert buf == ring
    # The next checkpoint write is cut after a few bytes: its CRC fails, the one before stands.
    model.power.arm(2, seed=3)  # the sample write goes through, the checkpoint is torn
    with pytest.raises(flash.PowerCut):
        j.put(5, _ring([9]), 0, 6000, 6)
    model.power = flash.Power()
    assert j.checkpoint(7) == (5, 5000, 5)


def test_a_missing_chip_means_no_journal_and_logging_as_before(tmp_path):
    bus = machine.sim_i2c_bus(pins.I2C_ID)
    bus.detach(pins.FRAM_ADDR)
    dev = FRAM(machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA)), pins.FRAM_ADDR)
    j = J.Journal(dev)
    assert not j.ok and not j.open(1) and j.checkpoint(1) is None
    j.put(0, bytearray(10), 0, 1, 1)  # nothing to write to: quietly nothing


class _Sup:
    dose_uas = 0


class _Session(FakeSession):
    def __init__(self):
        super().__init__()
        self.set_ua = self.actual_ua = 15000
        self.load_ohm = 4000
        self.polarity = 0
        self.state = S.TREAT
        self.sup = _Sup()


def _recs(path):
    st = R.Stats()
    out = R.read(open(path, "rb").read(), st) if os.path.exists(path) else []
    assert st.bad == 0
    return out


def test_a_treatment_cut_by_power_loss_keeps_its_dose_time_and_trace(tmp_path, chip):
    _model, dev = chip
    root = str(tmp_path / "log")
    lg = LS.Log(root, journal=J.Journal(dev))
    lg.open("power on")
    s = _Session()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    lg.on_session_event(S.EV_START, 0, 15000, s)
    for sec in range(600):  # 10 minutes at 15 mA, nothing written to flash meanwhile
        s.sup.dose_uas += 15000
        s.treat_ms += 1000
        s.actual_ua = 15000 + sec % 7
        lg.each_second(s, 20000 + sec)
        assert lg.service(True) is False
    assert not os.path.exists(os.path.join(root, "s000001.trc"))
    # The power goes. The next boot closes the session with what the FRAM kept.
    lg2 = LS.Log(root, journal=J.Journal(dev))
    lg2.open("power on")
    end = _recs(os.path.join(root, "s000001.sum"))[-1]
    assert (end["type"], end["reason"]) == ("end", LS.END_POWER_LOST)
    assert (end["dose_uas"], end["treat_s"], end["samples"]) == (600 * 15000, 600, 600)
    samples = [x for r in _recs(os.path.join(root, "s000001.trc")) if r["type"] == "samples" for x in r["samples"]]
    assert [x[1] for x in samples] == [15000 + sec % 7 for sec in range(600)]
    assert [x[2] for x in samples] == [20000 + sec for sec in range(600)]
    # A third boot (the recovery itself was not cut) changes nothing.
    trc = _recs(os.path.join(root, "s000001.trc"))
    LS.Log(root, journal=J.Journal(dev)).open("power on")
    assert _recs(os.path.join(root, "s000001.sum"))[-1] == end
    assert _recs(os.path.join(root, "s000001.trc")) == trc


def test_recovery_adds_only_the_seconds_not_already_on_flash(tmp_path, chip):
    # Samples flushed while the output was off (CONFIRM) are on flash; the journal holds them
    # too. The recovery appends the rest, once, in order.
    _model, dev = chip
    root = str(tmp_path / "log")
    lg = LS.Log(root, journal=J.Journal(dev))
    lg.open("power on")
    s = _Session()
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, s)
    for sec in range(3):
        s.state = S.CONFIRM
        s.actual_ua = sec
        lg.each_second(s, 0)
        lg.service(False)
    assert os.path.exists(os.path.join(root, "s000001.trc"))
    lg.on_session_event(S.EV_START, 0, 15000, s)
    s.state = S.TREAT
    for sec in range(3, 50):
        s.actual_ua = sec
        s.sup.dose_uas += 10
        s.treat_ms += 1000
        lg.each_second(s, 0)
    LS.Log(root, journal=J.Journal(dev)).open("power on")
    samples = [x for r in _recs(os.path.join(root, "s000001.trc")) if r["type"] == "samples" for x in r["samples"]]
    assert [x[1] for x in samples] == list(range(50))
    end = _recs(os.path.join(root, "s000001.sum"))[-1]
    assert (end["samples"], end["dose_uas"], end["treat_s"]) == (50, 470, 47)


def test_power_cut_campaign_over_treatments_quick(mpy, tmp_path):
    # 40 cuts at random writes of the flash or the FRAM (make bench runs 300): every record
    # whole or absent, every cut session closed at the next boot with at most 10 s of dose and
    # time and 60 s of trace lost, and no flash write while current flowed.
    r = mpy("import journal_powercut; journal_powercut.run(%r, 40, 7)" % str(tmp_path / "j.img"), timeout=300)
    line = [ln for ln in r.stdout.splitlines() if ln.startswith("OK journal")][-1]
    f = dict(kv.split("=") for kv in line.split()[2:])
    assert int(f["cuts"]) == 40 and int(f["checked"]) >= 20
    assert int(f["dose_lost_max_s"]) <= 10 and int(f["treat_lost_max_s"]) <= 10
    assert int(f["trace_lost_max_s"]) <= 60
    assert int(f["flash_writes_while_on"]) == 0


def test_a_transfer_longer_than_the_i2c_timeout_is_cut_as_on_rp2(chip):
    # rp2 gives a whole transfer I2C_TIMEOUT_US (1 ms, ~43 bytes at 400 kHz): the journal's
    # writes fit, its reads go in READ_MAX pieces; a longer write stores only what went out.
    model, _dev = chip
    i2c = machine.I2C(pins.I2C_ID, scl=machine.Pin(pins.I2C_SCL), sda=machine.Pin(pins.I2C_SDA),
                      freq=pins.I2C_FREQ, timeout=pins.I2C_TIMEOUT_US)
    f = FRAM(i2c, pins.FRAM_ADDR)
    with pytest.raises(OSError) as e:
        f.write(0x1000, b"\x55" * 100)
    assert e.value.args[0] == 110  # ETIMEDOUT
    stored = model.mem[0x1000:0x1000 + 100]
    assert 30 < stored.count(0x55) < 45 and stored[-1] == 0
    with pytest.raises(OSError):
        f.read_into(0x1000, bytearray(100))
    j = J.Journal(f)
    buf = bytearray(100)
    j.read(0, buf)  # in pieces: fine
    f.write(0x2000, b"\x66" * (J._CK_LEN + 4))  # a checkpoint's size fits


def test_a_stale_checkpoint_of_the_same_session_number_is_never_used(tmp_path, chip):
    # The FRAM keeps an old session 1 (its flash since reformatted: numbers start again); the
    # power goes after the new session 1's summary but before its journal opened.
    _model, dev = chip
    old = J.Journal(dev)
    old.open(1)
    old.put(0, bytearray(10), 0, 999_000, 66)
    assert old.checkpoint(1) == (1, 999_000, 66)
    root = str(tmp_path / "log")
    j = J.Journal(dev)
    j.open = lambda n: False  # the cut: the summary made it, the journal's first write did not
    lg = LS.Log(root, journal=j)
    lg.open("power on")
    lg.on_session_event(S.EV_STATE, S.CONFIRM, S.IDLE, _Session())
    LS.Log(root, journal=J.Journal(dev)).open("power on")
    end = _recs(os.path.join(root, "s000001.sum"))[-1]
    assert (end["reason"], end["dose_uas"], end["treat_s"], end["samples"]) == (LS.END_POWER_LOST, 0, 0, 0)


@pytest.mark.slow
def test_power_cuts_during_real_treatments_on_the_firmware(tmp_path):
    # The firmware itself (App, session, supervisor) treating on the in-process virtual unit,
    # cut at random moments (make bench runs more): no flash write in any tick with the output
    # enabled, and each session closed at the next boot within the goals.
    import subprocess

    from conftest import FIRMWARE, MPY_TESTS, ROOT, SIM, micropython_exe

    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join([str(SIM), str(FIRMWARE), str(MPY_TESTS), ".frozen"])
    p = subprocess.run([micropython_exe(), str(MPY_TESTS / "fw_powercut.py"), str(tmp_path / "f.img"), "2", "3"],
                       capture_output=True, text=True, timeout=300, env=env, cwd=str(ROOT))
    assert p.returncode == 0, p.stdout + p.stderr
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("OK fwcut")][-1]
    f = dict(kv.split("=") for kv in line.split()[2:])
    assert f["cuts"] == "2" and f["flash_ops_with_output_on"] == "0"
    assert int(f["dose_lost_max_s"]) <= 10 and int(f["treat_lost_max_s"]) <= 10 and int(f["trace_lost_max_s"]) <= 60
