# The virtual unit: a Pico running our firmware, as one MicroPython unix-port process.
#
#   MICROPYPATH=hw/sim:firmware micropython hw/sim/unit.py --flash IMG [--reset-cause N] [--serial HEX]
#       [--ctl-in FIFO --ctl-out FIFO] [--scenario NAME] [--accel X] [--seed-from DIR]
#       [--flash-worst-case]
#
# Normally started (and restarted) by `ionto sim` (host_tools/ionto/unit_server/), which serves
# stdin/stdout on a pseudo-terminal. What it does, as rp2's main.c does:
#   - sets up the `machine` mock, the simulated board and the flash (everything the simulator
#     needs is imported first: the host filesystem disappears; firmware/ is on MICROPYPATH
#     only for the board model's pins.py).
#   - "frozen" modules (frozen.py): the files hw/rp2/manifest.py freezes into our rp2 build are read from
#     firmware/ and kept on a read-only RAM filesystem mounted at '/.frozen' (a VFS cannot back
#     rp2's '.frozen' path entry, which the import system keeps for real frozen code), so
#     sys.path is ['', '.frozen', '/.frozen', '/lib']: the flash first, then the image's code,
#     as on rp2. Once the flash mounts, the mount point is taken away again (the flash holds
#     every firmware file, and '/' then lists as on a board); with nothing mounted it stays
#     and os.listdir('/') shows '.frozen'.
#   - runs the frozen _boot.py (firmware/_boot.py, as rp2's main.c does at every reset and soft
#     reset) with `rp2.Flash()` giving the flash image: fsmount formats a blank image only; an
#     image that does not mount is NOT formatted, nothing is mounted, and _boot.py shows
#     STORAGE ERROR on the display and prints the recovery. `rp2` here has Flash() only.
#   - --seed-from DIR copies DIR's files in when /main.py is absent (before `ionto flash`).
#   - runs boot.py, then main.py, then the REPL (repl.py) on stdin/stdout; Ctrl-D soft-reboots.
#   - the USB serial line (usb_serial.py). Ctrl-C: the clock's poll hook reads stdin while
#     Python code runs and raises KeyboardInterrupt on the interrupt character, as the USB
#     CDC interrupt does; other bytes wait for the REPL. `micropython` is a proxy whose kbd_intr(c) sets that character
#     (-1: none, so 0x03 waits in the input like any byte); every execution starts with 3,
#     as pyexec does on rp2.
#   - the control channel (JSON lines on the ctl FIFOs) is served from the same poll hook and
#     while the REPL waits, so it always answers while the unit runs.
#
# Hard resets end the process at once (a signal to itself: no `finally`, no `except` in the
# firmware can intercept it, as none can on a board). The supervisor restarts it with the
# reset cause matching how it ended:
#   killed by SIGUSR1  machine.reset() or a watchdog bite   -> restart with WDT_RESET (3); the
#                      watchdog scratch registers (machine.mem_backup) go to IMG.scratch first
#                      and come back at that restart, as they survive the reset on rp2
#   killed by SIGUSR2  power cut (flash fault injection)    -> restart with PWRON_RESET (1)
#   killed by SIGALRM  machine.bootloader()                 -> stays off until power_cycle
#   killed by SIGTERM  stdin closed (the supervisor went away)
#   exit code 2        bad arguments
import sys

import usb_serial as _usb_serial  # first: it takes the real clock before `time` is the virtual one

import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import vfs  # noqa: E402

import micropython  # noqa: E402
import vclock  # noqa: E402
import machine  # noqa: E402
import time  # noqa: E402,F401  (the virtual one)
import flash  # noqa: E402
import simboard  # noqa: E402
import patient as _patient  # noqa: E402
import tracer as _tracer  # noqa: E402
import repl as _repl  # noqa: E402
import frozen as _frozen  # noqa: E402

SIG_WDT = "USR1"
SIG_POWER = "USR2"
SIG_BOOTSEL = "ALRM"
SIG_HANGUP = "TERM"

