"""Inputs that used to end in an internal error (or worse) get one line with a documented exit
code (ionto/errors.py), as real `ionto` processes: a read-only archive, a start date at the end
of the calendar, a configuration nested 100 000 levels deep, a date of birth as a course label,
`--port` on something that is not a unit, a second `ionto sim` on a state folder in use, and a
plot format the file name asks for. Plus the words the user reads, said one way."""
import json
import os
import shutil
import signal
import subprocess
import sys
import types

import pytest

from ionto import archive, config_cmd, link, logplot, status_cmd
from ionto.errors import EXIT_BUSY, EXIT_UNIT, EXIT_USAGE
from ionto.simctl import SimClient, VirtualUnit, _repo_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECKLIST = "pregnancy=no,epilepsy=no,metal_implants=no,pacemaker=no"


def ionto(*args, timeout=60, **kw):
    return subprocess.run([sys.executable, "-m", "ionto.cli"] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, env=_repo_env(), **kw)


def one_line(r, code):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == code, r.stderr
    assert len(lines) == 1 and "Traceback" not in r.stderr and "please report" not in r.stderr, r.stderr
    return lines[0]


# --- the archive ---------------------------------------------------------------------------------
@pytest.fixture
def readonly_archive(tmp_path):
    """An archive the writing user cannot write: mode 0444 for a normal user; for root (who
    writes anything mode allows) the file is made immutable (chattr +i)."""
    path = tmp_path / "archive.sqlite"
    archive.connect(path).close()
    if os.geteuid() != 0:
        path.chmod(0o444)
        tmp_path.chmod(0o555)
        yield path
        tmp_path.chmod(0o755)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        pytest.skip("running as root on a filesystem without immutable files: no read-only archive to be had")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)])


def test_a_read_only_archive_is_one_line_before_the_unit_is_touched(readonly_archive, tmp_path):
    # No unit at --port at all: the archive is refused first, so nothing would have been sent.
    r = ionto("logs", "pull", "--archive", readonly_archive, "--port", tmp_path / "ttyNONE")
    line = one_line(r, EXIT_USAGE)
    assert "cannot be written" in line and str(readonly_archive) in line and "--archive" in line
    r = ionto("course", "new", "C-0042", "--start", "2026-12-01", "--site", "hands_feet", "--checklist", CHECKLIST,
              "--archive", readonly_archive)
    assert "cannot be written" in one_line(r, EXIT_USAGE)
    # Reading it still works.
    r = ionto("logs", "list", "--archive", readonly_archive)
    assert r.returncode == 0 and "no sessions archived" in r.stdout, r.stderr


# --- dates, labels, files -------------------------------------------------------------------------
def test_a_start_date_at_the_end_of_the_calendar():
    line = one_line(ionto("schedule", "--start", "9999-12-28"), EXIT_USAGE)
    assert "9999-12-28" in line and "too far" in line
    line = one_line(ionto("course", "new", "C-0042", "--start", "9999-12-28", "--site", "hands_feet", "--checklist",
                          CHECKLIST, "--archive", os.devnull + ".none"), EXIT_USAGE)
    assert "too far" in line


@pytest.mark.parametrize("label", ["1980-05-04", "04.05.1980", "4-5-1980", "19800504", "1980_05_04"])
def test_a_date_of_birth_is_not_a_course_label(label, tmp_path):
    r = ionto("course", "new", label, "--start", "2026-12-01", "--site", "hands_feet", "--checklist", CHECKLIST,
              "--archive", tmp_path / "a.sqlite")
    assert "reads as a date" in one_line(r, EXIT_USAGE)


def test_clinic_codes_with_digits_are_still_labels(tmp_path):
    for label in ("C-0042", "HH-2026-117", "P12"):
        r = ionto("course", "new", label, "--start", "2026-12-01", "--site", "hands_feet", "--checklist", CHECKLIST,
                  "--archive", tmp_path / "a.sqlite")
        assert r.returncode == 0, r.stderr


