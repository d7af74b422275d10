"""`ionto config`: the unit's configuration, validated with the firmware's own code.

    ionto config show [--port P] [--json]      what the unit runs on, and from which file
    ionto config get KEY [--port P]            one value (JSON; strings bare)
    ionto config set KEY VALUE [--yes]         pull, change, validate, show the diff, confirm, push
    ionto config pull [-o FILE]                the document as JSON (stdout, or FILE)
    ionto config push FILE [--yes]             validate, show the diff, confirm, save on the unit
    ionto config validate FILE                 on the host only; nothing is sent

Validation is firmware/config.py itself (imported from the firmware directory, never copied),
and the diff is cfgstore.diff, the same one the unit writes into its event log. The unit
validates again in hostcmd.config_put and saves atomically (cfgstore), logging each change as
old -> new. Nothing is sent when the host finds the configuration invalid, or when it would
change nothing.

KEY paths: dots between keys; a preset by index or by name, with brackets or a dot:
    default_preset   isolated_usb   presets[0].target_ua   presets.hands_feet.target_ua
    presets[armpits].pulsed   presets[1].pulsed.freq_hz
The canonical form (shown in diffs and the unit's event log) is cfgstore's, presets[N].key.
VALUE is JSON when it parses as JSON (15000, true, false, {"freq_hz": 1000, "duty_pct": 50}),
else a plain string (`ionto config set default_preset feet`). Presets are added, removed or
reordered with pull, edit, push.

Exit codes: 2 bad arguments, unreadable file or not JSON; 8 invalid configuration (host or
unit); 11 no such key; 5 a treatment is running (nothing sent); 3/4/6 device errors.
"""
import json
import re
import sys
from pathlib import Path

from . import outfile, words
from .errors import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_UNIT, EXIT_USAGE, IontoError
from .fw import FIRMWARE, firmware  # noqa: F401  (firmware: the one loader, used by other modules too)

_SHOW_ERRORS = 3  # problems named in the one-line error


# --- host-side validation ---------------------------------------------------------------
def problems_line(errors, what="invalid configuration", rest="`ionto config validate FILE` lists them all"):
    n = len(errors)
    shown = "; ".join(errors[:_SHOW_ERRORS])
    more = " (and %d more: %s)" % (n - _SHOW_ERRORS, rest) if n > _SHOW_ERRORS else ""
    return "%s, %d problem%s: %s%s" % (what, n, "" if n == 1 else "s", shown, more)


