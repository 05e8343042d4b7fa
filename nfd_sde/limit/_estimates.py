"""The limit's estimate and its errors from the runs of every level and group.

Per group, the values of the nested levels (finest first, sharing their Brownian paths) are
extrapolated in depth (`solvers.extrapolate`, the scheme's order); the estimate is the mean over
groups. Errors, reported beside every number:

* `stderr`, the Monte Carlo standard error: the spread of the groups' extrapolated values / sqrt(G)
  (independent particle systems), and for the losses the jackknife over groups;
* `syserr`, the discretisation error: the distance between the extrapolations over all levels and
  over all but the coarsest, on the group means.

One group: no `stderr`; one level: no `syserr` (the value is then the n -> infinity limit of the
depth-M network, which carries no discretisation error as such).
"""

from typing import Any

import numpy as np

from solvers import extrapolate, group_mean_se, jackknife_se

from ..model import AbstractLoss

KERNELS = ("feature_eval", "feature_train", "grad_train")


def estimate(values: np.ndarray, *, order: int) -> dict[str, Any]:
    """`values` (levels, groups, ...): the estimate, its stderr and syserr."""
    per_group = np.stack(
        [extrapolate(values[:, g], order=order)[0] for g in range(values.shape[1])]
    )
    mean, stderr = group_mean_se(per_group)
    _, syserr = extrapolate(values.mean(axis=1), order=order)
    return {"value": mean, "stderr": stderr, "syserr": syserr, "per_group": per_group}


def loss_estimate(
    loss: AbstractLoss, f: dict[str, Any], y: np.ndarray, f_levels: np.ndarray, *, order: int
) -> dict[str, Any]:
    """Mean loss over inputs of the estimated outputs (K, inputs, C) -> (K,), with the jackknife
    over groups as stderr and the same residual as syserr, on the loss of each level's outputs."""

    def mean_loss(outputs):
        return np.asarray(loss(outputs, y)).mean(axis=-1)

    value = mean_loss(f["value"])
    stderr = jackknife_se(f["per_group"], mean_loss)
    level_losses = np.stack([mean_loss(level.mean(axis=0)) for level in f_levels])
    _, syserr = extrapolate(level_losses, order=order)
    return {"value": value, "stderr": stderr, "syserr": syserr}


def variance_ratios(levels: dict[str, np.ndarray], controls: bool) -> dict[str, float | None]:
    """Diagnostics of the variance reduction, from the spread over groups of f_eval after the
    last step: Var(f_M - f_{M/2}) / Var(f_M) (shared Brownian paths across nested grids) and
    Var(control-variate f_M) / Var(plain f_M), each summed over inputs and outputs."""
    plain = levels["f_eval"][:, :, -1]
    out: dict[str, float | None] = {"nested_difference": None, "control_variates": None}
    if plain.shape[1] < 2:
        return out
    variance = float(np.sum(plain[0].var(axis=0, ddof=1)))
    if not variance > 0:
        return out
    if plain.shape[0] > 1:
        out["nested_difference"] = (
            float(np.sum((plain[0] - plain[1]).var(axis=0, ddof=1))) / variance
        )
    if controls:
        controlled = levels["f_eval_cv"][0, :, -1]
        out["control_variates"] = float(np.sum(controlled.var(axis=0, ddof=1))) / variance
    return out
