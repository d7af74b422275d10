"""The power-cut journal: a session's per-second samples, dose and treatment time kept on the
board's FRAM while current flows, when nothing may be written to flash (logstore.py says why).

    j = journal.Journal(board.fram)     # None, or a chip that does not answer: no journal
    j.clear()                           # at CONFIRM, before the summary goes to flash
    j.open(session)                     # then, once the summary is on flash
    j.put(sec, ring, off, dose, treat)  # once a second: the sample, then the checkpoint
    j.checkpoint(session)               # at boot: (count, dose uA*s, treat s) or None
    j.read(sec, buf)                    # samples from second sec into buf (10 bytes each)

Layout (FRAM byte addresses):
  0x0000, 0x0020  two checkpoint slots, written in turn: session u32, gen u32, count u16,
                  dose uA*s i32, treatment s u32, then crc32 u32 of those 18 bytes. A write
                  cut by the power fails its CRC and the other slot, one second older, stands.
  0x0100 + 10 s   the sample of session second s (records.SAMPLE_BYTES, the RAM ring's own
                  layout). Written before the checkpoint that counts it: every counted sample
                  is whole; a sample cut short is never counted.
A power cut therefore loses at most the second in progress plus a checkpoint cut short: under
2 s of dose, time and trace. Cost once a second: on the I2C bus at 400 kHz a 13-byte write
(~0.3 ms) and a 25-byte write (~0.6 ms); put() as a whole measured 1.23 ms median, 1.28 ms
max on the emulated RP2040 (our rp2 image; 100 calls; ~0.85 ms of it wire time), in the loop's
1 Hz pass, interrupts on. No erase, no stall: FRAM stores each byte as it is clocked in.
"""
import struct
from binascii import crc32

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_CK = (0x0000, 0x0020)
_CK_FMT = "<IIHiI"
_CK_LEN = const(18)
_SAMPLES = const(0x0100)
_SB = const(10)  # records.SAMPLE_BYTES
SIZE = const(32768)
CAPACITY_S = const((SIZE - _SAMPLES) // _SB)  # 3251 s: beyond the 45-min session limit
# rp2 gives a whole I2C transfer pins.I2C_TIMEOUT_US (1 ms: about 43 bytes at 400 kHz), so
# reads go in pieces of 40 bytes; the writes (12 and 24 bytes) fit.
READ_MAX = const(40)


class Journal:
    def __init__(self, dev):
        # dev: fram.FRAM (or its model); probed once: a unit without the chip logs as before.
        self.dev = dev if dev is not None and dev.probe() else None
        self.session = 0
        self.gen = 0
        self._sb = bytearray(_SB)
        self._ck = bytearray(_CK_LEN + 4)
        self._ckv = memoryview(self._ck)[:_CK_LEN]
        self._rd = bytearray(_CK_LEN + 4)
        self._rdv = memoryview(self._rd)[:_CK_LEN]
        self.writes = 0
        self.errors = 0

    @property
    def ok(self):
        return self.dev is not None

    def _seal(self, session, gen, count, dose, treat):
        ck = self._ck
        struct.pack_into(_CK_FMT, ck, 0, session, gen, count, dose, treat)
        struct.pack_into("<I", ck, _CK_LEN, crc32(self._ckv) & 0xFFFFFFFF)
        return ck

    def clear(self):
        """Before a new session's summary goes to flash: both slots zeroed (their CRCs fail),
        so a checkpoint found later for a session on flash was written for that session and
        not left over from an older one of the same number (a reformatted flash restarts the
        numbers; the FRAM keeps its bytes). True if the chip took it."""
        self.session = 0
        if self.dev is None:
            return False
        ck = self._ck
        for i in range(_CK_LEN + 4):
            ck[i] = 0
        try:
            self.dev.write(_CK[0], ck)
            self.dev.write(_CK[1], ck)
        except OSError:
            self.errors += 1
            return False
        return True

    def open(self, session):
        """A new session (output off, at CONFIRM, its summary on flash after clear()): its
        first checkpoint, count 0, in slot 0. True if the chip took it."""
        self.session = 0
        if self.dev is None:
            return False
        try:
            self.dev.write(_CK[0], self._seal(session, 0, 0, 0, 0))
        except OSError:
            self.errors += 1
            return False
        self.session = session
        self.gen = 0
        return True

    def close(self):
        """The session's end is on flash: stop journaling (the FRAM keeps what it has)."""
        self.session = 0

    def put(self, sec, ring, off, dose, treat):
        """Session second sec's sample (10 bytes of ring at off), then the checkpoint counting
        it with the dose and treatment time so far. No allocation but crc32's result."""
        if self.session == 0 or sec >= CAPACITY_S:
            return
        sb = self._sb
        for k in range(_SB):
            sb[k] = ring[off + k]
        try:
            self.dev.write(_SAMPLES + sec * _SB, sb)
            g = self.gen + 1
            self.dev.write(_CK[g & 1], self._seal(self.session, g, sec + 1, dose, treat))
            self.gen = g
            self.writes += 2
        except OSError:
            self.errors += 1

    def checkpoint(self, session):
        """The newest whole checkpoint of `session`: (count, dose uA*s, treat s), or None."""
        if self.dev is None:
            return None
        best = None
        bg = -1
        rd = self._rd
        for a in _CK:
            try:
                self.dev.read_into(a, rd)
            except OSError:
                self.errors += 1
                return None
            if struct.unpack_from("<I", rd, _CK_LEN)[0] != crc32(self._rdv) & 0xFFFFFFFF:
                continue
            s, g, count, dose, treat = struct.unpack_from(_CK_FMT, rd, 0)
            if s == session and g > bg:
                bg = g
                best = (count, dose, treat)
        return best

    def read(self, sec, buf):
        """Samples from session second sec into buf (len(buf) // 10 of them), READ_MAX bytes
        a transfer. OSError if the chip does not answer. For the boot, not the loop."""
        mv = memoryview(buf)
        a = _SAMPLES + sec * _SB
        i = 0
        n = len(buf)
        while i < n:
            k = n - i if n - i < READ_MAX else READ_MAX
            self.dev.read_into(a + i, mv[i:i + k])
            i += k
