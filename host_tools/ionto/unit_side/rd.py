# Read a file from offset o and print it as base64 lines of n bytes each, then "#END size crc32"
# (the host checks both; one exec for the whole file is what makes a pull fast).
import binascii
import sys


def _rd(p, o, n):
    c = 0
    t = 0
    b = bytearray(n)
    m = memoryview(b)
    f = open(p, "rb")
    try:
        f.seek(o)
        while True:
            k = f.readinto(b)
            if not k:
                break
            c = binascii.crc32(m[:k], c)
            t += k
            sys.stdout.write(binascii.b2a_base64(m[:k]))
    finally:
        f.close()
    print("#END", t, c & 0xFFFFFFFF)