_PID = int(open("/proc/self/stat").read().split()[0])
_out = sys.stdout.buffer
_in = sys.stdin.buffer


_scratch = None  # IMG.scratch, opened at start-up: the host filesystem goes away at the remount


def _keep_scratch(sig):
    # The watchdog scratch registers (machine.mem_backup) live through a watchdog reset only:
    # kept in a file for the restart that follows, cleared for any other way of stopping.
    if _scratch is None:
        return
    try:
        words = machine.sim_mem_backup_words() if sig == SIG_WDT else [0] * 7
        _scratch.seek(0)
        _scratch.write(("".join("%010d " % w for w in words)).encode())
    except OSError:
        pass


def _restore_scratch():
    global _scratch
    path = A["flash"] + ".scratch"
    try:
        with open(path, "rb") as f:
            words = [int(w) for w in f.read().split()]
    except (OSError, ValueError):
        words = []
        with open(path, "wb") as f:
            f.write(b"0 " * 7)
    _scratch = open(path, "r+b")
    if machine.reset_cause() == machine.WDT_RESET:
        machine.sim_set_mem_backup(words)


def _hard_exit(sig):
    # The board stops dead: nothing after this line runs in this process.
    _keep_scratch(sig)
    os.system("kill -%s %d" % (sig, _PID))
    sys.exit(3)  # only if the signal could not be sent


def _usage(msg):
    sys.stderr.write("unit.py: %s\n" % msg)
    sys.exit(2)


def _args(argv):
    a = {"flash": None, "reset-cause": "1", "serial": None, "ctl-in": None, "ctl-out": None,
         "scenario": "palms", "accel": "0", "seed-from": None, "flash-worst-case": False}
    i = 0
    while i < len(argv):
        k = argv[i]
        if not k.startswith("--") or k[2:] not in a:
            _usage("unknown argument %r" % k)
        k = k[2:]
        if a[k] is False:
            a[k] = True
            i += 1
            continue
        if i + 1 >= len(argv):
            _usage("--%s needs a value" % k)
        a[k] = argv[i + 1]
        i += 2
    if not a["flash"]:
        _usage("--flash IMG is required")
    return a


# --- the unit ------------------------------------------------------------------------------
A = _args(sys.argv[1:])
board = None
patient = None
tracer = None
dev = None
mounted = False
mount_error = None
boots = 0
state = "boot"  # boot, main, repl
serial = None
R = None
_hanging = False
_sim_modules = None
_frozen_fs = None  # the RAM block device holding the frozen modules


def _starve_hook(now):
    # wdt_starve: the firmware's loop hangs right here. Time runs on, nothing feeds the
    # watchdog; if there is none the unit stays hung (power_cycle revives it).
    global _hanging
    if _hanging:
        return
    _hanging = True
    try:
        while True:
            vclock.advance(1000)
    finally:
        _hanging = False
        vclock.remove_hook(_starve_hook)


_cut_at = [0]


def _cut_hook(now):
    if now >= _cut_at[0]:
        _hard_exit(SIG_POWER)


def _unit_state():
    return {"now_us": vclock.now_us(), "accel": vclock.get_accel(),
            "reset_cause": machine.reset_cause(), "state": state,
            "repl": "raw" if R is not None and R.raw else "friendly", "boots": boots,
            "mounted": mounted, "mount_error": mount_error, "flash": dev.stats()}


def _eval(cmd):
    # TEST-ONLY BACKDOOR: evaluates in the board's __main__ (where boot.py, main.py and the
    # REPL run), or with "scope": "sim" in this module (board, dev, vclock...). Not a board
    # feature: nothing but tests may depend on it.
    g = globals() if cmd.get("scope") == "sim" else R.g
    if "code" in cmd:
        exec(cmd["code"], g)
        return {"ok": True}
    v = eval(cmd["expr"], g)
    out = {"ok": True, "repr": repr(v)}
    try:
        json.dumps(v)
        out["value"] = v
    except Exception:
        pass
    return out


