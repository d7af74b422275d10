"""`ionto flash`: deploy the firmware to a unit, and optionally MicroPython itself first.

    ionto flash [--port P] [--dry-run] [--no-reboot] [--runtime FILE.uf2] [--bootsel-dir DIR]

1. (--runtime) Check the UF2 (ionto/uf2.py: blocks, magic numbers, no gaps, family matching the
   board in BOOTSEL mode, found by its INFO_UF2.TXT), copy it onto the BOOTSEL drive and wait for
   the board to come back as a serial device.
2. Listen to the status channel without sending a byte; refuse (exit 5) while a treatment runs.
3. Ask the unit which .mpy it loads (sys.implementation._mpy) and compile firmware/ for it
   (ionto/mpy_build.py; main.py and boot.py stay source). Refuse (exit 7) if no mpy-cross can.
4. Hash the unit's files (SHA-256, on the unit) and copy only what differs, each file atomically
   (link.write_file: temporary file, read back, renamed). Remove firmware files an earlier
   deployment left that would now be stale or shadow a module (app.py beside app.mpy: MicroPython
   imports the .py first). Data (/log, config.json, config.bak, anything not .py/.mpy) is never
   touched.
5. Write manifest.json LAST (firmware/integrity.py build_manifest, the code the unit's boot check
   runs): until then the unit's old manifest no longer matches, so a copy cut halfway leaves a
   unit that refuses to treat rather than one running a mix.
6. Verify: every file was read back (size, CRC32) before its rename; the unit's own integrity
   check (firmware/integrity.py) then hashes every file against the manifest just written.
   Note the deployment in the unit's event log (hostcmd), reboot (hard reset), and confirm the
   unit reports the new version.
"""
import hashlib
import json
import os
import sys
import time

from . import link, mpy_build, unit_side
from .errors import EXIT_FIRMWARE, EXIT_NO_DEVICE, EXIT_TREATING, EXIT_UNIT, EXIT_USAGE, IontoError

MANIFEST = "manifest.json"
# Data on the unit's flash that a deployment must never remove, whatever an old manifest says.
PROTECTED = ("manifest.json", "config.json", "config.bak", "log")
LISTEN_S = 1.3  # the status line comes once a second: one is enough to know the state
BOOTSEL_WAIT_S = 30.0
SERIAL_WAIT_S = 30.0
REBOOT_WAIT_S = 12.0  # a board re-enumerates on USB, boots, self-tests; @ID comes at boot and every 5 s


def add_arguments(p):
    p.add_argument("--port", help="the unit's serial port (default: IONTO_PORT, else the only unit connected)")
    p.add_argument("--dry-run", action="store_true",
                   help="check, compile and compare only: show what would be copied and removed, write nothing")
    p.add_argument("--runtime", metavar="FILE.uf2",
                   help="first put this MicroPython runtime on a board in BOOTSEL mode (a new board)")
    p.add_argument("--bootsel-dir", metavar="DIR",
                   help="the BOOTSEL drive's folder (default: found by its INFO_UF2.TXT among the mounted drives)")
    p.add_argument("--no-reboot", action="store_true",
                   help="leave the unit at rest after copying (it runs the new firmware at its next reset)")


def _say(text):
    sys.stderr.write("ionto flash: %s\n" % text)
    sys.stderr.flush()


def run(args):
    port = args.port
    if args.runtime:
        port = put_runtime(args.runtime, args.bootsel_dir, port, dry_run=args.dry_run)
        if args.dry_run:
            return 0
    result = deploy(port, dry_run=args.dry_run, reboot=not args.no_reboot)
    print(summary(result))
    return 0


