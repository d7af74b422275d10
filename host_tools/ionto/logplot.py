"""One archived session as a PNG (or PDF, SVG...: the file name's ending chooses) (matplotlib, Agg: no display needed): set and actual current,
electrode voltage and load over the session's seconds, with pauses shaded and faults and
polarity changes marked on every panel.

    plot_session("s3.png", samples, events, "unit X session 3")
    # samples: (t_s, set_ua, actual_ua, mv, load_ohm, state, polarity), events: (t_s, code, name, a, b)
"""
# The formats the file name's ending may ask for (matplotlib's Agg canvas writes them all).
FORMATS = ("png", "pdf", "svg", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")

WIDTH_PX = 1200
HEIGHT_PX = 900
DPI = 100


def _spans(ts, flags):
    """Contiguous runs of seconds where flags is true -> [(start, end)] (end exclusive)."""
    out = []
    start = None
    prev = None
    for t, f in zip(ts, flags):
        if f and start is None:
            start = t
        elif start is not None and (not f or t != prev + 1):
            out.append((start, prev + 1))
            start = t if f else None
        prev = t
    if start is not None:
        out.append((start, prev + 1))
    return out


def format_for(path):
    """'s3.pdf' -> 'pdf'; a name without a known ending -> None."""
    import os

    ext = os.path.splitext(str(path))[1].lower().lstrip(".")
    return ext if ext in FORMATS else None


def plot_session(path, samples, events, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .fw import firmware
    from .words import event_words, fault_name

    S = firmware("session")
    ts = [s[0] for s in samples]
    fig, (a1, a2, a3) = plt.subplots(3, 1, sharex=True, figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    try:
        a1.plot(ts, [s[1] / 1000.0 for s in samples], label="set", color="tab:blue", drawstyle="steps-post")
        a1.plot(ts, [s[2] / 1000.0 for s in samples], label="actual", color="tab:orange")
        a1.set_ylabel("current (mA)")
        a2.plot(ts, [None if s[3] is None else s[3] / 1000.0 for s in samples], color="tab:green")
        a2.set_ylabel("electrode voltage (V)")
        a3.plot(ts, [None if s[4] is None else s[4] / 1000.0 for s in samples], color="tab:purple")
        a3.set_ylabel("load (kOhm)")
        # With a hand out of the water the load reads as an open circuit (hundreds of kOhm):
        # scale to the loads seen while in contact so the skin's few kOhm stay readable.
        contact = sorted(s[4] for s in samples if s[4] is not None and s[5] != S.PAUSED and s[2] > 500)
        if contact:
            a3.set_ylim(0, contact[len(contact) * 98 // 100] / 1000.0 * 1.3)
        a3.set_xlabel("session time (s)")
        paused = _spans(ts, [s[5] == S.PAUSED for s in samples])
        for ax in (a1, a2, a3):
            for i, (t0, t1) in enumerate(paused):
                ax.axvspan(t0, t1, color="0.85", label="paused" if (ax is a1 and i == 0) else None)
            ax.grid(True, alpha=0.3)
        # Polarity changes: from the events, else from the samples' polarity bit.
        rev = [e[0] for e in events if e[1] == S.EV_REVERSE]
        if not rev:
            rev = [samples[i][0] for i in range(1, len(samples)) if samples[i][6] != samples[i - 1][6]]
        for j, t in enumerate(rev):
            for ax in (a1, a2, a3):
                ax.axvline(t, color="tab:cyan", linestyle="--", label="polarity change" if (ax is a1 and j == 0) else None)
        faults = [e for e in events if e[1] == S.EV_FAULT]
        for j, e in enumerate(faults):
            for ax in (a1, a2, a3):
                ax.axvline(e[0], color="red", linewidth=1.5, label="fault" if (ax is a1 and j == 0) else None)
            a1.annotate(fault_name(e[3]), (e[0], 1.0), xycoords=("data", "axes fraction"), color="red",
                        rotation=90, va="top", ha="right", fontsize=8)
        for e in events:
            if e[1] == S.EV_END:
                a1.set_title((title + "\n" if title else "") + event_words(e[1], e[3], e[4]), fontsize=10)
                break
        else:
            a1.set_title(title, fontsize=10)
        a1.legend(loc="upper right", fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI, format=format_for(path) or "png")
    finally:
        plt.close(fig)
