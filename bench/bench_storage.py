"""Storage figures: what logging costs the flash and the control loop, what fits, and what a
power cut during a treatment loses.

Runs tests/mpy/storage_checks.py (blackout, capacity) under the unix port on a LittleFS image
over hw/sim/flash.py, which charges datasheet program/erase times to the virtual clock, and
tests/mpy/journal_powercut.py (power cuts at random writes of the flash or the FRAM journal
during treatments; the next boot closes each cut session with what was kept).
"""
import os
import re
import subprocess
import tempfile

from . import _mpy


def _check(call, module="storage_checks"):
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(_mpy.ROOT / p) for p in ("hw/sim", "firmware", "tests/mpy")) + ":.frozen"
    r = subprocess.run([_mpy.micropython(), "-c", "import %s; %s.%s" % (module, module, call)],
                       capture_output=True, text=True, timeout=600, env=env, cwd=str(_mpy.ROOT))
    line = [x for x in r.stdout.splitlines() if x.startswith("OK ")]
    if r.returncode != 0 or not line:
        raise RuntimeError("%s.%s failed: %s" % (module, call, (r.stderr or r.stdout)[-300:]))
    return [int(v) for _k, v in re.findall(r"(\w+)=(-?\d+)", line[-1])]


def run(quick=None):
    q = _mpy.quick(quick)
    minutes = 5 if q else 20
    out = []
    with tempfile.TemporaryDirectory() as d:
        _mpy.say("storage: blackout and bytes per session-minute (%d-minute trace)" % minutes)
        b = _check("blackout(%r, %d)" % (os.path.join(d, "b.img"), minutes))
        bw = _check("blackout(%r, %d, True)" % (os.path.join(d, "w.img"), minutes))
        # blackout() prints the CADENCE figures first, then OFF_ONLY (the policy in force).
        vals, wvals = b, bw
        out += [
            ("storage_bytes_per_session_min", vals[4], "B/min"),
            ("storage_blocks_erased_per_100_session_min", vals[5], "blocks/100min"),
            ("storage_blackout_while_treating_us", 0, "us (policy: no flash writes while the output is on)"),
            ("storage_blackout_output_off_typ_us", vals[3], "us"),
            ("storage_blackout_output_off_worst_us", wvals[3], "us"),
            ("storage_blackout_if_cadence_30s_typ_us", vals[0], "us"),
            ("storage_blackout_if_cadence_30s_worst_us", wvals[0], "us"),
        ]
        cuts = 20 if q else 300
        _mpy.say("storage: %d power cuts at random moments of treatments (FRAM journal)" % cuts)
        j = _check("run(%r, %d, 11)" % (os.path.join(d, "j.img"), cuts), "journal_powercut")
        # cuts, sessions, checked, boot_cuts, dose_s, treat_s, trace_s, dose_uas, flash_on, bus_us
        out += [
            ("storage_power_cuts_tested", j[0], "cuts (sessions closed at the next boot: %d)" % j[2]),
            ("storage_trace_lost_by_power_cut_max_s", j[6], "s (goal <= 60)"),
            ("storage_dose_lost_by_power_cut_max_s", j[4], "s of treatment current (goal <= 10)"),
            ("storage_dose_lost_by_power_cut_max_mamin", round(j[7] / 60000.0, 3), "mA.min (at up to 20 mA)"),
            ("storage_treat_time_lost_by_power_cut_max_s", j[5], "s (goal <= 10)"),
            ("storage_flash_writes_while_treating", j[8], "writes (must be 0)"),
            ("storage_journal_i2c_us_per_s", j[9], "us of I2C bus time a second at 400 kHz (2 writes)"),
        ]
        fw = 1 if q else 12
        _mpy.say("storage: %d power cuts during treatments by the firmware itself" % fw)
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join(str(_mpy.ROOT / p) for p in ("hw/sim", "firmware", "tests/mpy")) + ":.frozen"
        # Twelve boots of the firmware on a simulated board in one interpreter: the simulator's
        # own structures (the plant's charge history) come on top of the unit's heap, so this
        # run gets room; the unit's heap is measured on the chip (bench_rp2).
        r = subprocess.run([_mpy.micropython(), "-X", "heapsize=4M", str(_mpy.ROOT / "tests/mpy/fw_powercut.py"),
                            os.path.join(d, "f.img"),
                            str(fw), "5"], capture_output=True, text=True, timeout=1200, env=env, cwd=str(_mpy.ROOT))
        line = [x for x in r.stdout.splitlines() if x.startswith("OK fwcut")]
        if r.returncode != 0 or not line:
            raise RuntimeError("fw_powercut failed: %s" % (r.stderr or r.stdout)[-300:])
        v = dict(kv.split("=") for kv in line[-1].split()[2:])
        out += [
            ("storage_firmware_power_cuts_tested", int(v["cuts"]), "cuts during treatments by the firmware"),
            ("storage_firmware_trace_lost_by_power_cut_max_s", int(v["trace_lost_max_s"]), "s"),
            ("storage_firmware_dose_lost_by_power_cut_max_s", int(v["dose_lost_max_s"]), "s of treatment current"),
            ("storage_flash_ops_with_output_on", int(v["flash_ops_with_output_on"]), "writes or erases (must be 0)"),
        ]
        if not q:
            _mpy.say("storage: sessions that fit before pruning (40-minute sessions)")
            c = _check("capacity(%r, 40)" % os.path.join(d, "c.img"))
            out.append(("storage_sessions_before_pruning_40min", c[0], "sessions"))
    return out
