"""Richardson extrapolation over nested grids, with the residual as the error estimate.

With values f_j on grids of M_j = M / r^j steps (j = 0 finest) of a scheme of order p, and
f_M = f + a_1 M^-p + a_2 M^-(p+1) + ..., the weights w_j with sum_j w_j = 1 that cancel the first
(levels - 1) error terms give an estimate of f with error O(M^-(p + levels - 1)). For p = 1 and
r = 2: two levels (2 f_M - f_{M/2}), three levels (8 f_M - 6 f_{M/2} + f_{M/4}) / 3.

The discretisation error of the extrapolation over all `levels` is estimated by its distance to
the extrapolation over the `levels - 1` finest grids (for one level it is unknown): the next
term of the expansion, a conservative bound in the asymptotic regime.
"""

import numpy as np


def richardson_weights(levels: int, *, order: int, ratio: int = 2) -> np.ndarray:
    """Weights (levels,), finest grid first, that cancel the error terms M^-order ...
    M^-(order + levels - 2)."""
    if levels < 1:
        raise ValueError(f"levels={levels}: need at least one level")
    h = float(ratio) ** np.arange(levels)  # grid spacing of each level, relative to the finest
    rows = [np.ones(levels)] + [h ** (order + i) for i in range(levels - 1)]
    rhs = np.zeros(levels)
    rhs[0] = 1.0
    return np.linalg.solve(np.stack(rows), rhs)


def extrapolate(
    values: np.ndarray, *, order: int, ratio: int = 2
) -> tuple[np.ndarray, np.ndarray | None]:
    """The extrapolation of `values` (levels, ...), finest grid first, and its residual error
    estimate |R_levels - R_(levels-1)| (None for one level). Non-finite values (a diverged run)
    give non-finite results, without a warning."""
    values = np.asarray(values, dtype=float)
    levels = values.shape[0]
    with np.errstate(invalid="ignore", over="ignore"):
        estimate = np.tensordot(richardson_weights(levels, order=order, ratio=ratio), values, 1)
        if levels == 1:
            return estimate, None
        weights = richardson_weights(levels - 1, order=order, ratio=ratio)
        fewer = np.tensordot(weights, values[:-1], 1)
        return estimate, np.abs(estimate - fewer)