def load_file(path):
    """Read and validate a configuration file -> (cfg, errors). JSON as the technician writes
    it, or a file saved by the unit (JSON line + crc32 line). Unreadable or not JSON ->
    IontoError(EXIT_USAGE)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise IontoError(EXIT_USAGE, "cannot read %s: %s" % (path, e.strerror or e))
    except UnicodeDecodeError:
        raise IontoError(EXIT_USAGE, "%s is not UTF-8 text: give a JSON configuration file" % path)
    try:
        cfg = json.loads(text)
    except RecursionError:
        raise IontoError(EXIT_USAGE, "%s is nested too deeply to be a configuration (a configuration is a few "
                         "levels deep): fix the file (`ionto config pull -o FILE` gives a good start)" % path)
    except ValueError as e:
        # A config.json copied off a unit: its JSON line, then the crc32 line.
        try:
            json.loads(text.split("\n", 1)[0])
        except ValueError:
            raise IontoError(EXIT_USAGE, "%s is not valid JSON (%s): fix the file (`ionto config pull -o FILE` "
                             "gives a good start)" % (path, e))
        cfg, errs = firmware("cfgstore").decode(text)
        if cfg is None and errs and "checksum" in errs[0]:
            raise IontoError(EXIT_USAGE, "%s: its crc32 line does not match its JSON (damaged, or edited without "
                             "removing that line): remove the crc32 line after editing" % path)
        return cfg, errs
    ok, errors = firmware("config").validate(cfg)
    return (cfg if ok else None), errors


def validate_or_raise(cfg, where):
    ok, errors = firmware("config").validate(cfg)
    if not ok:
        raise IontoError(EXIT_CONFIG, problems_line(errors, "%s: invalid configuration" % where) + "; nothing sent")


def canonical(cfg):
    """The document with keys in the schema's order (the unit's json.dumps has none)."""
    C = firmware("config")

    def order(d, keys):
        out = {k: d[k] for k in keys if k in d}
        out.update((k, v) for k, v in d.items() if k not in out)
        return out

    if type(cfg) is not dict:
        return cfg
    out = order(cfg, C._TOP_KEYS)
    if type(out.get("presets")) is list:
        ps = []
        for p in out["presets"]:
            if type(p) is dict:
                p = order(p, C._PRESET_KEYS)
                if type(p.get("pulsed")) is dict:
                    p["pulsed"] = order(p["pulsed"], C._PULSE_KEYS)
            ps.append(p)
        out["presets"] = ps
    return out


def dumps(cfg):
    return json.dumps(canonical(cfg), indent=2) + "\n"


# --- key paths ----------------------------------------------------------------------------
_TOKEN = re.compile(r"\[([^\]]*)\]|\.?([^.\[\]]+)")


def split_key(key):
    """'presets[0].target_ua' / 'presets.hands_feet.target_ua' -> ['presets', '0', 'target_ua']."""
    parts = []
    pos = 0
    key = key.strip()
    while pos < len(key):
        m = _TOKEN.match(key, pos)
        if m is None or m.end() == pos or (pos == 0 and key[0] == "."):
            raise IontoError(EXIT_USAGE, "bad key %r: write it like presets[0].target_ua or "
                             "presets.hands_feet.target_ua" % key)
        parts.append((m.group(1) if m.group(1) is not None else m.group(2)).strip())
        pos = m.end()
    if not parts or "" in parts:
        raise IontoError(EXIT_USAGE, "bad key %r: write it like presets[0].target_ua or presets.hands_feet.target_ua" % key)
    return parts


def resolve(cfg, key):
    """-> (container, index or key, canonical path) for KEY in cfg; IontoError(11) if absent."""
    parts = split_key(key)
    node = cfg
    path = ""
    cont = None
    last = None
    for i, part in enumerate(parts):
        if type(node) is list:
            idx = None
            if re.fullmatch(r"-?\d+", part):
                idx = int(part)
                if not 0 <= idx < len(node):
                    idx = None
            else:
                names = [p.get("name") if type(p) is dict else None for p in node]
                if part in names:
                    idx = names.index(part)
            if idx is None:
                names = ", ".join("%d %s" % (j, p.get("name")) for j, p in enumerate(node) if type(p) is dict)
                raise IontoError(EXIT_NOT_FOUND, "no preset %r in %s: the presets are %s" % (part, path, names or "none"))
            cont, last, node = node, idx, node[idx]
            path = "%s[%d]" % (path, idx)
        elif type(node) is dict:
            if part not in node:
                raise IontoError(EXIT_NOT_FOUND, "no key %r in %s: its keys are %s"
                                 % (part, path or "the configuration", ", ".join(node)))
            cont, last, node = node, part, node[part]
            path = (path + "." if path else "") + part
        else:
            raise IontoError(EXIT_NOT_FOUND, "%s is %s, which has no key %r" % (path, json.dumps(node), part))
    return cont, last, path


def get_value(cfg, key):
    cont, k, _path = resolve(cfg, key)
    return cont[k]


def parse_value(text):
    """VALUE on the command line: JSON if it parses, else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_value(cfg, key, value):
    """A changed deep copy of cfg and the canonical path of KEY."""
    new = json.loads(json.dumps(cfg))
    cont, k, path = resolve(new, key)
    cont[k] = value
    return new, path


