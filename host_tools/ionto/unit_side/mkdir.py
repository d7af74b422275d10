# Make a directory; one that is there already is no error.
import os


def _mkdir(p):
    try:
        os.mkdir(p)
    except OSError:
        pass
