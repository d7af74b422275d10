# Virtual clock: the one notion of time on the virtual unit.
#
# Everything that takes time on the board (sleeps, I2C wire time, flash erase, the plant's
# dynamics) is charged here, so a 40-minute session runs as fast as the host allows and
# every run is deterministic. Runs on CPython and on the MicroPython unix port.
#
# advance() is called on every control tick (and by every sleep and bus transfer), so its
# common path is integer-only and allocation-free: it survives micropython.heap_lock().
#
# Scheduling model (as rp2):
# - "hardware" events (`at()`: timer expiry, injected pin edges) always happen at their
#   virtual time, even inside charge();
# - "soft" callbacks (`post()`: Pin IRQ handlers, Timer callbacks) run at once when
#   deliverable, else wait in a small queue until the blackout (charge(), disable_irq(),
#   another soft callback running) ends. Soft callbacks do not nest, as on MicroPython.
import sys

try:
    from micropython import const
except ImportError:  # plain CPython without the test shims
    def const(x):
        return x

# Reach the real clock (for pacing) even when hw/sim/time.py shadows `time`: with sys.path
# empty MicroPython only finds the built-in (its documented idiom); on CPython `time` is
# built in and already loaded.
_path = sys.path
sys.path = []
try:
    import time as _rt
finally:
    sys.path = _path
    del _path

_MPY = sys.implementation.name == "micropython"
if _MPY:
    _real_ticks = _rt.ticks_us
    _real_diff = _rt.ticks_diff
    _real_sleep_us = _rt.sleep_us
else:

    def _real_ticks():
        return _rt.monotonic_ns() // 1000

    def _real_diff(a, b):
        return a - b

    def _real_sleep_us(us):
        _rt.sleep(us / 1_000_000)


# Heap lock. Firmware may hold micropython.heap_lock() around its control step to prove it
# does not allocate; the simulator code that runs inside firmware calls (hooks, device
# models, listeners) is not firmware and may allocate, so it runs unlocked, and soft IRQ
# handlers (firmware again) run re-locked. The unix port has no heap_locked(), so the
# depth is probed: heap_unlock() at depth 0 wraps to 32767 and heap_lock() undoes that.
# The probe is checked once here and disabled if the port behaves differently.
_UNDERFLOW = const(32767)
_heap_lock = None
if _MPY:
    try:
        import micropython as _mp

        if _mp.heap_unlock() == _UNDERFLOW:
            _mp.heap_lock()
            bytearray(1)  # raises if the undo did not restore depth 0
            _mp.heap_lock()
            if _mp.heap_unlock() == 0:
                _heap_lock = _mp.heap_lock
                _heap_unlock = _mp.heap_unlock
    except Exception:
        _heap_lock = None


def sim_unlock():
    """Unlock the heap fully for simulator code; returns the depth to give to sim_relock()."""
    if _heap_lock is None:
        return 0
    d = _heap_unlock()
    if d == _UNDERFLOW:
        _heap_lock()
        return 0
    n = 1
    while d:
        d = _heap_unlock()
        n += 1
    return n


def sim_relock(n):
    while n:
        _heap_lock()
        n -= 1


TICKS_PERIOD = const(1 << 30)
_TICKS_MAX = const((1 << 30) - 1)
_TICKS_HALF = const(1 << 29)
_NEVER = const(1 << 62)  # still a small int on the 64-bit unix port
_QCAP = const(32)  # soft-callback queue slots
SCHED_DEPTH = 8  # MicroPython's scheduler queue: Pin IRQs beyond it are dropped

boot_offset = 0  # ticks_ms()/ticks_us() read this at power-on (set near the wrap to test it)
strict = False  # True: an exception in a soft callback propagates (tests); rp2 prints it

