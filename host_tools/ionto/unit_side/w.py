# Append one base64 chunk to f, the file the host's batch opened (`_f` in the REPL's globals:
# one open file per target, across chunks and round trips).
import binascii


def _w(f, d):
    f.write(binascii.a2b_base64(d))
