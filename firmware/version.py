# The firmware version the unit reports (ionto status, the session log, the boot screen).
VERSION = "0.1.0"