def show_value(v):
    if isinstance(v, str):
        return v
    if isinstance(v, list):
        v = canonical({"presets": v})["presets"]
    elif isinstance(v, dict):
        v = canonical({"presets": [v]})["presets"][0] if "name" in v else canonical(v)
    return json.dumps(v)


# --- diff ----------------------------------------------------------------------------------
def diff(old, new):
    """cfgstore.diff: [(path, old JSON text, new JSON text)], '-' where absent."""
    return firmware("cfgstore").diff(old, new)


def format_diff(d, old_label="on the unit", new_label="new"):
    if not d:
        return "  (no change)"
    w = max(len(p) for p, _a, _b in d)
    lines = ["  %-*s  %s -> %s" % (w, "KEY", old_label, new_label)]
    for path, a, b in d:
        lines.append("  %-*s  %s -> %s" % (w, path, a, b))
    return "\n".join(lines)


# --- readable summary ------------------------------------------------------------------------
def presets_table(cfg):
    from .archive import table

    def cell(ua):
        return words.ma(ua if isinstance(ua, int) else None, unit=False, none="?")

    rows = []
    for p in cfg.get("presets", []):
        pu = p.get("pulsed")
        pulse = "%d Hz %d %%" % (pu.get("freq_hz", 0), pu.get("duty_pct", 0)) if isinstance(pu, dict) else "DC"
        mark = "*" if p.get("name") == cfg.get("default_preset") else ""
        rows.append((p.get("name", "?") + mark, cell(p.get("target_ua")), cell(p.get("ceiling_ua")),
                     "%g" % (p.get("duration_s", 0) / 60.0), "%s/%s" % (p.get("ramp_up_s"), p.get("ramp_down_s")),
                     "yes" if p.get("reverse") else "no", words.polarity(1 if p.get("polarity") else 0),
                     p.get("electrode_area_cm2"), pulse, cell(p.get("step_ua")), p.get("dose_cap_mamin")))
    return table(rows, ("PRESET", "TARGET mA", "CEILING mA", "MIN", "RAMP s", "REVERSE", "POLARITY", "AREA cm2",
                        "WAVE", "STEP mA", "DOSE CAP mA.min"))


SOURCE_WORDS = {
    "config.json": "config.json",
    "config.bak": "config.bak: the PREVIOUS configuration, because config.json is damaged or invalid "
                  "(push a good one to repair it)",
    "defaults": "the firmware's built-in defaults (no configuration saved on this unit yet)",
    "none": "NO valid configuration: the unit refuses to treat",
}


def describe(cfg, source, errors):
    lines = ["configuration from %s" % SOURCE_WORDS.get(source, source)]
    for e in errors or ():
        lines.append("  unit says: %s" % e)
    if cfg is not None:
        lines.append("default preset %s; USB isolated: %s; schema %s" % (
            cfg.get("default_preset"), "yes" if cfg.get("isolated_usb") else "no", cfg.get("schema")))
        lines.append(presets_table(cfg))
        lines.append("(* default preset; MIN: treatment minutes; RAMP s: up/down; POLARITY: the electrode that "
                     "starts positive, the anode)")
    return "\n".join(lines)


# --- the unit ---------------------------------------------------------------------------
def unit_config(u):
    """{"config", "source", "errors"} from the unit (enters its REPL: refuses while treating)."""
    return u.hostcmd("config_get")


def _need_cfg(got, port):
    if got.get("config") is None:
        raise IontoError(EXIT_CONFIG, "the unit on %s has no valid configuration (%s): push a complete one with "
                         "`ionto config push FILE`" % (port, "; ".join(got.get("errors") or ["?"])))
    return got["config"]


