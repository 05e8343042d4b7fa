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


def control_solutions(mean_x: np.ndarray, xx: np.ndarray, *, ridge: float = 1e-10) -> np.ndarray:
    """A_g^{-1} mean_x_g (groups, steps, outputs, controls), A_g the pooled centred cross
    products `xx` (groups, steps, outputs, controls, controls) of the groups other than g, with
    a relative ridge; NaN where A_g is not finite. The control features depend only on the
    initial readout and the step-0 features, so these are the same at every step: a solve
    computes them once (`nfd_sde.limit.run_groups`)."""
    xx_total = xx.sum(axis=0)
    out = np.empty(mean_x.shape[:2] + mean_x.shape[:1:-1], np.result_type(mean_x, xx))
    for g in range(mean_x.shape[0]):
        others = xx_total - xx[g]
        size = others.shape[-1]
        scale = np.maximum(np.trace(others, axis1=-2, axis2=-1) / size, np.finfo(float).tiny)
        regularised = others + ridge * scale[..., None, None] * np.eye(size)
        finite = np.all(np.isfinite(regularised), axis=(-2, -1))
        regularised = np.where(finite[..., None, None], regularised, np.eye(size))
        # correction = mean_x^T beta with beta = A^{-1} xy and A symmetric: (A^{-1} mean_x)^T xy,
        # one right-hand side per output instead of one per pair
        means = np.swapaxes(mean_x[g], -1, -2)  # (steps, C, R)
        out[g] = np.where(finite[..., None], _symmetric_solve(regularised, means), np.nan)
    return out


def corrected(solutions: np.ndarray, mean_y: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """mean_y_g - (A_g^{-1} mean_x_g)^T (the other groups' pooled `xy`): the cross-fitted
    outputs (groups, steps, pairs, outputs) from `control_solutions`; NaN where a statistic is
    not finite."""
    others = xy.sum(axis=0)[None] - xy  # (groups, steps, C, R, Q)
    finite = np.all(np.isfinite(others), axis=(-2, -1))
    others = np.where(finite[..., None, None], others, np.nan)
    return mean_y - np.einsum("gkcr,gkcrq->gkqc", solutions, others)


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
