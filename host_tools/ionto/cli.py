"""The `ionto` command: one entry point, a subcommand per tool.

    ionto sim [...]     serve the virtual unit on a pseudo-terminal (ionto.sim)

Each subcommand module provides add_arguments(parser) and run(args) -> exit code. Errors
are reported on one line, without a traceback.
"""
import argparse
import sys

# name -> (module, one-line help). Other tools register here.
COMMANDS = {
    "sim": ("ionto.sim", "serve the virtual unit on a pseudo-terminal"),
    "bench": ("ionto.bench_cmd", "measure loop period, jitter, I2C time, tick cost and free heap on a unit"),
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
    args = build_parser().parse_args(argv)
    try:
        return _module(args._module).run(args) or 0
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # one line for the user, no traceback
        sys.stderr.write("ionto %s: error: %s\n" % (args.command, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
