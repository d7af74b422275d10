"""The words of the unit's event log: the codes of its T_EVENT and T_TEXT records (a and b as
noted) and the end reason of a session cut by power loss. Read by the host tools too
(logstore re-exports them: logstore.L_CLOCK is logcodes.L_CLOCK)."""
try:
    from micropython import const
except ImportError:

    def const(x):
        return x


END_POWER_LOST = const(100)  # end reason written at boot for a session cut by power loss

# Event-log codes (T_EVENT / T_TEXT); a, b as noted
L_BOOT = const(1)  # text: reset cause, firmware version
L_CONFIG = const(2)  # text: "path old -> new"
L_FAULT = const(3)  # a = fault code, b = uA at the trip
L_SELFTEST = const(4)  # a = 1 passed / 0 failed; text: the first failure
L_CLOCK = const(5)  # a = old time, b = new time (RTC set by the host)
L_FIRMWARE = const(6)  # text: old -> new version
L_PRUNED = const(7)  # a = session, b = 0 unarchived trace / 1 archived trace / 2 summary / 3 old events
L_LOST = const(8)  # a = records or samples lost, b = write errors
L_RECOVERED = const(9)  # a = session cut by power loss, b = samples on flash
L_REFUSED = const(10)  # a = blocking code, b = state
L_SESSION = const(11)  # a = session, b = end reason
L_HOST = const(12)  # text: what a host tool did (logs acknowledged, firmware deployed)
L_JOURNAL = const(13)  # text: the FRAM power-cut journal is missing or failing
LOG_NAMES = ("", "boot", "config", "fault", "selftest", "clock", "firmware", "pruned", "lost",
             "recovered", "refused", "session", "host", "journal")