_now = 0
_hooks = []
_timed = []  # the hooks that say when they next need to run (add_hook(fn, timed=True))
_all_timed = True
_hook_due = 0  # the hooks run when virtual time reaches this (0: at every step)
_hook_gen = 0  # add_hook/remove_hook count: a hook run that saw a change keeps _hook_due
_events = []  # [due_us, fn, arg] sorted by due, FIFO among equal dues
_next_due = _NEVER
_soft = 0  # >0 while soft callbacks must wait (charge, running soft callback)
_masked = 0  # disable_irq() in force
_q_fn = [None] * _QCAP
_q_arg = [None] * _QCAP
_q_cap = bytearray(_QCAP)  # 1: counts against SCHED_DEPTH
_q_r = 0
_q_n = 0
_q_sched = 0
_wdt_due = _NEVER
_wdt_timeout = 0
_wdt_fn = None
_poll = None
_fw_depth = 0  # heap-lock depth the firmware held when it entered advance()
_pace_k = 0  # accel * 1000 (integer, so pacing does not allocate); 0: free-running
_pace_v0 = 0
_pace_r0 = 0
_count = 0
_dropped = 0
_irq_errors = 0
last_irq_error = None


def now_us():
    return _now


def ticks_us():
    return (_now + boot_offset) & _TICKS_MAX