def confirm(question, yes):
    if yes:
        return True
    if not sys.stdin.isatty():
        raise IontoError(EXIT_USAGE, "not applied: no terminal to confirm on; add --yes to apply without asking")
    try:
        answer = input("%s [y/N] " % question)
    except EOFError:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def apply(u, port, new, got, yes, what, operator=None):
    """Show the diff of `new` against the unit's configuration `got`, confirm, save on the unit.
    Returns the exit code. `new` has passed the host's validation.

    The question is asked with the unit given back to its application (its buttons work while
    the technician thinks); after a yes the unit is taken again, and the save goes ahead only if
    its configuration is still the one the diff was shown against."""
    from . import link
    from .interrupt import work

    cur = got.get("config")
    source = got.get("source")
    d = diff(cur, new)
    if not d and source in ("config.json", "defaults"):
        print("no change: the unit on %s already has this configuration; nothing written" % port)
        return 0
    if source != "config.json":
        print("the unit on %s runs on %s" % (port, SOURCE_WORDS.get(source, source)))
    print("%s: %d change%s" % (what, len(d), "" if len(d) == 1 else "s"))
    print(format_diff(d))
    sys.stdout.flush()
    if not yes:
        work.doing("asking whether to apply")
        work.undone("the configuration on the unit is unchanged")
        u.close()  # the unit runs its application while we ask
        if not confirm("apply to the unit on %s?" % port, yes):
            print("not applied: nothing written")
            return 0
        with link.Link.open(port) as u2:
            again = unit_config(u2)
            if again.get("config") != cur or again.get("source") != source:
                raise IontoError(EXIT_CONFIG, "not applied: the configuration on the unit on %s changed while you "
                                 "were deciding; run the command again to see the new difference" % port)
            return _save(u2, port, new, cur, what, operator)
    return _save(u, port, new, cur, what, operator)


def _save(u, port, new, old, what, operator=None):
    """hostcmd.config_put with a deadline. If the unit restarts or stops answering mid-write
    (power lost), it is asked again afterwards which configuration it now has, and the line says
    whether it is the old or the new one."""
    from . import link
    from .interrupt import work

    work.doing("saving the configuration on the unit")
    work.undone("whether the unit has the old or the new configuration: `ionto config show` says")
    try:
        r = u.hostcmd("config_put", json.dumps(new))
    except IontoError as e:
        if u.gone:
            raise IontoError(e.code, "%s; it may have the old or the new configuration: `ionto config show` says "
                             "which once it is back" % e.message)
        if e.code != EXIT_UNIT:
            raise
        u.close()
        which = _which_config(link, port, new, old)
        raise IontoError(e.code, "%s; %s" % (e.message, which))
    if not r.get("ok"):
        work.undone(None)
        raise IontoError(EXIT_CONFIG, problems_line(r.get("errors") or ["?"], "the unit rejected the configuration")
                         + "; its configuration is unchanged")
    work.did("configuration saved on the unit")
    work.undone(None)
    n = len(r.get("diff") or [])
    # Who did it, beside the changes in the unit's own event log (`ionto logs events`).
    u.hostcmd("event_text", "host", "configuration %s by operator %s" % (what, operator or "? (no code given)"))
    print("saved on the unit on %s: %d change%s recorded in its event log%s" % (
        port, n, "" if n == 1 else "s", " with operator %s" % operator if operator else ""))
    return 0


