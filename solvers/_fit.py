"""Log-log rate fits with confidence intervals (convergence orders, scaling exponents)."""

import dataclasses
import math

import numpy as np

# two-sided 95% Student-t quantiles by degrees of freedom (1..30); normal beyond
_T95 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t95(dof: int) -> float:
    """The two-sided 95% Student-t quantile for `dof` degrees of freedom (normal beyond 30)."""
    if dof < 1:
        return math.inf
    return _T95[dof - 1] if dof <= len(_T95) else 1.96


@dataclasses.dataclass(frozen=True)
class RateFit:
    """`error ~ prefactor * size^slope`, with the slope's standard error and 95% interval."""

    slope: float
    intercept: float
    slope_stderr: float
    ci95: tuple[float, float]
    points: int

    @property
    def prefactor(self) -> float:
        return math.exp(self.intercept)


def fit_loglog(sizes, errors, weights=None) -> RateFit:
    """Least-squares fit of log(error) = intercept + slope * log(size).

    `weights` (optional) are inverse variances of log(error), e.g. (error / stderr)^2. With two
    points the slope is exact and its interval is infinite.
    """
    x = np.log(np.asarray(sizes, dtype=float))
    y = np.log(np.asarray(errors, dtype=float))
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("sizes and errors must be 1-D arrays of the same length")
    if len(x) < 2:
        raise ValueError("a rate fit needs at least two sizes")
    if not np.all(np.isfinite(y)):
        raise ValueError("errors must be positive and finite for a log-log fit")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=float)
    design = np.stack([np.ones_like(x), x], axis=1)
    gram = design.T @ (w[:, None] * design)
    coef = np.linalg.solve(gram, design.T @ (w * y))
    dof = len(x) - 2
    if dof == 0:
        return RateFit(float(coef[1]), float(coef[0]), math.inf, (-math.inf, math.inf), len(x))
    resid = y - design @ coef
    sigma2 = float(w @ resid**2) / dof
    stderr = math.sqrt(sigma2 * np.linalg.inv(gram)[1, 1])
    q = t95(dof)
    return RateFit(
        float(coef[1]), float(coef[0]), stderr, (coef[1] - q * stderr, coef[1] + q * stderr), len(x)
    )
