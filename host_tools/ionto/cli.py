"""The `ionto` command: one entry point, a subcommand per tool.

Each subcommand module provides add_arguments(parser) and run(args) -> exit code. Errors
are reported on one line, `ionto CMD: error: ...`, without a traceback, with the exit codes
of ionto/errors.py.
"""
import argparse
import sys

# name -> (module, one-line help). Other tools register here.
COMMANDS = {
    "sim": ("ionto.sim", "serve the virtual unit on a pseudo-terminal"),
    "pico": ("ionto.pico", "serve the emulated Pico (the unit's rp2 image on an emulated RP2040) on a pseudo-terminal"),
    "bench": ("ionto.bench_cmd", "measure loop period, jitter, I2C time, tick cost and free heap on a unit"),
    "devices": ("ionto.devices_cmd", "list connected units (USB and virtual) with serial number and firmware"),
    "flash": ("ionto.flash_cmd", "deploy the firmware to a unit (only what changed), or prepare a new board (--runtime)"),
    "config": ("ionto.config_cmd", "show, get, set, push, pull or validate a unit's configuration"),
    "status": ("ionto.status_cmd", "firmware, state, configuration, storage, faults and clock of a unit"),
    "clock": ("ionto.clock_cmd", "set the unit's clock from this computer (clock sync)"),
    "logs": ("ionto.logs_cmd", "pull a unit's session logs into the archive; list, show, export, plot them"),
    "monitor": ("ionto.monitor", "live view of a treatment (read-only: never disturbs it)"),
    "schedule": ("ionto.schedule_cmd", "the course's session dates from a Tuesday start"),
    "course": ("ionto.course_cmd", "clinic courses: new, list, show, link, unlink (host only)"),
    "report": ("ionto.report_cmd", "a course's adherence and per-session progress"),
}


def build_parser():
    p = argparse.ArgumentParser(prog="ionto", description="Host tools for the ionto iontophoresis controller.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (modname, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(_module=modname)
        _module(modname).add_arguments(sp)
    return p


def _module(name):
    import importlib

    return importlib.import_module(name)


def main(argv=None):
    from .errors import EXIT_INTERNAL, IontoError

    args = build_parser().parse_args(argv)
    try:
        return _module(args._module).run(args) or 0
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` and the like: the reader left; not an error.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except IontoError as e:
        sys.stderr.write("ionto %s: error: %s\n" % (args.command, e.message))
        return e.code
    except Exception as e:  # a bug: still one line for the user, no traceback
        sys.stderr.write("ionto %s: error: %s: %s (please report this)\n" % (args.command, type(e).__name__, e))
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
