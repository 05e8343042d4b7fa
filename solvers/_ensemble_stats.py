"""Distances between ensemble means, resolved against their Monte Carlo noise.

An ensemble's mean of a random vector f (F entries) estimates E f with noise of order
sqrt(tr Var f / S). The distance between two expectations, |E f - E g|, is then biased upward by
that noise; `mean_distance` removes it and says whether what is left is resolved.

`mean_distance(groups)` takes independent groups of samples, (coefficient c_g, samples (S_g, F)),
and measures the vector d = sum_g c_g mean_g:

    raw^2      = |d|^2
    floor^2    = sum_g c_g^2 tr Cov_g / S_g             (E raw^2 = |E d|^2 + floor^2)
    debiased^2 = raw^2 - floor^2                        (unbiased for |E d|^2)
    Var(debiased^2) = 4 (E d)' Sigma (E d) + 2 tr Sigma^2,   Sigma = sum_g c_g^2 Cov_g / S_g,

estimated by 4 d' Sigma d - 2 tr Sigma^2 (d' Sigma d has mean (E d)' Sigma (E d) + tr Sigma^2), and
never below the pure-noise value 2 tr Sigma^2. The distance is *resolved* when the 95% interval of
|E d|^2, debiased^2 +- 1.96 s.e., excludes 0; otherwise only an upper bound is known. Paired
samples (the same seed at two depths, or in two backward modes) enter as one group of their
differences, so their correlation reduces the noise instead of being ignored.

`spread(q)` turns per-sample unbiased estimates q_s of tr Var f into the RMS fluctuation
sqrt(tr Var f) with its standard error; `antithetic_spread` builds those q_s from antithetic pairs.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.96
_FULL_COVARIANCE = 4096  # entries F up to which tr Sigma^2 is computed from the full covariance


@dataclasses.dataclass(frozen=True)
class MeanDistance:
    """|E d| for d = sum_g c_g mean_g, all divided by `scale` (see the module docstring)."""

    raw: float
    floor: float
    debiased: float
    stderr: float
    low: float
    high: float
    resolved: bool
    seeds: int

    @property
    def relative_stderr(self) -> float:
        """stderr / debiased (infinite when nothing is resolved)."""
        return self.stderr / self.debiased if self.debiased > 0 else math.inf


def mean_distance(
    groups: Sequence[tuple[float, np.ndarray]], *, scale: float = 1.0
) -> MeanDistance:
    """The debiased norm of sum_g c_g mean(samples_g), its standard error and 95% interval."""
    d = 0.0
    sigma_dd = floor2 = 0.0
    covariances = []
    seeds = 0
    for coef, samples in groups:
        x = np.asarray(samples, dtype=float)
        x = x.reshape(x.shape[0], -1)
        count = x.shape[0]
        seeds = max(seeds, count)
        d = d + coef * x.mean(axis=0)
        if count < 2:
            floor2 = sigma_dd = math.nan
            continue
        centred = x - x.mean(axis=0)
        weight = coef**2 / (count * (count - 1))
        floor2 += weight * float(np.sum(centred**2))
        covariances.append((weight, centred))
    d = np.asarray(d, dtype=float)
    raw2 = float(d @ d)
    if not math.isnan(floor2):
        sigma_dd = sum(w * float(np.sum((c @ d) ** 2)) for w, c in covariances)
    trace_sq = _trace_of_square(covariances, d.size) if covariances else math.nan
    debiased2 = raw2 - floor2
    variance = max(4 * sigma_dd - 2 * trace_sq, 2 * trace_sq)
    se2 = math.sqrt(variance) if variance >= 0 else math.nan
    low2, high2 = debiased2 - Z95 * se2, debiased2 + Z95 * se2
    debiased = math.sqrt(max(debiased2, 0.0))
    stderr = se2 / (2 * debiased) if debiased > 0 else math.nan
    return MeanDistance(
        raw=math.sqrt(raw2) / scale,
        floor=math.sqrt(floor2) / scale if floor2 >= 0 else math.nan,
        debiased=debiased / scale,
        stderr=stderr / scale,
        low=math.sqrt(max(low2, 0.0)) / scale if math.isfinite(low2) else math.nan,
        high=math.sqrt(max(high2, 0.0)) / scale if math.isfinite(high2) else math.nan,
        resolved=bool(low2 > 0),
        seeds=seeds,
    )


def _trace_of_square(covariances, entries: int) -> float:
    """tr Sigma^2 for Sigma = sum_g w_g C_g' C_g (C_g the centred samples)."""
    if entries <= _FULL_COVARIANCE:
        sigma = sum(w * (c.T @ c) for w, c in covariances)
        return float(np.sum(sigma**2))
    total = 0.0
    for w1, c1 in covariances:
        for w2, c2 in covariances:
            total += w1 * w2 * float(np.sum((c1 @ c2.T) ** 2))
    return total