def _command(cmd):
    c = cmd.get("cmd")
    if c == "ping":
        return {"ok": True}
    if c == "accel":
        vclock.set_accel(cmd["x"])
        return {"ok": True, "accel": vclock.get_accel()}
    if c == "fault" and cmd.get("kind") == "power_cut" and "after_ms" in cmd:
        # At a moment, not at a write: the supply goes after_ms of virtual time from now.
        _cut_at[0] = vclock.now_us() + int(cmd["after_ms"]) * 1000
        vclock.add_hook(_cut_hook)
        return {"ok": True, "power_cut_at_us": _cut_at[0]}
    if c == "fault" and cmd.get("kind") == "power_cut":
        # At the n-th write of the flash or the FRAM from now (a write cut partway).
        n = int(cmd.get("at", 1))
        dev.arm_power_cut(n, cmd.get("seed"))
        return {"ok": True, "power_cut_at": n}
    if c == "fault" and cmd.get("kind") == "wdt_starve":
        vclock.add_hook(_starve_hook)
        return {"ok": True, "wdt_running": vclock.wdt_running()}
    if c == "clear_faults" or (c == "fault" and cmd.get("kind") == "clear"):
        dev.arm_power_cut(0)
        vclock.remove_hook(_starve_hook)
        vclock.remove_hook(_cut_hook)
    if c == "eval":
        return _eval(cmd)
    # The front panel (host_tools/ionto/panel.py): the patient's side, a spurious limiter
    # trip, and one read of everything it shows.
    if c == "patient":
        return patient.handle(cmd)
    if c == "trace":
        return tracer.handle(cmd)
    if c == "fault" and cmd.get("kind") == "limiter_trip":
        board.plant.trip_limiter()
        return {"ok": True, "faults": board.faults(), "hw_limit": board.plant.hw_limit_tripped}
    if c == "flash":
        if "worst_case" in cmd:
            dev.set_worst_case(bool(cmd["worst_case"]))
        return {"ok": True, "flash": dev.stats(), "page_us": dev.page_us, "erase_us": dev.erase_us}
    r = board.handle(cmd)
    if c == "scenario" and r.get("ok") and ("name" in cmd or "data" in cmd):
        patient.reset()  # a new patient sits down: both hands in, the scenario's water
    if c == "state":
        r["unit"] = _unit_state()
    return r


def _reset_handler(cause):
    if cause == machine.WDT_RESET:
        _hard_exit(SIG_WDT)
    _hard_exit(SIG_BOOTSEL)


def _read_tree(root):
    # Files of the seed directory, read now: the host filesystem goes away at the remount.
    out = []

    def walk(rel):
        for ent in os.ilistdir(root + "/" + rel if rel else root):
            name, kind = ent[0], ent[1]
            if name.startswith(".") or name == "__pycache__":
                continue
            r = rel + "/" + name if rel else name
            if kind == 0x4000:
                out.append((r, None))
                walk(r)
            else:
                with open(root + "/" + r, "rb") as f:
                    out.append((r, f.read()))

    walk("")
    return out


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def _seed(files):
    for rel, data in files:
        if data is None:
            if not _exists("/" + rel):
                os.mkdir("/" + rel)
        else:
            with open("/" + rel, "wb") as f:
                f.write(data)
    sys.stderr.write("unit: seeded %d entries into the flash\n" % len(files))


class _Rp2:
    # The `rp2` module as far as the virtual unit has it: Flash(), the filesystem partition.
    @staticmethod
    def Flash():
        return dev


def _boot():
    # rp2's main.c before boot.py: the frozen _boot.py mounts the filesystem (or refuses to).
    global mounted, mount_error
    for m in ("/", "/.frozen"):
        try:
            vfs.umount(m)
        except OSError:
            pass  # not mounted (a damaged image; the frozen one after a good mount)
    sys.path[:] = list(_SYS_PATH)
    vfs.mount(vfs.VfsLfs2(_frozen_fs), "/.frozen", readonly=True)
    R.run_file("/.frozen/_boot.py")
    fm = sys.modules.get("fsmount")
    ok, words = fm.state if fm is not None else (False, "_boot.py did not run")
    mounted = ok
    mount_error = None if ok else words
    if ok:
        # The flash has every firmware file: take the mount point away again, so '/' lists
        # as on a board. With nothing mounted the frozen modules are all there is: they stay.
        vfs.umount("/.frozen")
        os.chdir("/")