def test_a_configuration_nested_100000_levels_deep(tmp_path):
    for text in ("[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000):
        p = tmp_path / "deep.json"
        p.write_text(text)
        for action in (["validate", p], ["push", p, "--yes", "--port", tmp_path / "ttyNONE"]):
            line = one_line(ionto("config", *action), EXIT_USAGE)
            assert "nested too deeply" in line and "deep.json" in line


# --- a port that is not a unit ---------------------------------------------------------------------
def test_port_on_something_that_is_not_a_unit_prints_nothing_on_stdout(tmp_path):
    # A terminal where nothing answers: no status line, no REPL.
    master, slave = os.openpty()
    try:
        r = ionto("status", "--listen", "0.5", "--port", os.ttyname(slave))
    finally:
        os.close(master)
        os.close(slave)
    line = one_line(r, EXIT_UNIT)
    assert r.stdout == "", r.stdout  # no stray b'' from the transport
    assert "answers like a unit" in line and "ionto devices" in line


# --- a second virtual unit on one state folder --------------------------------------------------------
def test_a_second_sim_on_the_same_state_folder_is_refused(fw_bundle):
    with VirtualUnit(seed_from=fw_bundle, accel=0) as vu:
        port = vu.port
        r = ionto("sim", "--state-dir", vu.state_dir, "--no-seed", "--quiet")
        line = one_line(r, EXIT_BUSY)
        assert "in use by another `ionto sim`" in line and port in line and "--state-dir" in line
        # The first unit keeps its port, control socket and flash.
        assert (vu.state_dir / "port").read_text().strip() == port and os.path.exists(port)
        assert (vu.state_dir / "control.sock").exists()
        assert SimClient(vu.state_dir).ping()["ok"]
        with link.Link.open(port) as u:
            assert u.listen(5, min_st=1) is not None


# --- plots ----------------------------------------------------------------------------------------------
@pytest.fixture
def plot_archive(tmp_path):
    db = archive.connect(tmp_path / "a.sqlite")
    db.execute("INSERT INTO sessions(serial, session, preset_name, complete, rtc_valid, start_t, boot) "
               "VALUES ('E661', 1, 'palms', 1, 1, 1764000000, 1)")
    db.executemany("INSERT INTO samples(serial, session, t_s, set_ua, actual_ua, mv, load_ohm, state, polarity) "
                   "VALUES ('E661', 1, ?, 8000, 7900, 24000, 3000, 4, 0)", [(t,) for t in range(30)])
    db.commit()
    db.close()
    return tmp_path / "a.sqlite"


@pytest.mark.parametrize("name, magic", [("s.pdf", b"%PDF-"), ("s.svg", b"<?xml"), ("s.png", b"\x89PNG"),
                                         ("S.PDF", b"%PDF-")])
def test_plot_writes_the_format_its_name_asks_for(plot_archive, tmp_path, name, magic):
    out = tmp_path / name
    r = ionto("logs", "plot", "1", "-o", out, "--archive", plot_archive)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(magic)


def test_plot_refuses_a_name_without_a_format(plot_archive, tmp_path):
    for name in ("s.xyz", "s"):
        r = ionto("logs", "plot", "1", "-o", tmp_path / name, "--archive", plot_archive)
        assert ".png" in one_line(r, EXIT_USAGE) and not (tmp_path / name).exists()
    assert logplot.format_for("x.PDF") == "pdf" and logplot.format_for("x.doc") is None


# --- one vocabulary ---------------------------------------------------------------------------------
def test_serial_numbers_in_capitals_wherever_they_come_from():
    assert link.parse_line("@ID 0102abcd00ff1020 0.1.0\n")[1]["serial"] == "0102ABCD00FF1020"


def test_states_are_written_with_spaces_and_idle_is_what_the_display_shows():
    st = link.Status("RAMP_UP 1190 15000 8000 7990 0 0 -1 24000 123 7")

    class Fake(link.Link):
        def __init__(self):
            self.port = "/dev/ttyX"

        def listen(self, seconds=1.5, want=("ST",), min_st=2):
            return st

    with pytest.raises(Exception) as e:
        Fake().check_idle()
    assert "RAMP UP" in e.value.message and "RAMP_UP" not in e.value.message
    assert "READY" in e.value.message and "IDLE on its display" not in e.value.message


def test_status_says_firmware_once():
    d = {"port": "/dev/ttyX", "treating": False, "listened": True, "state": "IDLE", "status": None,
         "info": {"serial": "E661", "integrity": [True, "firmware 0.1.0 intact (26 files)"]}, "config": {},
         "clock": {"rtc_valid": True, "unit_time": 1764000000, "offset_s": 0}}
    text = status_cmd.render(d)
    assert "firmware   0.1.0 intact (26 files)" in text and "firmware firmware" not in text


def test_one_word_for_the_dose_unit():
    # mA.min: what the unit's display shows (its font is ASCII) and every host command prints.
    assert "DOSE CAP mA.min" in config_cmd.presets_table({"presets": []})
    bad = []
    for d in ("host_tools/ionto", "docs"):
        for name in os.listdir(os.path.join(ROOT, d)):
            if name.endswith((".py", ".md")):
                text = open(os.path.join(ROOT, d, name), encoding="utf-8").read()
                bad += ["%s/%s: %s" % (d, name, w) for w in ("mA*min", "mA·min", "mA min") if w in text]
    with open(os.path.join(ROOT, "firmware", "config.py"), encoding="utf-8") as f:
        assert '" mA*min' not in f.read()  # the unit's validation messages
    assert not bad, bad


def test_the_displayed_dose_is_rounded_not_truncated():
    import limits
    import session

    per = limits.UAS_PER_MAMIN
    for uas, shown in ((per * 149 + per * 6 // 10, 150), (per * 149 + per * 4 // 10, 149), (per // 2, 1), (0, 0)):
        assert session.Session.dose_mamin(types.SimpleNamespace(dose_uas=uas)) == shown


def test_a_state_reads_as_the_display_writes_it_in_every_output():
    kind, st = link.parse_line("@ST RAMP_UP 1190 15000 8000 7990 0 0 -1 24000 123 7\n")
    assert st.state == "RAMP UP" and st.as_dict()["state"] == "RAMP UP" and st.treating
