# Inflate each p + ".part.z" (zlib, from the host) into p + ".part" in small pieces, then remove
# the compressed file.
import deflate
import os


def _inflate(ps):
    b = bytearray(512)
    m = memoryview(b)
    for p in ps:
        with open(p + ".part.z", "rb") as fi:
            with open(p + ".part", "wb") as fo:
                d = deflate.DeflateIO(fi, deflate.ZLIB)
                while True:
                    k = d.readinto(b)
                    if not k:
                        break
                    fo.write(m[:k])
        os.remove(p + ".part.z")