def ticks_ms():
    return (_now // 1000 + boot_offset) & _TICKS_MAX


def ticks_diff(a, b):
    # MicroPython's definition: signed distance in a 2**30 ring.
    return ((a - b + _TICKS_HALF) & _TICKS_MAX) - _TICKS_HALF


def ticks_add(t, delta):
    # As extmod/modtime.c: |delta| must stay below TICKS_PERIOD/2 so that
    # ticks_diff(ticks_add(t, d), t) == d holds both ways.
    if delta >= _TICKS_HALF or delta <= -_TICKS_HALF:
        raise OverflowError("ticks interval overflow")
    return (t + delta) & _TICKS_MAX


def advance(us):
    """Move virtual time forward by `us` (>= 0), running everything that falls due."""
    if _heap_lock is None:
        _advance(us)
        return
    # sim_unlock() written out, its common case: the heap was not locked
    d = _heap_unlock()
    if d == _UNDERFLOW:
        _heap_lock()
        _advance(us)
    else:
        _advance_fw(us, d)


def _advance_fw(us, d):
    # advance() under the firmware's heap lock, whose depth is d + 1 (one level is already
    # off): fully unlocked for the simulator, the depth kept for soft callbacks.
    global _fw_depth
    d = sim_unlock() + 1 if d else 1
    old = _fw_depth
    _fw_depth = d
    try:
        _advance(us)
    finally:
        _fw_depth = old
        sim_relock(d)


def _advance(us):
    global _now, _count
    t = _now + us
    if t >= _next_due:
        _run_events(t)
    if t >= _wdt_due:
        _wdt_expire()  # at its deadline, not at the end of a long step
    if t > _now:
        _now = t
    if _now >= _hook_due:
        _run_hooks(_now)
    _count += 1
    if not (_count & 63) and _poll is not None:
        _poll()
    if _pace_k:
        _pace()


def charge(us):
    """Time the chip spends blocked: soft IRQs and timer callbacks wait until it ends."""
    global _soft
    _soft += 1
    try:
        advance(us)
    finally:
        _soft -= 1
    if _q_n and not _soft and not _masked:
        _flush()


def charge_unlocked(us, d):
    """charge() for simulator code that already holds the heap unlocked: `d` is what its
    sim_unlock() returned (the firmware's depth). A bus transfer unlocks once for its wire
    times and its device's answer; soft callbacks that fall due run, as after charge(),
    back under the firmware's lock."""
    global _now, _count
    t = _now + us
    if t < _next_due and t < _wdt_due and t < _hook_due and (_count & 63) != 63 and not (_pace_k or _q_n):
        # Nothing falls due within it (no event, watchdog, hook, poll or pacing; no soft
        # callback waiting): all that _advance() would do, the common case of a wire time.
        _now = t
        _count += 1
    else:
        _charge_unlocked(us, d)


def _charge_unlocked(us, d):
    global _soft, _fw_depth
    old = _fw_depth
    if d:
        _fw_depth = d
    _soft += 1
    try:
        _advance(us)
    finally:
        _soft -= 1
        _fw_depth = old
    if _q_n and not _soft and not _masked:
        _flush_as(d)


def _flush_as(d):
    # _flush() from unlocked simulator code whose firmware holds the lock at depth d
    global _fw_depth
    if not d:
        _flush()
        return
    old = _fw_depth
    _fw_depth = d
    try:
        _flush()
    finally:
        _fw_depth = old


def _run_events(t):
    global _now, _next_due
    ev = _events
    while ev and ev[0][0] <= t:
        e = ev.pop(0)
        _next_due = ev[0][0] if ev else _NEVER
        if e[0] > _now:
            _now = e[0]
            if _now >= _hook_due:
                _run_hooks(_now)
        e[1](e[2])
    _next_due = ev[0][0] if ev else _NEVER


def at(due_us, fn, arg=None, entry=None):
    """Schedule hardware event `fn(arg)` at virtual time `due_us`; returns its entry.

    Pass a previous entry back to reuse it (periodic timers reschedule without allocating).
    """
    global _next_due
    if entry is None:
        entry = [due_us, fn, arg]
    else:
        entry[0] = due_us
        entry[1] = fn
        entry[2] = arg
    ev = _events
    i = len(ev)
    while i and ev[i - 1][0] > due_us:
        i -= 1
    ev.insert(i, entry)
    _next_due = ev[0][0]
    return entry


def cancel(entry):
    global _next_due
    ev = _events
    for i in range(len(ev)):
        if ev[i] is entry:
            ev.pop(i)
            break
    _next_due = ev[0][0] if ev else _NEVER


def post(fn, arg, sched=True):
    """A soft IRQ: run fn(arg) now if deliverable, else queue it. False if dropped.

    `sched` entries count against SCHED_DEPTH like micropython.schedule (Pin IRQs);
    timers pass False (rp2 links its soft-timer nodes instead).
    """
    global _q_n, _q_sched, _dropped
    if not (_soft or _masked):
        _run_soft(fn, arg)
        return True
    if _q_n >= _QCAP or (sched and _q_sched >= SCHED_DEPTH):
        _dropped += 1
        return False
    i = (_q_r + _q_n) % _QCAP
    _q_fn[i] = fn
    _q_arg[i] = arg
    _q_cap[i] = 1 if sched else 0
    _q_n += 1
    if sched:
        _q_sched += 1
    return True


def _run_soft(fn, arg):
    global _soft, _irq_errors, last_irq_error
    _soft += 1
    d = _fw_depth
    try:
        if d:
            sim_relock(d)  # firmware code: back under the firmware's heap lock
        try:
            fn(arg)
        finally:
            if d:
                sim_unlock()
    except Exception as e:  # rp2 prints it and carries on
        _irq_errors += 1
        last_irq_error = e
        if strict:
            raise
        if _MPY:
            sys.print_exception(e)
        else:
            import traceback
            traceback.print_exception(type(e), e, e.__traceback__)
    finally:
        _soft -= 1
    if _q_n and not _soft and not _masked:
        _flush()


def _flush():
    global _q_r, _q_n, _q_sched
    while _q_n and not _soft and not _masked:
        i = _q_r
        fn = _q_fn[i]
        arg = _q_arg[i]
        _q_fn[i] = None
        _q_arg[i] = None
        _q_r = (i + 1) % _QCAP
        _q_n -= 1
        if _q_cap[i]:
            _q_sched -= 1
        _run_soft(fn, arg)


def pending():
    return _q_n


def clear_pending():
    """Forget queued soft callbacks and unmask IRQs (a soft reboot restarts the VM)."""
    global _q_r, _q_n, _q_sched, _masked
    for i in range(_QCAP):
        _q_fn[i] = None
        _q_arg[i] = None
    _q_r = 0
    _q_n = 0
    _q_sched = 0
    _masked = 0


def next_due():
    """Virtual time of the next scheduled event (a huge number if none)."""
    return _next_due


def irq_disable():
    global _masked
    s = 0 if _masked else 1
    _masked = 1
    return s


def irq_restore(state):
    global _masked
    _masked = 0 if state else 1
    if not _masked and _q_n and not _soft:
        _flush()


def deliverable():
    return not (_soft or _masked)


# --- watchdog (hardware: expires even inside charge()) -----------------------------------
def wdt_start(timeout_us, fn):
    global _wdt_timeout, _wdt_fn, _wdt_due
    _wdt_timeout = timeout_us
    _wdt_fn = fn
    _wdt_due = _now + timeout_us


def wdt_feed():
    global _wdt_due
    if _wdt_fn is not None:
        _wdt_due = _now + _wdt_timeout


def wdt_running():
    return _wdt_fn is not None


def _wdt_expire():
    global _now, _wdt_due, _wdt_fn
    fn = _wdt_fn
    if _wdt_due > _now:
        _now = _wdt_due
    _wdt_due = _NEVER  # the reset stops it; a new power-on starts clean
    _wdt_fn = None
    if fn is not None:
        fn()


# --- hooks, poll, pacing -----------------------------------------------------------------
def add_hook(fn, timed=False):
    """fn(now) runs, in the order added, whenever virtual time moves (each step, each event).

    timed: fn returns the virtual time it next needs to run at. While every hook is timed
    the clock skips them all until the earliest of those times (one integer compare per
    step); a hook may still be called before its time, when another one is due.
    """
    global _hook_due, _hook_gen
    if fn not in _hooks:
        _hooks.append(fn)
        if timed:
            _timed.append(fn)
    _hook_due = 0  # the new hook runs at the next step and says when it wants to again
    _hook_gen += 1
    _hooks_changed()


def remove_hook(fn):
    global _hook_gen
    if fn in _hooks:
        _hooks.remove(fn)
    if fn in _timed:
        _timed.remove(fn)
    _hook_gen += 1
    _hooks_changed()


def _hooks_changed():
    global _all_timed
    _all_timed = True
    for h in _hooks:
        if h not in _timed:
            _all_timed = False


def _run_hooks(now):
    global _hook_due
    if not _all_timed:
        for h in _hooks:
            h(now)
        return  # _hook_due stays 0: every step
    g = _hook_gen
    due = _NEVER
    for h in _hooks:
        d = h(now)
        if d < due:
            due = d
    if g == _hook_gen:  # (a hook added by a hook is due at once)
        _hook_due = due


def set_poll(fn):
    global _poll
    _poll = fn


def set_accel(x):
    """0: as fast as possible; x > 0: virtual time runs at x times real time."""
    global _pace_k, _pace_v0, _pace_r0
    _pace_k = int(x * 1000) if x and x > 0 else 0
    _pace_v0 = _now
    _pace_r0 = _real_ticks()


def get_accel():
    return _pace_k / 1000


def _pace():
    global _pace_v0, _pace_r0
    r = _real_ticks()
    real = _real_diff(r, _pace_r0)
    ahead = (_now - _pace_v0) * 1000 // _pace_k - real
    if ahead > 0:
        _real_sleep_us(ahead)
    elif ahead < -100_000:
        # Far behind (host too slow): re-anchor rather than race to catch up.
        _pace_v0 = _now
        _pace_r0 = r
    if real > 10_000_000:
        # Re-anchor every 10 s: the unix port's ticks_us wraps after ~18 real minutes.
        _pace_v0 = _now
        _pace_r0 = _real_ticks()


def reset():
    """A new power-on: time back to 0, no events, no watchdog, nothing pending.

    Hooks, the poll hook, pacing and boot_offset stay: they belong to the simulator.
    """
    global _now, _next_due, _soft, _hook_due
    global _wdt_due, _wdt_fn, _wdt_timeout, _count, _dropped, _irq_errors, last_irq_error
    _now = 0
    _hook_due = 0  # time went back: every hook runs at the next step (the board sees the power-on)
    del _events[:]
    _next_due = _NEVER
    _soft = 0
    clear_pending()
    _wdt_due = _NEVER
    _wdt_fn = None
    _wdt_timeout = 0
    _count = 0
    _dropped = 0
    _irq_errors = 0
    last_irq_error = None
    if _pace_k:
        set_accel(_pace_k / 1000)


def set_boot_offset(ticks):
    global boot_offset
    boot_offset = ticks & _TICKS_MAX


def stats():
    """Counters for benchmarks and tests: advances, events queued, soft IRQs dropped/failed."""
    return {
        "now_us": _now,
        "advances": _count,
        "events": len(_events),
        "pending": _q_n,
        "dropped": _dropped,
        "irq_errors": _irq_errors,
        "hooks": len(_hooks),
    }
