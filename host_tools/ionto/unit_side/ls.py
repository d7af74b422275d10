# Print [[name, size, is_dir], ...] of directory d as JSON ([] when it does not exist).
import json
import os


def _ls(d):
    r = []
    try:
        for e in os.ilistdir(d):
            r.append([e[0], e[3] if len(e) > 3 else 0, e[1] == 0x4000])
    except OSError:
        pass
    print(json.dumps(r))