def _soft_reboot():
    # What a soft reboot clears on rp2: the VM (modules, globals, heap), PWM, pin IRQs,
    # timers. Pins keep their levels and the watchdog keeps running.
    global boots
    serial.write(b"MPY: soft reboot\r\n")
    machine.sim_soft_reset()
    vclock.sim_unlock()
    for name in list(sys.modules):
        if name not in _sim_modules:
            del sys.modules[name]
    R.g = {"__name__": "__main__"}
    gc.collect()
    boots += 1
    _boot()


_SYS_PATH = ("", ".frozen", "/.frozen", "/lib")


def _micropython_proxy():
    # `micropython` for the firmware: the built-in's functions as plain class attributes (no
    # allocation to reach them: heap-locked code calls heap_unlock through it), except
    # kbd_intr, which sets the serial line's interrupt character.
    class micropython_:
        pass

    for k in dir(micropython):
        if not k.startswith("__"):
            setattr(micropython_, k, getattr(micropython, k))

    def kbd_intr(c):
        serial.intr_char = c

    micropython_.kbd_intr = staticmethod(kbd_intr)
    return micropython_


def _print(*args, sep=" ", end="\n", file=None):
    _builtin_print(*args, sep=sep, end=end, file=serial.cooked if file is None else file)


def main():
    global board, patient, tracer, dev, serial, R, state, _sim_modules, _builtin_print, _frozen_fs
    machine.sim_set_reset_cause(int(A["reset-cause"]))
    if A["serial"]:
        import binascii
        machine.sim_set_unique_id(binascii.unhexlify(A["serial"]))
    if not _exists(A["flash"]):
        flash.create_image(A["flash"])
    dev = flash.Flash(A["flash"], on_power_cut=lambda: _hard_exit(SIG_POWER))
    if A["flash-worst-case"]:
        dev.set_worst_case()
    ctl_in = open(A["ctl-in"], "rb") if A["ctl-in"] else None
    ctl_out = open(A["ctl-out"], "wb") if A["ctl-out"] else None
    seed = _read_tree(A["seed-from"]) if A["seed-from"] else None
    # The FRAM beside the flash image (non-volatile: kept across restarts), on the same supply.
    board = simboard.Board(A["scenario"], fram_path=A["flash"] + ".fram", power=dev.power)
    _restore_scratch()
    patient = _patient.Patient(board.plant, vclock)
    tracer = _tracer.Tracer(board, vclock, lambda: R.g.get("app"), patient)
    serial = _usb_serial.Serial(ctl_in, ctl_out, _command, lambda: _hard_exit(SIG_HANGUP))
    R = _repl.Repl(serial, {"__name__": "__main__"})
    import builtins
    _builtin_print = builtins.print
    builtins.print = _print
    sys.modules["rp2"] = _Rp2
    sys.modules["micropython"] = _micropython_proxy()
    # The board model read firmware/pins.py from the host; the firmware imports its own copy.
    sys.modules.pop("pins", None)
    frozen = _frozen.files()
    vfs.umount("/")
    _frozen_fs = _frozen.mount(frozen)
    frozen = None
    sim = set(sys.modules)
    _boot()
    if mounted and seed and not _exists("/main.py"):
        _seed(seed)
    seed = None
    machine.sim_set_reset_handler(_reset_handler)
    vclock.set_accel(float(A["accel"]))
    vclock.set_poll(serial.pump)
    # What _boot.py imported is the board's, not the simulator's: a soft reboot clears it.
    _sim_modules = sim
    gc.collect()
    while True:
        try:
            state = "boot"
            ok = R.run_file("boot.py")
            if ok and not R.raw:
                state = "main"
                R.run_file("main.py")
            state = "repl"
            R.run()
        except _repl.SoftReboot:
            pass
        _soft_reboot()


main()
