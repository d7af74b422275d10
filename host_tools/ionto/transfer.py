"""Bulk, verified file transfer over the raw REPL (a part of link.Link).

mpremote's `fs cp` from a unit reads one byte per call; here a file comes as base64 lines of
3 KiB (one exec for the whole file) followed by its size and CRC32, checked on the host. Writes
go in 4 KiB chunks, several files per round trip, to temporary files, which are read back
(size + CRC32) and only then renamed over the targets, so an interrupted copy never leaves half
a file. The code that runs on the unit is unit_side/*.py, sent as text.
"""
import binascii
import json
import zlib

from .errors import EXIT_UNIT, IontoError
from .unit_side import call, source

READ_CHUNK = 3072  # bytes per base64 line from the unit (4 KiB of text)
WRITE_CHUNK = 4096  # bytes per write call on the unit
BATCH_TEXT = 16384  # source text per REPL round trip when writing (several chunks, several files)


def last_json(text, what):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line[:1] in "[{\"" or line in ("null", "true", "false") or line[:1].isdigit() or line[:1] == "-":
            try:
                return json.loads(line)
            except ValueError:
                continue
    raise IontoError(EXIT_UNIT, "the unit gave no answer to %s: %r" % (what, text[-200:]))


class Files:
    """Files on the unit (a mixin of link.Link: it needs exec)."""

    def read_file(self, path, progress=None, offset=0):
        """The file's bytes from `offset`, in bulk, checked against the size and CRC32 the unit
        computed while sending."""
        code = call("rd", path, offset, READ_CHUNK)
        got = [0]

        def consumer(chunk):
            got[0] += len(chunk)
            if progress is not None:
                progress(got[0] * 3 // 4)

        try:
            text = self.exec(code, timeout=60, consumer=consumer)
        except IontoError as e:
            if "OSError" in str(e) and ("ENOENT" in str(e) or "2]" in str(e)):
                raise IontoError(EXIT_UNIT, "no file %s on the unit" % path)
            raise
        data = bytearray()
        end = None
        for line in text.splitlines():
            line = line.strip()
            if not line:
                continue
            if line.startswith("#END"):
                end = line.split()
                continue
            try:
                data += binascii.a2b_base64(line)
            except binascii.Error:
                raise IontoError(EXIT_UNIT, "garbled transfer of %s from the unit: try again" % path)
        if end is None or int(end[1]) != len(data) or int(end[2]) != zlib.crc32(bytes(data)):
            raise IontoError(EXIT_UNIT, "transfer of %s failed its check (size or CRC32): try again" % path)
        return bytes(data)

    def write_file(self, path, data, progress=None):
        """Write data to path on the unit (see write_files)."""
        self.write_files([(path, data)], progress)

    def write_files(self, files, progress=None):
        """Write [(path, data)] on the unit: each into path + '.part' in base64 chunks (zlib-
        compressed and inflated there when that pays), several files per REPL round trip; then
        every .part is read back (size, CRC32 of the real bytes) in one trip and only then all
        are renamed over their targets. progress(bytes_done) as chunks go."""
        files = [(p, bytes(d)) for p, d in files]
        packed = self._pack(files)
        batch = []
        size = 0
        done = 0
        for (path, data), z in zip(files, packed):
            # One open file per target across chunks (and across round trips: `_f` lives in
            # the REPL's globals); LittleFS commits metadata at every close.
            body = data if z is None else z
            batch.append("_f = open(%r, 'wb')" % (path + (".part" if z is None else ".part.z")))
            for i in range(0, len(body), WRITE_CHUNK):
                chunk = body[i:i + WRITE_CHUNK]
                batch.append("_w(_f, %r)" % binascii.b2a_base64(chunk, newline=False))
                size += len(chunk) * 4 // 3 + 10
                if size >= BATCH_TEXT:
                    self._run_writes(batch)
                    batch, size = [], 0
                    if progress is not None:
                        progress(done + i * len(data) // max(1, len(body)))
            batch.append("_f.close()")
            done += len(data)
        if batch:
            self._run_writes(batch)
        zipped = [path for (path, _d), z in zip(files, packed) if z is not None]
        if zipped:
            # Inflate on the unit (its `deflate` module), .part.z -> .part, in small pieces.
            self.exec(call("inflate", zipped), timeout=60)
        if progress is not None:
            progress(done)
        got = last_json(self.exec(call("ck", [p + ".part" for p, _d in files])), "write check")
        bad = [p for (p, d), (n, c) in zip(files, got) if n != len(d) or c != zlib.crc32(d)]
        if bad:
            for p, _d in files:
                self.remove(p + ".part")
            raise IontoError(EXIT_UNIT, "writing %s on the unit failed its check (size or CRC32): try again" % bad[0])
        self.exec(call("mv", [p for p, _d in files]))  # unit_side/mv.py: atomic on LittleFS

    def _pack(self, files):
        """zlib-compressed bodies where the unit can inflate them and it saves a tenth or more
        (.mpy files shrink by about a third): fewer bytes through the REPL. None: send as is."""
        if self._deflate is None:
            try:
                self.exec("import deflate\ndeflate.DeflateIO")
                self._deflate = True
            except IontoError:
                self._deflate = False
        out = []
        for _p, data in files:
            z = zlib.compress(data, 9) if self._deflate and len(data) >= 512 else None
            out.append(z if z is not None and len(z) <= len(data) * 9 // 10 else None)
        return out

    def _run_writes(self, calls):
        try:
            self.exec(source("w") + "\n".join(calls) + "\n")
        except IontoError:
            self.exec("try:\n _f.close()\nexcept Exception:\n pass")
            raise

    def sha256(self, paths):
        """{path: sha-256 hex, or None if the file is missing} for files on the unit."""
        return last_json(self.exec(call("h", list(paths)), timeout=120), "sha256")

    def listdir(self, path="/"):
        """[(name, size, is_dir)] of a directory on the unit ([] if it does not exist)."""
        return [tuple(e) for e in last_json(self.exec(call("ls", path)), "listdir")]

    def remove(self, path):
        self.exec(call("rm", path))

    def remove_files(self, paths):
        """Remove several files in one round trip (one that is not there is no error)."""
        if paths:
            self.exec(source("rm") + "".join("_rm(%r)\n" % p for p in paths))

    def mkdir(self, path):
        self.exec(call("mkdir", path))
