# boot.py: runs at every reset and soft reset (on rp2, a soft reset from the raw REPL runs
# boot.py but not main.py). It never starts a treatment and never arms the watchdog: it only
# makes the output safe, so a host session at the REPL finds the unit harmless.
try:
    import board  # importing the board module drives enable, setpoint and gate low

    board.make_safe()
except Exception as e:  # a broken firmware image must still leave the REPL reachable
    print("boot: output could not be made safe:", e)
