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
    reduced_chi2: float | None = None  # of a fit with known standard errors (`stderrs`)

    @property
    def prefactor(self) -> float:
        return math.exp(self.intercept)


def fit_loglog(sizes, errors, weights=None, *, stderrs=None) -> RateFit:
    """Least-squares fit of log(error) = intercept + slope * log(size).

    `weights` (optional) are inverse variances of log(error), e.g. (error / stderr)^2; the
    slope's standard error then still comes from the residuals. With two points the slope is
    exact and its interval is infinite.

    `stderrs` (optional, instead of `weights`) are the standard errors of `errors`: each point is
    weighted by the inverse variance of its log, (error / stderr)^2 to first order, and the
    slope's standard error comes from those known variances, scaled up by sqrt(chi^2 / dof) when
    the points scatter more than their errors allow (the Birge ratio, as the Particle Data Group
    scales its averages). The interval is slope +- 1.96 standard errors; two points give a finite
    interval from their errors alone.
    """
    x = np.log(np.asarray(sizes, dtype=float))
    y = np.log(np.asarray(errors, dtype=float))
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("sizes and errors must be 1-D arrays of the same length")
    if len(x) < 2:
        raise ValueError("a rate fit needs at least two sizes")
    if not np.all(np.isfinite(y)):
        raise ValueError("errors must be positive and finite for a log-log fit")
    if stderrs is not None:
        return _known_variance_fit(x, y, np.asarray(stderrs, dtype=float) / np.exp(y))
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


def _known_variance_fit(x: np.ndarray, y: np.ndarray, log_stderr: np.ndarray) -> RateFit:
    if log_stderr.shape != x.shape or not np.all(np.isfinite(log_stderr) & (log_stderr > 0)):
        raise ValueError("stderrs must be positive and finite, one per size")
    w = log_stderr**-2.0
    design = np.stack([np.ones_like(x), x], axis=1)
    gram = design.T @ (w[:, None] * design)
    coef = np.linalg.solve(gram, design.T @ (w * y))
    variance = float(np.linalg.inv(gram)[1, 1])
    dof = len(x) - 2
    chi2 = float(w @ (y - design @ coef) ** 2) / dof if dof else None
    if chi2 is not None and chi2 > 1.0:
        variance *= chi2
    stderr = math.sqrt(variance)
    ci = (float(coef[1] - 1.96 * stderr), float(coef[1] + 1.96 * stderr))
    return RateFit(float(coef[1]), float(coef[0]), stderr, ci, len(x), chi2)
