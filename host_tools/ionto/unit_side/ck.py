# Print [[size, crc32], ...] of the files ps as JSON: the host compares them with what it sent
# before renaming the files over their targets.
import binascii
import json


def _ck(ps):
    r = []
    b = bytearray(1024)
    m = memoryview(b)
    for p in ps:
        c = 0
        n = 0
        with open(p, "rb") as f:
            while True:
                k = f.readinto(b)
                if not k:
                    break
                c = binascii.crc32(m[:k], c)
                n += k
        r.append([n, c & 0xFFFFFFFF])
    print(json.dumps(r))
