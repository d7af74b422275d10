"""The `ionto` command: one entry point, a subcommand per tool.

Each subcommand module provides add_arguments(parser) and run(args) -> exit code. Errors
are reported on one line, `ionto CMD: error: ...`, without a traceback, with the exit codes
of ionto/errors.py.
"""
import argparse
import sys

# name -> (module, one-line help). Other tools register here.
COMMANDS = {
    "sim": ("ionto.unit_server.command", "serve the virtual unit on a pseudo-terminal"),
    "panel": ("ionto.panel", "the virtual unit's front panel in a browser (training, demos, bug reports)"),
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
    p.add_argument("--version", action="version", version=version_line(),
                   help="print ionto's version and the firmware version it ships, and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (modname, help_) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(_module=modname)
        _module(modname).add_arguments(sp)
    return p


def version_line():
    """`ionto X.Y.Z (firmware A.B.C)`: this package and the firmware `ionto flash` deploys."""
    from . import __version__, firmware_build

    return "ionto %s (firmware %s)" % (__version__, firmware_build.version())


def _module(name):
    import importlib

    return importlib.import_module(name)


def main(argv=None):
    from . import interrupt
    from .errors import EXIT_INTERNAL, EXIT_USAGE, IontoError

    with interrupt.installed():
        try:
            args = None
            args = build_parser().parse_args(argv)
            return _module(args._module).run(args) or 0
        except KeyboardInterrupt as e:
            # Ctrl-C, SIGTERM or a closed terminal: the link has given the unit back on the way
            # out (link.Link.close); one line says what was and was not done.
            why = e if isinstance(e, interrupt.Interrupted) else interrupt.Interrupted()
            _say("%s: %s\n" % (_name(args), interrupt.work.line(why.words)))
            return why.exit_code
        except BrokenPipeError:
            # Output piped into `head` and the like: the reader left; not an error.
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
        except IontoError as e:
            msg = e.message
            w = interrupt.work
            if w.abnormal:
                # Cut short with the unit mid-command: say what was done and where the unit is.
                msg = "; ".join([msg] + [p for p in w.tail() if p not in msg])
            _say("%s: error: %s\n" % (_name(args), msg))
            return e.code
        except RecursionError:
            _say("%s: error: the input is nested too deeply to read: check the file you gave\n" % _name(args))
            return EXIT_INTERNAL
        except Exception as e:  # a bug: still one line for the user, no traceback
            if type(e).__name__ == "OperationalError" and ("readonly" in str(e) or "unable to open" in str(e)):
                from . import archive

                _say("%s: error: %s\n" % (_name(args), archive.readonly_words(
                    getattr(args, "archive", None) or archive.default_path())))
                return EXIT_USAGE
            _say("%s: error: %s: %s (please report this)\n" % (_name(args), type(e).__name__, e))
            return EXIT_INTERNAL


def _name(args):
    return "ionto %s" % args.command if args is not None else "ionto"


def _say(line):
    """One line on stderr; a terminal that is gone (SIGHUP) cannot take it, and that is no error."""
    try:
        sys.stderr.write(line)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