def _which_config(link, port, new, old, wait_s=30.0):
    """After an interrupted save: which configuration the unit has now, in words."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            with link.Link.open(port) as u:
                if u.listen(min(8.0, max(1.0, deadline - time.monotonic())), min_st=1) is None:
                    raise IontoError(EXIT_UNIT, "no status line yet")
                now = unit_config(u).get("config")
            break
        except IontoError:
            if time.monotonic() > deadline:
                return "the unit does not answer now, so which configuration it has is unknown: `ionto config show` " \
                       "when it is back"
    if now == new:
        return "the NEW configuration is on the unit (saved before it stopped)"
    if now == old:
        return "the OLD configuration is still on the unit (nothing changed): push again"
    return "the unit now runs on another configuration: check it with `ionto config show`"


# --- the command ---------------------------------------------------------------------------
def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True

    def dev(sp):
        sp.add_argument("--port", help="the unit's serial port (default: IONTO_PORT, else the only unit connected)")
        return sp

    sp = dev(sub.add_parser("show", help="the unit's configuration as readable text (or --json)"))
    sp.add_argument("--json", action="store_true", help="print the raw JSON document")
    sp = dev(sub.add_parser("get", help="one value, e.g. presets[0].target_ua or presets.feet.duration_s"))
    sp.add_argument("key")
    sp = dev(sub.add_parser("set", help="change one value: validated, diff shown, confirmed, saved on the unit"))
    sp.add_argument("key")
    sp.add_argument("value", help="JSON (15000, true, {...}) or a plain string")
    sp.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    sp.add_argument("--operator", metavar="CODE", help="your staff code for the unit's event log (default: "
                    "$IONTO_OPERATOR), never a name")
    sp = dev(sub.add_parser("pull", help="the unit's configuration as a JSON file"))
    sp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    sp = dev(sub.add_parser("push", help="validate FILE, show the diff, confirm, save it on the unit"))
    sp.add_argument("file")
    sp.add_argument("--yes", "-y", action="store_true", help="apply without asking")
    sp.add_argument("--operator", metavar="CODE", help="your staff code for the unit's event log (default: "
                    "$IONTO_OPERATOR), never a name")
    sp = sub.add_parser("validate", help="check FILE with the firmware's own validation (nothing is sent)")
    sp.add_argument("file")


def run(args):
    if args.action == "validate":
        return _validate(args)
    if args.action == "push":
        # Host validation first: an invalid file never reaches the unit.
        new, errors = load_file(args.file)
        if new is None:
            raise IontoError(EXIT_CONFIG, problems_line(errors, "%s: invalid configuration" % args.file) + "; nothing sent")
    from . import link
    from .visits import operator_code

    operator = operator_code(getattr(args, "operator", None), required=False)
    port = link.resolve_port(args.port)
    with link.Link.open(port) as u:
        got = unit_config(u)
        if args.action == "show":
            if args.json:
                if got.get("config") is None:
                    _need_cfg(got, port)
                sys.stdout.write(dumps(got["config"]))
                return 0
            print(describe(got.get("config"), got.get("source"), got.get("errors")))
            _need_cfg(got, port)
            return 0
        if args.action == "pull":
            cfg = _need_cfg(got, port)
            if args.output:
                _write(args.output, dumps(cfg))
                print("wrote %s (the unit's configuration from %s)" % (args.output, got.get("source")))
            else:
                sys.stdout.write(dumps(cfg))
                if got.get("source") != "config.json":
                    sys.stderr.write("note: the unit runs on %s\n" % SOURCE_WORDS.get(got.get("source")))
            return 0
        if args.action == "get":
            cfg = _need_cfg(got, port)
            print(show_value(get_value(cfg, args.key)))
            return 0
        if args.action == "set":
            cfg = _need_cfg(got, port)
            value = parse_value(args.value)
            new, path = set_value(cfg, args.key, value)
            validate_or_raise(new, "%s = %s" % (path, json.dumps(value)))
            return apply(u, port, new, got, args.yes, "set %s" % path, operator)
        if args.action == "push":
            return apply(u, port, new, got, args.yes, "push %s" % args.file, operator)
    raise IontoError(EXIT_USAGE, "unknown action %r" % args.action)


def _validate(args):
    cfg, errors = load_file(args.file)
    if cfg is None:
        for e in errors:
            print(e)
        raise IontoError(EXIT_CONFIG, problems_line(errors, "%s: invalid configuration" % args.file, "listed above"))
    names = ", ".join(p["name"] for p in cfg["presets"])
    print("%s: valid configuration (schema %d; %d presets: %s; default %s)"
          % (args.file, cfg["schema"], len(cfg["presets"]), names, cfg["default_preset"]))
    return 0


def _write(path, text):
    outfile.write_text(path, text)
