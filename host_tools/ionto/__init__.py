"""ionto: host tools for the iontophoresis controller (flash, configure, logs, virtual unit)."""
__version__ = "0.1.0"
