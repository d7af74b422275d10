# Rename each p + ".part" over p. LittleFS renames over an existing file atomically: the target
# is wholly old or wholly new at every instant (a filesystem that refuses gets remove + rename).
import os


def _mv(ps):
    for p in ps:
        try:
            os.rename(p + ".part", p)
        except OSError:
            os.remove(p)
            os.rename(p + ".part", p)
