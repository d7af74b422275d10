"""`ionto clock sync`: set the unit's RTC from the host clock (UTC).

    ionto clock sync [--port P] [--json]

The RTC is not battery-backed: it restarts at 2021-01-01 on every power-up, and until a host
sets it the unit's records carry seconds since boot (RTC-valid flag clear). The time goes
through firmware/hostcmd.clock_set, which also writes the clock-set event (old and new time)
into the unit's event log. The offset (unit minus host) is reported before and after, in
whole seconds: the RTC counts whole seconds. Refuses while a treatment runs (exit 5, nothing
sent), like every command that needs the unit's REPL.
"""
import json
import time

from . import link, words

_UNIT_TIME = "import time, json\nprint(json.dumps(time.time()))"


# The unit's times in words: the tools' one vocabulary (words.py).
fmt_utc = words.utc
fmt_offset = words.offset


def unit_time(u):
    """(unit time, unit minus host in s) read at the unit's REPL."""
    t0 = time.time()
    ut = link._last_json(u.exec(_UNIT_TIME), "time.time()")
    t1 = time.time()
    # The unit's integer second was read somewhere in [t0, t1]: compare with the midpoint.
    return ut, int(round(ut - (t0 + t1) / 2.0))


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sp = sub.add_parser("sync", help="set the unit's clock (RTC) from this computer's clock, in UTC")
    sp.add_argument("--port", help="the unit's serial port (default: IONTO_PORT, else the only unit connected)")
    sp.add_argument("--json", action="store_true", help="print JSON")


def run(args):
    port = link.resolve_port(args.port)
    with link.Link.open(port) as u:
        from .interrupt import work

        work.doing("setting the unit's clock")
        work.undone("the unit's clock may be unchanged: `ionto clock sync` again")
        u.enter()  # refuses (exit 5) while a treatment runs, without sending anything
        before, off_before = unit_time(u)
        # The RTC takes whole seconds: set it at the host's turn of a second.
        time.sleep(1.0 - time.time() % 1.0)
        r = u.hostcmd("clock_set", int(round(time.time())))
        work.did("clock set")
        work.undone(None)
        after, off_after = unit_time(u)
    d = {"port": port, "before": before, "offset_before_s": off_before, "set": r.get("new"),
         "after": after, "offset_after_s": off_after}
    if args.json:
        print(json.dumps(d))
        return 0
    print("unit on %s: clock was %s (%s)" % (port, fmt_utc(before), fmt_offset(off_before)))
    print("set to the host's UTC time: now %s (%s; the RTC counts whole seconds); recorded in its event log"
          % (fmt_utc(after), fmt_offset(off_after)))
    return 0
