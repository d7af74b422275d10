"""Writing a file the user named (-o, --output): whole or not at all, and a failure in one line.

    outfile.write_text(path, text)
    outfile.write(path, lambda tmp: figure.savefig(tmp))   # anything that writes a file
"""
import os

from .errors import EXIT_USAGE, IontoError


def write(path, fill):
    """fill(tmp) writes the content into a file beside path; only a complete one is renamed over
    path, so an interrupted or failed write never leaves half a file."""
    tmp = "%s.tmp%d" % (path, os.getpid())
    try:
        fill(tmp)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise IontoError(EXIT_USAGE, "cannot write %s: %s" % (path, e.strerror or e))


def write_text(path, text, encoding=None):
    def fill(tmp):
        with open(tmp, "w", encoding=encoding, newline="") as f:
            f.write(text)

    write(path, fill)
