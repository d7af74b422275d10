"""The unit server: the host process behind `ionto sim`, serving the virtual unit on a
pseudo-terminal as a Pico appears over USB.

    ionto sim [--state-dir .sim] [--scenario palms] [--accel 1] [--fresh] [--seed-from DIR | --no-seed]

The server (this package, CPython) owns everything that outlives one run of the unit:

- STATE/flash.img   the unit's flash (1408 KiB LittleFS2), kept across restarts and runs
- STATE/port        the pseudo-terminal's path (also printed); STATE/tty links to it
- STATE/control.sock  the control channel (below); STATE/ctl-in, STATE/ctl-out the FIFOs
                    that relay it to the unit; STATE/unit.log the unit's stderr and our log

It runs `micropython hw/sim/unit.py` (MICROPYPATH=hw/sim:firmware) with its stdin/stdout on
pipes and forwards between them and the pty without ever blocking the unit: output nobody
reads piles up to _HOST_BUF_MAX and then the oldest is dropped, as USB CDC drops it. When the
unit resets it is started again with the matching reset cause (see hw/sim/unit.py):
SIGUSR1 (machine.reset(), watchdog) -> WDT_RESET 3; SIGUSR2 (power cut) -> PWRON_RESET 1;
SIGALRM (machine.bootloader()) -> stays off until power_cycle; anything else (a crash) ->
PWRON_RESET after a pause, and after _CRASH_LIMIT quick crashes it stays off.

Control channel: AF_UNIX stream socket, JSON lines, one reply line per request, in order.
A request is an object with "cmd" (and optionally "id", echoed). Replies have "ok".
  handled here:   power_cycle (the supply goes off and on: the unit is killed mid-whatever,
                  flash writes included, and restarts with PWRON_RESET), status, stop,
                  unplug / replug (the USB cable: the host's port vanishes; replug makes a new
                  one, named in the reply and STATE/port), interrupt {"after", "dir", "action",
                  "pid", "signal"} (TEST-ONLY: a signal to a host process, or an unplug, at an
                  exact byte crossing the port)
  in the unit:    ping, accel {"x"}, eval {"expr"} / {"code"} [+ "scope": "sim"] (TEST-ONLY
                  backdoor: evaluates in the unit's __main__), flash {"worst_case"},
                  fault {"kind": "power_cut", "at": N} (the N-th block write/erase from now),
                  fault {"kind": "wdt_starve"} (the firmware's loop hangs at its next clock step)
  on the board:   press, hold, release, scenario, fault (i2c_nack, i2c_stuck, sensor_stuck,
                  sensor_frozen, sensor_gain, sensor_noise, sensor_drift, output_stuck_on,
                  output_dead), clear_faults, usb, state, frame
                  (see hw/sim/simboard.py Board.handle)
The board outlives the MCU: the scenario, board faults, usb and accel set over the channel
are replayed into the unit after every restart. ionto.simctl is the client.

Modules: server.py (UnitServer: the state folder, the select loop), unit_process.py (the
MicroPython process: start, reset causes, crashes), usb.py (the pseudo-terminal: plug, unplug,
the byte pumps), control.py (the control channel's requests and replies), registry.py (running
units for `ionto devices`), command.py (the `ionto sim` command).
"""
from .registry import register, registered, registry_dir  # noqa: F401


def __getattr__(name):
    # The server (and all it imports) when it is asked for: every command that looks for a unit
    # reads the registry, and only `ionto sim` runs a server.
    if name in ("UnitServer", "UnitServerError"):
        from . import server

        return getattr(server, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
