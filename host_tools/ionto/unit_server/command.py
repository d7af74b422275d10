"""`ionto sim`: serve the virtual unit on a pseudo-terminal (see ionto/unit_server/__init__.py).

    ionto sim [--state-dir .sim] [--scenario palms] [--accel 1] [--fresh] [--seed-from DIR | --no-seed]
"""
import argparse
import signal
import sys
from pathlib import Path

from ..shipped import FIRMWARE
from .server import UnitServer, UnitServerError
from .unit_process import PWRON_RESET


def add_arguments(p):
    p.add_argument("--state-dir", default=".sim", help="where the flash image, port and control socket live (.sim)")
    p.add_argument("--scenario", default="palms", help="patient scenario (hw/sim/scenarios; palms)")
    p.add_argument("--accel", type=float, default=1.0, help="virtual time per real time; 0 = as fast as possible (1)")
    p.add_argument("--fresh", action="store_true", help="start from a blank (erased) flash image")
    p.add_argument("--seed-from", metavar="DIR", help="copy DIR's files into the flash if /main.py is absent "
                   "(default: firmware/ with its manifest, built into STATE/firmware-bundle)")
    p.add_argument("--no-seed", action="store_true", help="never copy files into the flash")
    p.add_argument("--flash-worst-case", action="store_true", help="charge datasheet worst-case program/erase times")
    p.add_argument("--quiet", action="store_true", help="log restarts only to STATE/unit.log")
    p.add_argument("--stdin-lifeline", action="store_true",
                   help="stop when stdin closes (a parent that starts us holds its other end)")
    p.add_argument("--panel", action="store_true", help="also serve the front panel in a browser (ionto panel)")
    from ..panel import add_panel_arguments

    add_panel_arguments(p)


def run(args):
    from ..errors import EXIT_USAGE, IontoError

    try:
        return _run(args)
    except UnitServerError as e:  # a bad state folder or image: one line, exit 2
        raise IontoError(EXIT_USAGE, str(e))


def _run(args):
    seed = None
    if not args.no_seed:
        if args.seed_from:
            seed = Path(args.seed_from).resolve()
            if not seed.is_dir():
                raise UnitServerError("--seed-from %s: not a directory" % args.seed_from)
        elif (FIRMWARE / "main.py").exists():
            # The firmware as a deployment would put it on a board: files plus the manifest
            # the unit's self-test checks (a bare copy would fail it and refuse treatment).
            from .. import firmware_build

            seed = Path(args.state_dir).resolve() / "firmware-bundle"
            firmware_build.build(seed)
    server = UnitServer(args.state_dir, args.scenario, args.accel, args.fresh, seed, args.flash_worst_case, args.quiet)

    def _term(signum, frame):
        server.running = False

    server.lifeline = args.stdin_lifeline
    signal.signal(signal.SIGTERM, _term)
    signal.signal(signal.SIGHUP, _term)
    server.setup()
    try:
        server.spawn(PWRON_RESET)
        print(server.port, flush=True)
        if not args.quiet:
            sys.stderr.write("ionto sim: virtual unit on %s (mpremote connect %s); control socket %s; Ctrl-C stops\n"
                             % (server.port, server.port, server.sock_path))
        panel = None
        if args.panel:
            from ..panel import start_panel

            panel = start_panel(args, server.state, unplug_usb=True)
        try:
            server.serve()
        except KeyboardInterrupt:
            pass
        finally:
            if panel is not None:
                panel.stop(unit_going=True)
    finally:
        server.close()
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="ionto sim", description="Serve the virtual unit on a pseudo-terminal.")
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
