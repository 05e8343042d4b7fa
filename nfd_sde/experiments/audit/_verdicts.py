"""The audit's verdicts and the rules that reach them from 95% intervals, stated in words once
(the report prints the same words it applies), and the figures' PNG encoding."""

import base64
import io
import math
from statistics import NormalDist

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

# the claims import the verdicts and the rate rule from here, next to `verdict`
from ..common import FAILS, HOLDS, INCONCLUSIVE, RATE_RULE, VERDICTS, rate_outcome  # noqa: F401


def verdict(outcome: str, reason: str) -> dict[str, str]:
    if outcome not in VERDICTS:
        raise ValueError(f"verdict {outcome!r} is not one of {VERDICTS}")
    return {"verdict": outcome, "reason": reason}


def rate_verdict(fit: dict | None, expected: float, what: str) -> dict[str, str]:
    """`RATE_RULE` (`_evidence`, shared with `compare` and `demo`) for one fit with `ci95`."""
    return verdict(*rate_outcome(fit, expected, what))


def combine(parts: list[dict[str, str]]) -> dict[str, str]:
    """All parts hold: holds; any part fails: fails; otherwise inconclusive."""
    outcomes = [p["verdict"] for p in parts]
    reason = "; ".join(p["reason"] for p in parts)
    if outcomes and all(o == HOLDS for o in outcomes):
        return verdict(HOLDS, reason)
    if FAILS in outcomes:
        return verdict(FAILS, reason)
    return verdict(INCONCLUSIVE, reason)


def bonferroni_z(count: int) -> float:
    """The two-sided 95% normal quantile for `count` simultaneous comparisons."""
    return NormalDist().inv_cdf(1 - 0.025 / max(count, 1))


def fit_line(x, y, stderrs=None) -> dict[str, float] | None:
    """Weighted least squares y = a + b x with the slope's 95% interval (+- t quantile x
    standard error from the residuals, the same Birge-scaled rule as `solvers.fit_loglog`)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    w = np.ones_like(y) if stderrs is None else 1.0 / np.square(np.asarray(stderrs, float))
    ok &= np.isfinite(w) & (w > 0)
    x, y, w = x[ok], y[ok], w[ok]
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    design = np.stack([np.ones_like(x), x], axis=1)
    return linear_fit(design, y, w, names=("intercept", "slope"))


def linear_fit(design, y, weights, *, names) -> dict[str, float]:
    """Weighted least squares with 95% intervals on every coefficient: covariance (X'WX)^-1
    scaled by the reduced chi^2 when it exceeds 1 (the points scatter more than their errors)."""
    design, y, weights = (np.asarray(a, float) for a in (design, y, weights))
    normal = design.T @ (weights[:, None] * design)
    cov = np.linalg.pinv(normal)
    coef = cov @ design.T @ (weights * y)
    dof = len(y) - design.shape[1]
    chi2 = float(np.sum(weights * (y - design @ coef) ** 2))
    scale = max(chi2 / dof, 1.0) if dof > 0 else 1.0
    se = np.sqrt(np.diag(cov) * scale)
    out = {"points": len(y), "reduced_chi2": chi2 / dof if dof > 0 else math.nan}
    for name, c, s in zip(names, coef, se):
        out[name] = float(c)
        out[f"{name}_stderr"] = float(s)
        out[f"{name}_ci95"] = [float(c - 1.96 * s), float(c + 1.96 * s)]
    out["ci95"] = out[f"{names[-1]}_ci95"]
    return out


def size_axis(ax: Axes, sizes) -> None:
    """A log x axis labelled with the sizes themselves (widths, depths), no minor labels."""
    ax.set_xscale("log")
    ax.set_xticks([float(s) for s in sizes], [f"{s:g}" for s in sizes])
    ax.xaxis.set_minor_formatter(NullFormatter())


def short_origin(origin: str) -> str:
    """The data's name without its details: 'scikit-learn digits (data.seed=1): ...' -> the
    part before the first parenthesis."""
    return origin.split(" (")[0].split(":")[0]


def png_base64(figure: Figure) -> str:
    """The figure as a base64 PNG (150 dpi), for embedding in HTML and Markdown."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=150, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