# --- the runtime (UF2 onto a board in BOOTSEL mode) ----------------------------------------
def read_uf2(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise IontoError(EXIT_USAGE, "cannot read %s: %s" % (path, e.strerror or e))


def put_runtime(path, bootsel_dir=None, port=None, dry_run=False):
    """Check and copy the UF2, then wait for the board's serial port -> that port."""
    from . import uf2

    data = read_uf2(path)
    uf2.parse(data)  # a broken file is refused before looking for a board
    try:
        folder, board_id = uf2.find_bootsel(bootsel_dir)
    except IontoError as e:
        if bootsel_dir is not None or e.code != EXIT_NO_DEVICE:
            raise
        _say("waiting for a board in BOOTSEL mode (hold BOOTSEL while plugging it in)...")
        folder, board_id = uf2.find_bootsel(None, timeout=BOOTSEL_WAIT_S)
    images = uf2.check(data, board_id)
    fams = ", ".join(uf2.family_name(i.family) for i in images)
    if dry_run:
        print("%s: %d blocks (%s) would go onto the %s BOOTSEL drive at %s" % (
            os.path.basename(path), len(data) // uf2.BLOCK, fams, board_id, folder))
        return port
    before = set(u.device for u in link.find_units())
    prog = link.Progress(len(data), "runtime -> " + board_id)
    try:
        uf2.copy_to(data, folder, progress=prog)
    finally:
        prog.close()
    _say("%s (%s) copied onto %s; waiting for the board to restart" % (os.path.basename(path), fams, folder))
    return wait_for_port(port, before)


def wait_for_port(port=None, before=(), timeout=None):
    """The serial port of the board that just restarted: `port` once it exists, else a unit
    that was not there before the copy (or the only one)."""
    deadline = time.monotonic() + (SERIAL_WAIT_S if timeout is None else timeout)
    port = port or os.environ.get("IONTO_PORT")
    while True:
        if port:
            if os.path.exists(port):
                return port
        else:
            units = [u.device for u in link.find_units()]
            new = [d for d in units if d not in before]
            if len(new) == 1:
                return new[0]
            if len(new) > 1:
                return link.resolve_port(None)  # several: the user must choose (exit 10)
        if time.monotonic() > deadline:
            raise IontoError(EXIT_NO_DEVICE, "the board did not come back as a serial device after its runtime "
                             "was copied%s: unplug it, plug it in (without BOOTSEL) and run `ionto flash` again"
                             % (" (no %s)" % port if port else ""))
        time.sleep(0.2)


# --- the application --------------------------------------------------------------------------
class Result:
    def __init__(self, port):
        self.port = port
        self.copied = []  # names
        self.unchanged = []
        self.removed = []
        self.bytes_copied = 0
        self.bytes_unchanged = 0
        self.version = None
        self.old_version = None
        self.mpy = None
        self.reported = None  # version the unit reported after its reboot
        self.integrity = None  # the unit's own check: (ok, words)
        self.logged = None  # event-log note: True, or words saying why not
        self.dry_run = False
        self.rebooted = False
        self.seconds = 0.0


def _sha(b):
    return hashlib.sha256(b).hexdigest()


def wait_idle(u, seconds=LISTEN_S):
    """Listen (sending nothing) until a status line shows the state; refuse while treating.
    -> Status, or None when nothing is printed (no application running)."""
    for _ in u.lines(seconds):
        if u.status is not None and not u._waiting():  # the latest line there is
            break
    st = u.status
    if st is not None and st.treating:
        raise IontoError(EXIT_TREATING, "a treatment is running on %s (%s): nothing was sent; flash when the unit "
                         "is idle (its display shows READY, DONE or STOPPED)" % (u.port, st.state.replace("_", " ")))
    return st


def _survey(u, names):
    """In one round trip: the .mpy files the unit loads (sys.implementation._mpy), its root
    folder {name: (name, size, is_dir)} and {path: SHA-256 or None} of `names` and the manifest."""
    paths = ["/" + n for n in names] + ["/" + MANIFEST]
    out = u.exec("import sys\nprint(getattr(sys.implementation, '_mpy', 0))\n" + unit_side.call("ls", "/")
                 + unit_side.call("h", paths), timeout=120)
    lines = [ln.strip() for ln in out.splitlines() if ln.strip()]
    try:
        mpy, listing, have = int(lines[-3]), json.loads(lines[-2]), json.loads(lines[-1])
        on_unit = dict((e[0], tuple(e)) for e in listing)
        if not isinstance(have, dict):
            raise ValueError(have)
    except (IndexError, ValueError, TypeError):
        raise IontoError(EXIT_UNIT, "the unit gave no answer to the firmware check: %r" % out[-200:])
    if not mpy:
        raise IontoError(EXIT_FIRMWARE, "the unit's MicroPython cannot load .mpy files (no sys.implementation._mpy): "
                         "put a standard MicroPython on it with `ionto flash --runtime FILE.uf2`")
    return mpy, on_unit, have


def stale_names(on_unit, bundle, old_names=()):
    """Firmware files on the unit to remove: named by the old manifest but no longer shipped,
    a module's other form (app.py when app.mpy ships: the .py would be imported instead, and
    main.mpy/boot.mpy when those ship as source), and '.part' leftovers of an interrupted copy.
    Only .py / .mpy (and their .part) in the root, never PROTECTED data."""
    ship = set(bundle.files)
    cands = set(n for n in old_names if isinstance(n, str))
    for n in ship:
        base, ext = n.rsplit(".", 1)
        cands.add(base + (".py" if ext == "mpy" else ".mpy"))
        cands.add(n + ".part")
    cands.add(MANIFEST + ".part")
    out = []
    for n in sorted(cands):
        if n in ship or n not in on_unit or "/" in n or n in PROTECTED:
            continue
        core = n[:-5] if n.endswith(".part") else n
        if core.endswith(".py") or core.endswith(".mpy") or core == MANIFEST:
            out.append(n)
    return out


def deploy(port=None, dry_run=False, reboot=True, src=None):
    """Deploy firmware/ (or src) to the unit on `port` -> Result. Raises IontoError."""
    t0 = time.monotonic()
    with link.Link.open(port) as u:
        r = Result(u.port)
        r.dry_run = dry_run
        wait_idle(u)
        u.enter(listen_s=0)  # just listened: a treatment started since is refused by enter itself
        # The names do not depend on the unit's .mpy version: one round trip asks for it and
        # hashes what is there, before compiling.
        names = mpy_build.deployed_names(src) if src else mpy_build.deployed_names()
        r.mpy, on_unit, have = _survey(u, names)
        bundle = mpy_build.build(r.mpy, src=src) if src else mpy_build.build(r.mpy)
        r.version = bundle.version
        manifest_same = have.get("/" + MANIFEST) == _sha(bundle.manifest_text)
        old_names = []
        if manifest_same:
            # The unit's manifest is, byte for byte, the one just built: nothing to read back.
            old_names = list(bundle.manifest["files"])
            r.old_version = bundle.version
        elif MANIFEST in on_unit:
            try:
                old = json.loads(u.read_file("/" + MANIFEST).decode())
                old_names = list(old.get("files", {}))
                r.old_version = old.get("version")
            except (ValueError, AttributeError, IontoError):
                pass  # unreadable: the stale-file rules still apply to the module names
        for n in names:
            if have.get("/" + n) == bundle.sha256(n):
                r.unchanged.append(n)
                r.bytes_unchanged += len(bundle.files[n])
            else:
                r.copied.append(n)
                r.bytes_copied += len(bundle.files[n])
        r.removed = stale_names(on_unit, bundle, old_names)
        if dry_run:
            r.seconds = time.monotonic() - t0
            return r
        if not r.copied and not r.removed and manifest_same:
            # Up to date: every file and the manifest hash as built, which is what the unit's
            # boot check verifies. Nothing to write, no reboot; leaving the raw REPL soft-resets
            # the unit so its application runs again.
            r.integrity = (True, "firmware %s intact (%d files)" % (bundle.version, len(names)))
            r.reported = bundle.version
            r.seconds = time.monotonic() - t0
            return r
        from .interrupt import work

        work.doing("copying %d firmware file%s and the manifest" % (len(r.copied), "" if len(r.copied) == 1 else "s"))
        work.undone("the firmware on the unit may be incomplete (its self-test then refuses treatment): run "
                    "ionto flash again")
        total = r.bytes_copied + len(bundle.manifest_text)
        prog = link.Progress(total, "flash %s" % os.path.basename(u.port))
        try:
            # Several files per REPL round trip, each checked before any is renamed into place.
            u.write_files([("/" + n, bundle.files[n]) for n in r.copied], progress=prog)
            # Before the manifest (a stale app.py must not outlive it), all in one round trip.
            u.remove_files(["/" + n for n in r.removed])
            u.write_file("/" + MANIFEST, bundle.manifest_text, progress=lambda k: prog(r.bytes_copied + k))
        finally:
            prog.close()
        # Verify: every file written was read back on the unit (size, CRC32) before its rename;
        # the unit's own boot check now hashes every file against the manifest just written
        # (which the host built from these very bytes), so nothing is hashed twice.
        work.doing("verifying the firmware on the unit")
        r.integrity = _unit_integrity(u)
        if r.integrity[0]:
            work.did("firmware %s copied and verified" % bundle.version)
            work.undone(None)
        if not r.integrity[0]:
            raise IontoError(EXIT_FIRMWARE, "the unit's own integrity check fails after copying: %s; run ionto flash "
                             "again" % r.integrity[1])
        if "log" in on_unit:
            r.logged = _note(u, "ionto flash %s -> %s: %d copied, %d removed" % (
                r.old_version or "none", bundle.version, len(r.copied), len(r.removed)))
        else:  # a new unit: its event log starts at its first boot, with this version in it
            r.logged = "starts at the unit's first boot"
        if reboot:
            _reboot_and_confirm(u, r)
    r.seconds = time.monotonic() - t0
    return r


def _unit_integrity(u):
    """The unit's boot check (firmware/integrity.py, now on its flash) -> (ok, words)."""
    v = u.eval("__import__('integrity').check('/')")
    return bool(v[0]), str(v[1])


def _note(u, text):
    """The deployment into the unit's event log (hostcmd.event_text), if its firmware offers it.
    The unit itself logs the version change at its next boot."""
    try:
        u.hostcmd("event_text", "host", text)
        return True
    except IontoError as e:
        return "not updated (%s)" % e.message


def _reboot_and_confirm(u, r):
    u.reboot(wait=REBOOT_WAIT_S)  # listens until @ST and @ID came, or the time is up
    r.rebooted = True
    said = (u.identity or {}).get("version")
    if said not in (None, "?"):
        r.reported = said
    else:
        # No @ID line, or one without a version (older firmware): ask at the REPL; leaving
        # soft-resets the unit into main.py again.
        wait_idle(u)
        u.enter(listen_s=0)
        info = u.hostcmd("info")
        r.reported = info.get("version")
        integ = info.get("integrity") or [False, "?"]
        r.integrity = (bool(integ[0]), str(integ[1]))
    if r.reported != r.version:
        raise IontoError(EXIT_FIRMWARE, "after its reboot the unit on %s reports firmware %s, not %s: run ionto "
                         "flash again; if it persists, see the technician guide" % (u.port, r.reported, r.version))


def summary(r):
    from .texttable import table

    def names(lst):
        s = ", ".join(lst[:6])
        return s + (" (+%d more)" % (len(lst) - 6) if len(lst) > 6 else "")

    verb = "would be " if r.dry_run else ""
    rows = [(verb + "copied", len(r.copied), r.bytes_copied, names(r.copied)),
            ("unchanged", len(r.unchanged), r.bytes_unchanged, ""),
            (verb + "removed", len(r.removed), "", names(r.removed))]
    out = [table(rows, ("files", "count", "bytes", "names"))]
    ver, sub, arch = mpy_build.decode(r.mpy)
    head = "firmware %s (.mpy %s) on %s" % (r.version, mpy_build.version_text(ver, sub), r.port)
    if r.dry_run:
        out.append(head + ": dry run, nothing written")
    elif not r.copied and not r.removed and not r.rebooted:
        out.append(head + ": already up to date%s" % (", integrity ok" if r.integrity and r.integrity[0] else ""))
    else:
        parts = [head, "verified"]
        if r.rebooted:
            parts.append("unit reports %s after reboot" % r.reported)
        else:
            parts.append("runs at the unit's next reset")
        if r.logged is not None:
            parts.append("event log %s" % ("noted" if r.logged is True else r.logged))
        out.append("; ".join(parts))
    return "\n".join(out)
