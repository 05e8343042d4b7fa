"""Numbers and tables in Markdown for the compare report: value ± standard error, unresolved
distances as upper bounds, and [width x depth] tables of summary cells."""

import numpy as np


def table(grid, cells, what: str) -> str:
    header = f"| {what} | " + " | ".join(f"L = {d}" for d in grid["depths"]) + " |\n"
    header += "|---|" + "---|" * len(grid["depths"]) + "\n"
    rows = [
        f"| n = {w} | " + " | ".join(cell_text(c) for c in row) + " |"
        for w, row in zip(grid["widths"], cells)
    ]
    return header + "\n".join(rows) + "\n"


def cell_text(cell) -> str:
    if cell is None:
        return "–"
    if "debiased" not in cell:
        return pm(cell["value"], cell["stderr"])
    if not cell["resolved"]:
        return f"< {num(cell['high'])} (not resolved)"
    return pm(cell["debiased"], cell["stderr"])


def pm(mean, se) -> str:
    if se is None or not np.isfinite(se):
        return num(mean)
    return f"{num(mean)} ± {se:.2g}"


def num(value) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.3g}"


def pct(value) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{100 * value:.3g}%"


def join(values) -> str:
    return ", ".join(str(v) for v in values)
