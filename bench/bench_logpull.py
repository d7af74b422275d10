"""Log pull throughput, `ionto logs pull` (link.read_file: base64 blocks, one
exec per file, CRC32 checked) against `mpremote connect PORT fs cp :/log/sN.trc DIR` of the same
trace files (mpremote reads one byte per call from a unit). Goal: ratio >= 3.

One virtual unit (accel 0) gets a few 40-minute sessions of trace written on its flash by the
firmware's own logstore.Log (the running main.py's `log`, through the test backdoor), which is
quicker than treating for real and gives the same files. Both tools then copy them over the
unit's pseudo-terminal; each ratio is measured within this one run.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import _mpy

_SESSIONS = 4
_MINUTES = 40

# Runs in the unit's __main__, where main.py left `app` and `log`: whole sessions through
# logstore's own begin/sample/end/flush, with the output off (no current flows).
_MAKE = r"""
s = app.s
for _k in range(%d):
    log.begin(s.preset_idx, s.preset, s.target_ua)
    log.started = True
    for _i in range(%d):
        log.sample(15000, 14950 + (_i %% 100), 30000 + (_i %% 500), 2000 + (_i %% 50), _i // 1200, 4)
    log.progress(_i * 15000, _i)
    log.end(3, _i * 15000, _i)
    log.flush()
"""


def _ready(c, timeout=60.0):
    from ionto.simctl import SimError

    deadline = time.monotonic() + timeout
    while True:
        try:
            if c.eval("app is not None and app.ticks > 50 and app.s.state == 0") is True:
                return
        except SimError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the virtual unit's application did not come up")
        time.sleep(0.05)


def run(quick=None):
    # No quick variant: the whole figure takes a few seconds, and smaller files would let
    # per-command start-up costs stand in for the transfer rate.
    sessions, minutes = _SESSIONS, _MINUTES
    sys.path.insert(0, str(_mpy.ROOT / "host_tools"))
    from ionto import cli, firmware_build, link
    from ionto.simctl import VirtualUnit

    mpremote = str(Path(sys.executable).with_name("mpremote"))
    out = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        firmware_build.build(d / "fw")
        with VirtualUnit(seed_from=d / "fw", accel=0) as vu:
            c = vu.ctl
            _ready(c)
            _mpy.say("logpull: writing %d sessions of %d min of trace on the virtual unit" % (sessions, minutes))
            c.exec(_MAKE % (sessions, minutes * 60))
            sizes = {n: sz for n, sz, _d in (tuple(x) for x in c.eval(
                "[(n, __import__('os').stat('/log/' + n)[6], 0) for n in __import__('os').listdir('/log')]"))}
            trc = sorted(n for n in sizes if n.endswith(".trc"))
            trc_bytes = sum(sizes[n] for n in trc)
            pulled = sum(sz for n, sz in sizes.items() if n.endswith((".trc", ".sum")) or n.startswith("events."))

            # 1. `ionto logs pull` into a fresh archive: everything it fetches, end to end
            # (REPL entry, listing, transfer, parsing, SQLite, acknowledgement).
            _mpy.say("logpull: ionto logs pull (%d bytes)" % pulled)
            t0 = time.monotonic()
            rc = cli.main(["logs", "pull", "--port", vu.port, "--archive", str(d / "a.sqlite")])
            t_pull = time.monotonic() - t0
            if rc != 0:
                raise RuntimeError("ionto logs pull exited %d" % rc)
            _ready(c)

            # 2. link.read_file alone over the trace files.
            with link.Link.open(vu.port) as u:
                u.enter()
                t0 = time.monotonic()
                got = sum(len(u.read_file("/log/" + n)) for n in trc)
                t_read = time.monotonic() - t0
            if got != trc_bytes:
                raise RuntimeError("read_file got %d of %d bytes" % (got, trc_bytes))
            _ready(c)

            # 3. mpremote fs cp of the same trace files, one command per file as a user would.
            _mpy.say("logpull: mpremote fs cp of %d trace files (%d bytes)" % (len(trc), trc_bytes))
            dest = d / "cp"
            dest.mkdir()
            t0 = time.monotonic()
            for n in trc:
                r = subprocess.run([mpremote, "connect", vu.port, "fs", "cp", ":/log/" + n, str(dest / n)],
                                   capture_output=True, text=True, timeout=900)
                if r.returncode != 0:
                    raise RuntimeError("mpremote fs cp failed: %s" % (r.stderr or r.stdout)[-300:])
            t_cp = time.monotonic() - t0
            copied = sum(os.path.getsize(dest / n) for n in trc)
            if copied != trc_bytes:
                raise RuntimeError("mpremote copied %d of %d bytes" % (copied, trc_bytes))

    pull_bps = pulled / t_pull
    read_bps = trc_bytes / t_read
    cp_bps = trc_bytes / t_cp
    out += [
        ("logpull_bytes", trc_bytes, "B of trace (%d sessions x %d min)" % (sessions, minutes)),
        ("logpull_ionto_logs_pull_Bps", int(pull_bps), "B/s (whole command: %d B in %.2f s)" % (pulled, t_pull)),
        ("logpull_link_read_file_Bps", int(read_bps), "B/s"),
        ("logpull_mpremote_fs_cp_Bps", int(cp_bps), "B/s"),
        ("logpull_ratio_pull_vs_fs_cp", round(pull_bps / cp_bps, 2), "x (goal >= 3)"),
        ("logpull_ratio_read_file_vs_fs_cp", round(read_bps / cp_bps, 2), "x"),
    ]
    return out


if __name__ == "__main__":
    for name, value, unit in run():
        print("%s: %s %s" % (name, value, unit))
