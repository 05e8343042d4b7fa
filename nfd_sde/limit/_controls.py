"""Control-variate estimates of the outputs, cross-fitted over the particle groups.

Within one particle system, the output f = mean_i y_i is corrected by control features x_i of
exactly zero expectation: f_cv = mean(y) - beta^T mean(x). The coefficient beta is the
least-squares regression of y on x (the variance-minimising choice, (Var x)^-1 Cov(x, y)). Fitted
on the same particles it would bias f_cv by O(p / N) for p controls, which with many groups can
exceed the standard error; so group g uses beta fitted on the pooled within-group statistics of
all *other* groups, which are independent of group g: f_cv is then unbiased (conditionally on
beta, E[mean(x)] = 0 exactly). With one group there is nothing to cross-fit and the plain mean
is used.
"""

import numpy as np
from scipy.linalg import solve_triangular


def cross_fitted(stats, *, ridge: float = 1e-10) -> np.ndarray | None:
    """`stats` (a `ControlStatistics` of NumPy arrays with leading axes (groups, steps)): the
    corrected outputs (groups, steps, pairs, outputs), or None for one group."""
    groups = stats.mean_y.shape[0]
    if groups < 2:
        return None
    xx_total, xy_total = stats.xx.sum(axis=0), stats.xy.sum(axis=0)  # (steps, C, R, R), (.., R, Q)
    out = np.empty_like(stats.mean_y)
    for g in range(groups):
        xx, xy = xx_total - stats.xx[g], xy_total - stats.xy[g]
        size = xx.shape[-1]
        scale = np.maximum(np.trace(xx, axis1=-2, axis2=-1) / size, np.finfo(float).tiny)
        regularised = xx + ridge * scale[..., None, None] * np.eye(size)
        finite = np.all(np.isfinite(regularised), axis=(-2, -1)) & np.all(
            np.isfinite(xy), axis=(-2, -1)
        )
        regularised = np.where(finite[..., None, None], regularised, np.eye(size))
        # correction = mean_x^T beta with beta = A^{-1} xy and A symmetric: (A^{-1} mean_x)^T xy,
        # one right-hand side per output instead of one per pair
        means = np.swapaxes(stats.mean_x[g], -1, -2)  # (steps, C, R)
        solved = _symmetric_solve(regularised, means)
        xy = np.where(finite[..., None, None], xy, np.nan)
        correction = np.einsum("kcr,kcrq->kqc", solved, xy)
        out[g] = stats.mean_y[g] - correction
    return out


def _symmetric_solve(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """A^{-1} v for symmetric positive definite A (..., R, R) and v (..., R): by Cholesky (half
    the work of an LU factorisation), or by LU where a factor fails (round-off past the ridge)."""
    try:
        lower = np.linalg.cholesky(matrices)
    except np.linalg.LinAlgError:
        return np.linalg.solve(matrices, vectors[..., None])[..., 0]
    flat_lower = lower.reshape(-1, *lower.shape[-2:])
    flat = vectors.reshape(-1, vectors.shape[-1])
    out = np.empty_like(flat, dtype=np.result_type(flat, flat_lower))
    for i, (factor, v) in enumerate(zip(flat_lower, flat, strict=True)):
        half = solve_triangular(factor, v, lower=True, check_finite=False)
        out[i] = solve_triangular(factor, half, lower=True, trans="T", check_finite=False)
    return out.reshape(vectors.shape[:-1] + (-1,))
