"""Plain aligned text tables, as every command prints them (a module of its own: light to import)."""


def table(rows, headers):
    """Plain aligned text for a list of row tuples (numbers right-aligned)."""
    rows = [["" if v is None else str(v) for v in r] for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        for i, v in enumerate(r):
            widths[i] = max(widths[i], len(v))
    numeric = [all(_num(r[i]) for r in rows if r[i] != "") and rows for i in range(len(headers))]
    out = ["  ".join(h.ljust(w) if not numeric[i] else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(v.rjust(w) if numeric[i] else v.ljust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(line.rstrip() for line in out)


def _num(s):
    try:
        float(s)
        return True
    except ValueError:
        return False
