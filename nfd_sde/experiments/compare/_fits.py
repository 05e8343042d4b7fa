"""Rate fits of a comparison's summary: bias and fluctuation against width n at each depth, the
depth error against L at each width and in the limit, the gap against L, each a
`solvers.fit_loglog` fit weighted by the points' standard errors, with its 95% interval.

A point enters a fit only when it is resolved (its 95% interval excludes 0) and finite; the
others are listed under `excluded` with the reason ("not resolved, below X", "diverged or
undefined"). Every fit carries the `caveats` of the shared evidence rule (`_evidence`): a rate
from fewer than three resolved sizes, an interval that excludes the expected exponent. A fit
whose interval contains 0 carries `budget_factor`: about how many times the
seeds (standard errors shrink like 1/sqrt(seeds)) would make its interval exclude 0.
"""

import math
from typing import Any

import numpy as np

from solvers import fit_loglog

from ..common import rate_caveats
from ._modes import tends_to_the_limit

EXPECTED = {"bias": -1.0, "fluctuation": -0.5, "depth": -1.0}


def fit_rates(grid: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Every fit, and `headline`: the decoupled bias vs n at the largest L, the decoupled depth
    error vs L at the largest n, and the gap's infinite-width values."""
    widths, depths = grid["widths"], grid["depths"]
    fits: dict[str, Any] = {}
    for mode in grid["modes"]:
        bias, fluct, depth = (summary[name][mode] for name in ("bias", "fluctuation", "depth"))
        # the standard network tends to the gap, not to the NFD: no expected rate for its bias
        quantity = "bias" if tends_to_the_limit(mode) else "bias (standard)"
        fits[f"bias_{mode}"] = [
            _fit(widths, [row[j] for row in bias], quantity, depth=d) for j, d in enumerate(depths)
        ]
        fits[f"fluctuation_{mode}"] = [
            _fit(widths, [row[j] for row in fluct], "fluctuation", depth=d)
            for j, d in enumerate(depths)
        ]
        fits[f"depth_{mode}"] = [
            _fit(depths, depth[i], "depth", width=w) for i, w in enumerate(widths)
        ]
    if summary.get("depth_limit") is not None:
        fits["depth_limit"] = _fit(depths, summary["depth_limit"], "depth", width="infinity")
    if "gap" in summary:
        fits["gap_vs_depth"] = [
            _fit(depths, row, "gap", width=w) for row, w in zip(summary["gap"], widths)
        ]
        fits["gap_infinite_width_vs_depth"] = _fit(
            depths, summary["gap_infinite_width"], "gap", width="infinity"
        )
    fits["headline"] = {
        "bias": fits["bias_decoupled"][-1] if "bias_decoupled" in fits else None,
        "depth": fits["depth_decoupled"][-1] if "depth_decoupled" in fits else None,
        "depth_limit": fits.get("depth_limit"),
    }
    return fits


def _fit(sizes, cells, quantity: str, **fixed) -> dict[str, Any]:
    """A weighted log-log fit of the resolved cells; always a dict (slope None when < 2 points)."""
    used, excluded = [], []
    for size, cell in zip(sizes, cells):
        reason = _exclusion(cell, quantity)
        if reason is None:
            value = cell["debiased"] if "debiased" in cell else cell["value"]
            used.append((size, value, cell["stderr"]))
        elif cell is not None or quantity != "depth":  # no reference at a depth is not news
            excluded.append({"size": size, "reason": reason})
    out: dict[str, Any] = {
        "quantity": quantity,
        "expected": EXPECTED.get(quantity),
        "sizes": [u[0] for u in used],
        "values": [u[1] for u in used],
        "stderrs": [u[2] for u in used],
        "excluded": excluded,
        "slope": None,
        "stderr": None,
        "ci95": None,
        "prefactor": None,
        "reduced_chi2": None,
        "budget_factor": None,
        "caveats": [],
        **fixed,
    }
    if len(used) < 2:
        return out
    fit = fit_loglog(out["sizes"], out["values"], stderrs=out["stderrs"])
    out |= {
        "slope": fit.slope,
        "stderr": fit.slope_stderr,
        "ci95": list(fit.ci95),
        "prefactor": fit.prefactor,
        "reduced_chi2": fit.reduced_chi2,
    }
    if fit.ci95[0] <= 0 <= fit.ci95[1] and fit.slope != 0:
        out["budget_factor"] = max((1.96 * fit.slope_stderr / abs(fit.slope)) ** 2, 1.0)
    out["caveats"] = rate_caveats(out, "L" if quantity == "depth" else "n")
    return out


def _exclusion(cell, quantity: str) -> str | None:
    if cell is None:
        return "diverged or undefined"
    value = cell.get("debiased", cell.get("value"))
    se = cell.get("stderr")
    if not (_finite(value) and _finite(se) and value > 0 and se > 0):
        if "high" in cell and _finite(cell["high"]):
            return f"not resolved, below {cell['high']:.3g}"
        return "not resolved"
    if "resolved" in cell and not cell["resolved"]:
        return f"not resolved, below {cell['high']:.3g}"
    return None


def _finite(value) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(value)


def expected_line(fit: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """The expected power law through the fit's geometric-mean point (for figures)."""
    if fit is None or fit.get("expected") is None or len(fit["sizes"]) < 1:
        return None
    sizes = np.asarray(fit["sizes"], dtype=float)
    values = np.asarray(fit["values"], dtype=float)
    x0, y0 = np.exp(np.mean(np.log(sizes))), np.exp(np.mean(np.log(values)))
    x = np.geomspace(sizes.min(), sizes.max(), 20)
    return x, y0 * (x / x0) ** fit["expected"]