@dataclasses.dataclass(frozen=True)
class Spread:
    """sqrt(tr Var f) / scale and its standard error."""

    value: float
    stderr: float
    seeds: int


def spread(q: np.ndarray, *, scale: float = 1.0) -> Spread:
    """The RMS fluctuation from per-sample unbiased estimates `q` of tr Var f."""
    q = np.asarray(q, dtype=float)
    mean = float(q.mean())
    value = math.sqrt(max(mean, 0.0))
    if q.size < 2 or value == 0:
        return Spread(value / scale, math.nan, int(q.size))
    se2 = float(q.std(ddof=1)) / math.sqrt(q.size)
    return Spread(value / scale, se2 / (2 * value) / scale, int(q.size))


def plain_spread_samples(samples: np.ndarray) -> np.ndarray:
    """q_s = S / (S - 1) |f_s - mean f|^2 for independent samples (S, ...)."""
    x = np.asarray(samples, dtype=float).reshape(len(samples), -1)
    count = x.shape[0]
    return count / max(count - 1, 1) * np.sum((x - x.mean(axis=0)) ** 2, axis=1)


def antithetic_spread_samples(first: np.ndarray, mirror: np.ndarray) -> np.ndarray:
    """q_s for antithetic pairs (a_s, b_s) whose members each have the law of f and whose odd
    part o = (a - b) / 2 has mean 0 and no correlation with the even part e = (a + b) / 2:
    tr Var f = E|o|^2 + tr Var e, so q_s = |o_s|^2 + S / (S - 1) |e_s - mean e|^2."""
    a = np.asarray(first, dtype=float).reshape(len(first), -1)
    b = np.asarray(mirror, dtype=float).reshape(len(mirror), -1)
    odd = np.sum(((a - b) / 2) ** 2, axis=1)
    return odd + plain_spread_samples((a + b) / 2)


def intercept_weights(x: Sequence[float], variances: Sequence[float]) -> np.ndarray:
    """Weights c_i with sum_i c_i y_i the weighted least-squares intercept at x = 0 of a straight
    line through points (x_i, y_i) of variances v_i (e.g. x = 1/n: the value at n -> infinity).
    Two points give the exact line through them."""
    x = np.asarray(x, dtype=float)
    w = 1.0 / np.asarray(variances, dtype=float)
    design = np.stack([np.ones_like(x), x], axis=1)
    gram = design.T @ (w[:, None] * design)
    return (np.linalg.solve(gram, design.T) * w)[0]


def extrapolated_distance(
    sizes: Sequence[float], differences: Sequence[np.ndarray], *, scale: float = 1.0
) -> tuple[MeanDistance, np.ndarray]:
    """The mean of paired differences (samples, ...) measured at several sizes, extrapolated
    linearly in 1/size to size -> infinity (`intercept_weights`, each mean weighted by its
    noise tr Cov / samples), as a `mean_distance` with its interval; and the weights."""
    variances = []
    for diff in differences:
        flat = diff.reshape(len(diff), -1)
        variances.append(
            float(np.sum(flat.var(axis=0, ddof=1))) / len(diff) if len(diff) > 1 else 1.0
        )
    weights = intercept_weights([1.0 / s for s in sizes], np.maximum(variances, 1e-300))
    combined = [(float(c), diff) for c, diff in zip(weights, differences)]
    return mean_distance(combined, scale=scale), weights
