# Helpers shared by the fw_*.py end-to-end scripts: results go to stdout as "@R <json>"
# lines ([key, value]) that tests/test_firmware_e2e.py parses and asserts on.
import json
import limits as L


def emit(key, value):
    print("@R " + json.dumps([key, value]))


def fault_name(code):
    row = L.fault_info(code)
    return row[1] if row else str(code)


class Rng:
    """xorshift32: the same sequence on every port and version (random's is not promised)."""

    def __init__(self, seed):
        self.x = (seed * 2654435761 + 12345) & 0xFFFFFFFF or 1

    def next(self):
        x = self.x
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.x = x
        return x

    def below(self, n):
        return self.next() % n

    def pick(self, seq):
        return seq[self.below(len(seq))]
