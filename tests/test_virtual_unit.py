"""The virtual unit end to end: `ionto sim` on a pty driven by the real mpremote 1.29.

One supervisor per module (VirtualUnit); each test leaves the unit's flash as it found it.
The control channel's eval/exec is the test-only backdoor into the unit.
"""
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mpremote.transport_serial import SerialTransport

from ionto.simctl import SimClient, SimError, VirtualUnit

from helpers import until

pytestmark = pytest.mark.slow

MPREMOTE = str(Path(sys.executable).with_name("mpremote"))
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"


def mpremote(port, *args, timeout=60):
    return subprocess.run([MPREMOTE, "connect", port, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def vu():
    with VirtualUnit(accel=0) as v:
        yield v


def put(vu, path, text):
    vu.ctl.exec("f = open(%r, 'w'); f.write(%r); f.close(); del f" % (path, text))


def rm(vu, *paths):
    for p in paths:
        vu.ctl.exec("import os\ntry:\n    os.remove(%r)\nexcept OSError:\n    pass" % p)


def wait_for(cond, timeout=10.0):
    return until(cond, "the unit's state", timeout)


def restart(vu):
    """Power-cycle the unit; wait until it answers (boot.py and main.py have started)."""
    vu.ctl.power_cycle()
    vu.wait_ready()


def test_exec_and_eval(vu):
    r = mpremote(vu.port, "exec", "print(1+1)")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "2"
    r = mpremote(vu.port, "eval", "[x * x for x in range(4)]")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0, 1, 4, 9]"


def test_exception_in_exec_reaches_mpremote(vu):
    r = mpremote(vu.port, "exec", "1/0")
    assert r.returncode == 1
    assert "ZeroDivisionError" in r.stdout + r.stderr
    # The traceback shows the user's code only, as a board's does.
    assert "repl.py" not in r.stdout + r.stderr


def test_fs_cp_both_ways_and_ls(vu, tmp_path):
    data = bytes(range(256)) * 8 + b"end\n"
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    r = mpremote(vu.port, "fs", "cp", str(src), ":blob.bin")
    assert r.returncode == 0, r.stderr
    r = mpremote(vu.port, "fs", "ls")
    assert r.returncode == 0, r.stderr
    assert any(line.split()[-1] == "blob.bin" and line.split()[0] == str(len(data)) for line in r.stdout.splitlines()[1:])
    back = tmp_path / "back.bin"
    r = mpremote(vu.port, "fs", "cp", ":blob.bin", str(back))
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == data
    # It is in the unit's LittleFS, not on the host.
    assert vu.ctl.eval("len(open('blob.bin', 'rb').read())") == len(data)
    assert data in vu.image.read_bytes()  # one LittleFS block of the image file
    assert not (vu.state_dir / "blob.bin").exists()
    r = mpremote(vu.port, "fs", "rm", ":blob.bin")
    assert r.returncode == 0, r.stderr
    assert "blob.bin" not in vu.ctl.eval("__import__('os').listdir('/')")


def test_soft_reset_from_raw_repl_runs_boot_py_not_main_py(vu):
    put(vu, "boot.py", "print('boot ran')\nbooted = True\n")
    put(vu, "main.py", "main_ran = True\n")
    t = SerialTransport(vu.port, timeout=10)
    try:
        t.enter_raw_repl(soft_reset=False)
        t.serial.write(b"\x04")  # Ctrl-D on an empty raw REPL: soft reboot
        # As mpremote's enter_raw_repl: read up to the banner, leave the ">" for exec.
        data = t.read_until(1, b"raw REPL; CTRL-B to exit\r\n", timeout=10)
        assert data == b">OK\r\nMPY: soft reboot\r\nboot ran\r\nraw REPL; CTRL-B to exit\r\n", data
        assert vu.ctl.eval("(globals().get('booted'), globals().get('main_ran'))") == [True, None]
        assert t.exec("print(booted)") == b"True\r\n"
        # Friendly REPL: Ctrl-D soft-reboots into boot.py and main.py.
        t.exit_raw_repl()
        t.read_until(1, b">>> ", timeout=10)
        t.serial.write(b"\x04")
        data = t.read_until(1, b">>> ", timeout=10)
        assert b"MPY: soft reboot\r\nboot ran\r\n" in data
        assert b"\nMicroPython v" in data
        assert vu.ctl.eval("globals().get('main_ran')") is True
        # The friendly REPL echoes, evaluates and prints results with CRLF.
        t.serial.write(b"6*7\r")
        assert t.read_until(1, b">>> ", timeout=10).endswith(b"6*7\r\n42\r\n>>> ")
        t.serial.write(b"for i in range(2):\r")
        t.read_until(1, b"... ", timeout=10)
        t.serial.write(b"  print(i)\r\r")
        assert t.read_until(1, b">>> ", timeout=10).endswith(b"0\r\n1\r\n>>> ")
    finally:
        t.close()
        rm(vu, "boot.py", "main.py")


def test_mpremote_default_soft_reset_clears_globals(vu):
    assert mpremote(vu.port, "exec", "leftover = 5").returncode == 0
    r = mpremote(vu.port, "exec", "print('leftover' in globals())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
    # `resume` skips the soft reset: globals survive.
    assert mpremote(vu.port, "exec", "kept = 1").returncode == 0
    r = mpremote(vu.port, "resume", "exec", "print(kept)")
    assert r.stdout.strip() == "1", r.stdout + r.stderr


def test_ctrl_c_interrupts_a_running_main_py(vu):
    put(vu, "main.py", "import time\nn = 0\nwhile True:\n    n += 1\n    time.sleep_ms(10)\n")
    try:
        restart(vu)
        a = vu.ctl.eval("n")
        assert wait_for(lambda: vu.ctl.eval("n") > a)  # main.py loops; the channel answers
        assert vu.ctl.state()["unit"]["state"] == "main"
        # `resume`: Ctrl-C and the raw REPL, no soft reset: main.py's globals are still there.
        r = mpremote(vu.port, "resume", "exec", "print('in', n > 0)")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "in True"
        assert vu.ctl.state()["unit"]["state"] == "repl"
        n = vu.ctl.eval("n")
        assert vu.ctl.eval("n") == n  # the loop is no longer running
        # Started again by a power cycle, mpremote's default connect (Ctrl-C, Ctrl-A, Ctrl-D) gets in.
        restart(vu)
        assert wait_for(lambda: (vu.ctl.eval("globals().get('n')") or 0) > 0)
        r = mpremote(vu.port, "exec", "print('in', 'n' in globals())")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "in False"
    finally:
        rm(vu, "main.py")


def test_control_channel_board_commands(vu):
    s = vu.ctl.state()
    assert s["ok"] and "true_ua" in s and "electrode_mv" in s
    assert s["unit"]["mounted"] is True and s["unit"]["reset_cause"] in (1, 3)
    assert vu.ctl.press("START")["ok"]
    f = vu.ctl.frame()
    assert len(f["hex"]) == 2048
    vu.ctl.fault("i2c_nack")
    assert "i2c_nack" in vu.ctl.state()["faults"]
    # The firmware sees it: the INA219 no longer acknowledges.
    r = mpremote(vu.port, "exec", "import machine\ntry:\n    machine.I2C(0).readfrom_mem(0x40, 0, 2)\nexcept OSError as e:\n    print('errno', e.errno)")
    assert r.stdout.strip() == "errno 5", r.stdout + r.stderr  # rp2 hardware I2C: EIO
    vu.ctl.clear_faults()
    assert vu.ctl.state()["faults"] == []
    with pytest.raises(SimError):
        vu.ctl.fault("no_such_fault")
    assert vu.ctl.accel(0)["accel"] == 0
    assert vu.ctl.eval("vclock.now_us()", scope="sim") > 0


def test_machine_reset_and_watchdog_restart_with_wdt_reset(vu):
    with pytest.raises(SimError, match="reset"):
        vu.ctl.exec("import machine\nmachine.reset()")
    vu.wait_ready()
    assert vu.ctl.eval("machine.reset_cause()", scope="sim") == 3
    assert vu.ctl.status()["last_exit"] == -signal.SIGUSR1
    # A main loop that feeds a watchdog; starving it resets the unit.
    put(vu, "main.py", "import machine, time\nw = machine.WDT(timeout=200)\nwhile True:\n    w.feed()\n    time.sleep_ms(20)\n")
    try:
        restart(vu)
        assert vu.ctl.eval("machine.reset_cause()", scope="sim") == 1
        boots = vu.ctl.status()["boots"]
        vu.ctl.wdt_starve()
        assert wait_for(lambda: vu.ctl.status()["boots"] > boots)
        vu.wait_ready()
        assert vu.ctl.status()["last_exit"] == -signal.SIGUSR1
        assert vu.ctl.eval("machine.reset_cause()", scope="sim") == 3
    finally:
        rm(vu, "main.py")
        restart(vu)  # stop the watchdog


def test_power_cut_during_writes_leaves_a_littlefs_that_mounts(vu):
    put(vu, "keep.txt", "precious\n")
    payload = "x" * 3000
    for at in (2, 5, 9):
        vu.ctl.power_cut(at=at, seed=at)
        with pytest.raises(SimError, match="reset"):
            vu.ctl.exec("for i in range(50):\n    f = open('log%%d.txt' %% (i %% 4), 'w'); f.write(%r); f.close()" % payload)
        vu.wait_ready()
        st = vu.ctl.status()
        assert st["last_exit"] == -signal.SIGUSR2
        u = vu.ctl.state()["unit"]
        assert u["mounted"] is True, u
        assert u["reset_cause"] == 1
        assert vu.ctl.eval("open('keep.txt').read()") == "precious\n"
        # Whatever survived of the interrupted writes is a whole file or none.
        for name in vu.ctl.eval("[n for n in __import__('os').listdir() if n.startswith('log')]"):
            assert vu.ctl.eval("len(open(%r).read())" % name) in (0, 3000)
    r = mpremote(vu.port, "fs", "ls")
    assert "keep.txt" in r.stdout
    rm(vu, "keep.txt", "log0.txt", "log1.txt", "log2.txt", "log3.txt")


def test_flash_image_survives_a_supervisor_restart(tmp_path):
    with VirtualUnit(state_dir=tmp_path, fresh=True) as v:
        r = mpremote(v.port, "exec", "f = open('persist.txt', 'w'); f.write('still here'); f.close()")
        assert r.returncode == 0, r.stderr
    with VirtualUnit(state_dir=tmp_path, fresh=False) as v:
        r = mpremote(v.port, "fs", "cat", ":persist.txt")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "still here"
        # A damaged image is not formatted: the unit says so and the REPL still works.
    img = tmp_path / "flash.img"
    raw = bytearray(img.read_bytes())
    raw[0:8192] = bytes(8192)  # both superblocks gone
    img.write_bytes(bytes(raw))
    with VirtualUnit(state_dir=tmp_path, fresh=False) as v:
        u = v.ctl.state()["unit"]
        assert u["mounted"] is False and u["mount_error"]
        r = mpremote(v.port, "exec", "print(6*7)")
        assert r.stdout.strip() == "42", r.stdout + r.stderr
    assert img.read_bytes()[:8192] == bytes(8192)  # left as it was, for inspection


def test_seed_from_directory_when_main_py_is_absent(tmp_path):
    fw = tmp_path / "fw"
    (fw / "lib").mkdir(parents=True)
    (fw / "main.py").write_text("import helper\nseeded = helper.VALUE\n")
    (fw / "lib" / "helper.py").write_text("VALUE = 7\n")
    with VirtualUnit(state_dir=tmp_path / "st", seed_from=fw) as v:
        assert v.ctl.eval("globals().get('seeded')") == 7
        assert sorted(v.ctl.eval("__import__('os').listdir('/')")) == ["lib", "main.py"]


def test_simclient_without_a_unit_fails_in_one_line(tmp_path):
    with pytest.raises(SimError, match="is `ionto sim` running"):
        SimClient(tmp_path).ping()
