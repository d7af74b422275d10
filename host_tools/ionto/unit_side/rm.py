# Remove a file; one that is not there is no error.
import os


def _rm(p):
    try:
        os.remove(p)
    except OSError:
        pass
