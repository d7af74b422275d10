"""Configuration on flash: atomic replace, the previous good file kept, every change reported.

    store = cfgstore.CfgStore("/")            # directory holding config.json (CPython: any dir)
    cfg, source, errors = store.load()        # at boot, before the self-test
    ok, errors, diff = store.save(new_cfg)    # host tools / technician; diff -> event log

Files (validation is config.py's; this module only stores):
- config.json  the configuration: config.py's JSON document on the first line, then a line
               "crc32 XXXXXXXX" over that JSON text. LittleFS checks its metadata, not file
               data: a flipped bit in a number could still be a valid but different value, so
               the CRC is what tells. A file without the CRC line (written by hand, e.g. with
               mpremote) is accepted on validation alone.
- config.bak   the previous good configuration, same format.
- config.tmp   a replacement being written (config.btm: the backup being written); never read.

save() first copies a valid current config.json to config.btm, renamed over config.bak; then
writes config.tmp, closes it, reads it back, and renames it over config.json. Nothing is
deleted first: at every instant config.json is wholly the old or wholly the new
configuration (LittleFS renames are atomic), which the power-cut test checks.

load() -> (cfg, source, errors):
- ("config.json", [])                 valid config.json.
- ("config.bak", [why, ...])          config.json invalid or unreadable, config.bak valid: the
                                      unit runs on the last good one (it passed the same
                                      validation, which only ever tightens the firmware's
                                      compile-time limits) and the display must say so (errors[0]).
- ("defaults", [])                    neither file exists: a new unit (no file ever written;
                                      save() never deletes, so absence means never).
- (None, "none", [why, ...])          a file exists but nothing valid: the unit refuses to treat;
                                      errors[0] is short words for the display.

Every save returns the diff against the configuration it replaces: a list of
(path, old, new) with paths like "presets[0].target_ua" and values as short JSON text ("-" for
absent). Pass on_change=fn to have fn(path, old, new) called per change (logstore.config_event).
"""
import json
import os
from binascii import crc32

import config

NAME = "config.json"
BAK = "config.bak"
TMP = "config.tmp"


BAK_TMP = "config.btm"


def _join(d, n):
    if not d or d == ".":
        return n
    return d + n if d.endswith("/") else d + "/" + n


def _exists(path):
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def encode(cfg):
    """cfg -> file contents (str)."""
    text = json.dumps(cfg)
    return "%s\ncrc32 %08x\n" % (text, crc32(text.encode()) & 0xFFFFFFFF)


def decode(data):
    """File contents (bytes or str) -> (cfg or None, errors). Never raises."""
    try:
        if isinstance(data, (bytes, bytearray)):
            data = bytes(data).decode()
    except Exception:
        return None, ["config: not UTF-8 text (damaged); allowed: the documented JSON"]
    lines = data.split("\n")
    text = lines[0]
    rest = [ln.strip() for ln in lines[1:] if ln.strip()]
    if rest:
        # Written by us: exactly one CRC line after the JSON.
        ok = len(rest) == 1 and rest[0].startswith("crc32 ") and len(rest[0]) == 14
        if ok:
            try:
                ok = int(rest[0][6:], 16) == crc32(text.encode()) & 0xFFFFFFFF
            except ValueError:
                ok = False
        if not ok:
            # A multi-line JSON file written by hand has no CRC line: accept it on validation.
            cfg, errs = config.parse(data)
            if cfg is not None:
                return cfg, []
            return None, ["config: checksum does not match (damaged file); allowed: a file saved by the unit or the host tool"]
    return config.parse(text)


def _flat(v, path, out):
    # Leaves of a configuration as path -> JSON text, for the change log.
    if type(v) is dict:
        for k in sorted(v):
            _flat(v[k], (path + "." if path else "") + str(k), out)
    elif type(v) is list and path == "presets":
        for i in range(len(v)):
            _flat(v[i], "%s[%d]" % (path, i), out)
    else:
        out[path] = json.dumps(v)


def diff(old, new):
    """[(path, old text, new text)] for every leaf that differs ('-' where absent)."""
    a = {}
    b = {}
    if old is not None:
        _flat(old, "", a)
    _flat(new, "", b)
    out = []
    for k in sorted(set(a) | set(b)):
        x = a.get(k, "-")
        y = b.get(k, "-")
        if x != y:
            out.append((k, x, y))
    return out


class CfgStore:
    def __init__(self, directory="/"):
        self.dir = directory
        self.path = _join(directory, NAME)
        self.bak = _join(directory, BAK)
        self.tmp = _join(directory, TMP)
        self.bak_tmp = _join(directory, BAK_TMP)
        self.current = None  # the configuration in force after load()/save()
        self.source = None

    def _read(self, path):
        # -> (cfg or None, errors, existed)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError:
            return None, [], False
        cfg, errs = decode(data)
        return cfg, errs, True

    def load(self):
        cfg, errs, had = self._read(self.path)
        if cfg is not None:
            self.current, self.source = cfg, NAME
            return cfg, NAME, []
        why = [(NAME + ": " + errs[0]) if errs else NAME + ": missing"] + errs[1:]
        bcfg, berrs, bhad = self._read(self.bak)
        if bcfg is not None:
            self.current, self.source = bcfg, BAK
            return bcfg, BAK, ["using the previous configuration (config.bak): " + why[0]] + why[1:]
        if not had and not bhad:
            self.current, self.source = config.defaults(), "defaults"
            return self.current, "defaults", []
        self.current, self.source = None, "none"
        if bhad:
            why.append(BAK + ": " + (berrs[0] if berrs else "unreadable"))
        return None, "none", ["no valid configuration: " + why[0]] + why[1:]

    def _write(self, path, text):
        f = open(path, "wb")
        try:
            f.write(text.encode() if isinstance(text, str) else text)
        finally:
            f.close()

    def save(self, cfg, on_change=None):
        """Validate and store cfg atomically. Returns (ok, errors, diff). Raises only OSError
        from the filesystem (flash full, damaged): then config.json is still the old one."""
        ok, errors = config.validate(cfg)
        if not ok:
            return False, errors, []
        old = self.current
        if old is None:
            old_cfg, _s, _e = self.load()
            old = old_cfg
        # Keep the configuration being replaced as config.bak (only if it is valid).
        cur, _e, had = self._read(self.path)
        if had and cur is not None:
            self._write(self.bak_tmp, encode(cur))
            os.rename(self.bak_tmp, self.bak)
        self._write(self.tmp, encode(cfg))
        # Read back before it goes live: a write the flash did not keep is caught here.
        got, errs, _had = self._read(self.tmp)
        if got is None or got != cfg:
            return False, ["config: written file does not read back (%s)" % (errs[0] if errs else "differs")], []
        os.rename(self.tmp, self.path)
        d = diff(old if old is not None else None, cfg)
        self.current, self.source = cfg, NAME
        if on_change is not None:
            for path, a, b in d:
                on_change(path, a, b)
        return True, [], d
