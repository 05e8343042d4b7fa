"""The statistics of a finite-vs-limit comparison: seed means and standard errors on the
[width, depth] grid, the paired standard-decoupled gap and its infinite-width extrapolation, and
the log-log rate fits (the definitions are in `_compare`'s docstring)."""

import math
from typing import Any

import numpy as np

from solvers import fit_loglog

KERNELS = ("feature_eval", "feature_train", "grad_train")


def summarise(
    grid: dict[str, Any], runs: list[dict[str, Any]], *, limit_norm: float
) -> dict[str, Any]:
    """Seed means and standard errors on the [width, depth] grid, per mode, and the paired gap."""
    widths, depths, seeds = grid["widths"], grid["depths"], grid["seeds"]
    index = {(r["mode"], r["width"], r["depth"], r["seed"]): r for r in runs}

    def gather(mode, value):
        return np.array(
            [
                [[value(index[(mode, w, d, s)]) for s in range(seeds)] for d in depths]
                for w in widths
            ],
            dtype=float,
        )  # (widths, depths, seeds, ...)

    summary: dict[str, Any] = {}
    for mode in grid["modes"]:
        summary[mode] = {
            "error": _mean_se(gather(mode, lambda r: r["error"])),
            "loss_eval_final": _mean_se(gather(mode, lambda r: r["loss_eval"][-1])),
            "loss_eval": _mean_se(gather(mode, lambda r: r["loss_eval"])),
            "loss_train": _mean_se(gather(mode, lambda r: r["loss_train"])),
            "kernel_error": {
                name: _mean_se(gather(mode, lambda r, name=name: r["kernel_error"][name]))
                for name in KERNELS
            },
        }

    def paired_gap(standard):
        decoupled = index[("decoupled", standard["width"], standard["depth"], standard["seed"])]
        return np.linalg.norm(standard["f_eval"] - decoupled["f_eval"]) / limit_norm

    gaps = gather("standard", paired_gap)
    summary["gap"] = {
        **_mean_se(gaps),
        "values": gaps,
        "infinite_width": _extrapolate(widths, gaps),
    }
    return summary


def fit_rates(grid: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """Log-log fits of the seed-mean errors and gaps: vs n at the largest L, vs L at the
    largest n (and, as lists, vs n at every L and vs L at every n). A fit is None where fewer
    than two sizes or a non-positive value make it undefined."""
    widths, depths = grid["widths"], grid["depths"]
    fits: dict[str, Any] = {}
    for name, table in [
        *((f"error_{mode}", summary[mode]["error"]["mean"]) for mode in grid["modes"]),
        ("gap", summary["gap"]["mean"]),
    ]:
        table = np.asarray(table, dtype=float)
        fits[name] = {
            "vs_width": _fit(widths, table[:, -1], fixed={"depth": depths[-1]}),
            "vs_depth": _fit(depths, table[-1, :], fixed={"width": widths[-1]}),
            # the same fits on every slice of the grid, to see how much they move
            "vs_width_each_depth": [
                _fit(widths, table[:, j], fixed={"depth": d}) for j, d in enumerate(depths)
            ],
            "vs_depth_each_width": [
                _fit(depths, table[i, :], fixed={"width": w}) for i, w in enumerate(widths)
            ],
        }
    return fits


def _extrapolate(widths, gaps: np.ndarray) -> dict[str, Any] | None:
    """Per depth, the least-squares fit gap^2 = a^2 + c / n over the widths: the backward
    copies' noise adds c / n to the squared coupling term a^2, so a estimates the gap at
    infinite width. Fitted per seed (the fit is linear, so the seed mean of a^2 is the fit of
    the seed-mean squares), which gives a^2 a standard error; a = 0 where a^2 < 0. None for a
    single width."""
    if len(widths) < 2:
        return None
    design = np.stack([np.ones(len(widths)), 1.0 / np.asarray(widths, dtype=float)], axis=1)
    squared = np.square(gaps)  # (widths, depths, seeds)
    coef, *_ = np.linalg.lstsq(design, squared.reshape(len(widths), -1), rcond=None)
    intercept = _mean_se(coef[0].reshape(1, *squared.shape[1:]))
    a2, a2_se = intercept["mean"][0], intercept["stderr"][0]
    a = np.sqrt(np.maximum(a2, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        a_se = np.where(a > 0, a2_se / (2 * a), np.nan)
    return {"gap": a, "stderr": a_se, "squared": a2, "squared_stderr": a2_se}


def _fit(sizes, values, *, fixed: dict[str, int]) -> dict[str, Any] | None:
    values = np.asarray(values, dtype=float)
    if len(sizes) < 2 or not np.all(np.isfinite(values) & (values > 0)):
        return None
    fit = fit_loglog(sizes, values)
    finite = math.isfinite(fit.slope_stderr)
    return {
        "slope": fit.slope,
        "stderr": fit.slope_stderr if finite else None,
        "ci95": list(fit.ci95) if finite else None,
        "prefactor": fit.prefactor,
        "points": fit.points,
        "sizes": list(sizes),
        "values": values,
        **fixed,
    }


def _mean_se(values: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and standard error over the seed axis (axis 2); the error is NaN for one seed."""
    seeds = values.shape[2]
    mean = values.mean(axis=2)
    if seeds < 2:
        return {"mean": mean, "stderr": np.full_like(mean, np.nan)}
    return {"mean": mean, "stderr": values.std(axis=2, ddof=1) / math.sqrt(seeds)}


def per_depth_norm(kernel: np.ndarray) -> np.ndarray:
    """Frobenius norm over steps and input pairs, one per recorded depth: (K, D, X, X) -> (D,)."""
    return np.sqrt(np.sum(np.square(kernel), axis=(0, 2, 3)))
