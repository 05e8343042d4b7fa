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
        beta = np.linalg.solve(regularised, np.where(finite[..., None, None], xy, np.nan))
        correction = np.einsum("krc,kcrq->kqc", stats.mean_x[g], beta)
        out[g] = stats.mean_y[g] - correction
    return out
