"""The statistics of a finite-vs-limit comparison, from the stacked members of every ensemble and
limit (`_compare_runs`); the definitions are in `_compare`'s docstring and docs/compare.md.

Tables are nested lists indexed [width][depth] in the sorted order of the grid; a cell is None
where it is undefined (a diverged ensemble or limit, no reference, one seed). Distances are
`solvers.MeanDistance`s as dicts, divided by the comparison's `scale`.
"""

import dataclasses
import math
from typing import Any

import numpy as np

from solvers import (
    antithetic_spread_samples,
    extrapolated_distance,
    mean_distance,
    plain_spread_samples,
    spread,
)

from ._depth_reference import AbstractDepthReference
from ._modes import has_both_modes
from ._runs import KERNELS, pair_means


def summarise(
    grid: dict[str, Any],
    limits: dict[int, dict[str, np.ndarray]],
    ensembles: dict[tuple[str, int, int], dict[str, np.ndarray]],
    *,
    scale: float,
    reference: AbstractDepthReference,
) -> dict[str, Any]:
    """Bias, fluctuation, depth error, gap and its infinite-width value, kernels and losses."""
    widths, depths, modes = grid["widths"], grid["depths"], grid["modes"]
    antithetic = grid["antithetic"]
    targets = dict(zip(depths, grid["limit_depth_steps"]))
    notes: list[str] = []

    def samples(arrays, name="f_eval"):
        return pair_means(arrays[name], antithetic)

    limit_ok = {}
    divergence = {"limit": [], "finite": []}
    for steps, arrays in limits.items():
        count, first = diverged(arrays)
        limit_ok[steps] = count == 0
        divergence["limit"].append(
            {"depth_steps": steps, "diverged": count, "first_bad_step": first}
        )
        if count:
            notes.append(
                f"the limit on M = {steps} diverged ({count} solves, first non-finite at step "
                f"{first}): every comparison with it is left out"
            )
    ok = {}
    for (mode, width, depth), arrays in ensembles.items():
        count, first = diverged(arrays)
        ok[(mode, width, depth)] = count == 0
        divergence["finite"].append(
            {"mode": mode, "width": width, "depth": depth, "diverged": count,
             "members": len(arrays["f_eval"]), "first_bad_step": first}
        )  # fmt: skip
        if count:
            notes.append(
                f"{mode} n = {width}, L = {depth}: {count} of {len(arrays['f_eval'])} networks "
                f"diverged (first non-finite at step {first}); left out of every statistic and fit"
            )

    def distance(groups):
        return None if groups is None else _asdict(mean_distance(groups, scale=scale))

    def bias(mode, width, depth):
        steps = targets[depth]
        if not (ok[(mode, width, depth)] and limit_ok[steps]):
            return None
        finite, limit = samples(ensembles[(mode, width, depth)]), samples(limits[steps])
        out = distance([(1.0, finite), (-1.0, limit)])
        # which noise dominates: more seeds help only while the finite part does
        return out | {
            "finite_floor": math.sqrt(noise(finite)) / scale,
            "limit_floor": math.sqrt(noise(limit)) / scale,
            "seeds": len(finite),
        }

    def fluctuation(mode, width, depth):
        if not ok[(mode, width, depth)]:
            return None
        members = np.asarray(ensembles[(mode, width, depth)]["f_eval"], dtype=float)
        q = (
            antithetic_spread_samples(members[0::2], members[1::2])
            if antithetic
            else plain_spread_samples(members)
        )
        return dataclasses.asdict(spread(q, scale=scale))

    def depth_row(mode, width):
        if not all(ok[(mode, width, d)] for d in depths):
            return [None] * len(depths)
        per_depth = [samples(ensembles[(mode, width, d)]) for d in depths]
        return [distance(g) for g in reference.groups(depths, per_depth)]

    def gap_groups(width, depth):
        if not (ok[("standard", width, depth)] and ok[("decoupled", width, depth)]):
            return None
        standard = samples(ensembles[("standard", width, depth)])
        return [(1.0, standard - samples(ensembles[("decoupled", width, depth)]))]

    summary: dict[str, Any] = {"scale": scale, "notes": notes, "divergence": divergence}
    table = {name: {} for name in ("bias", "fluctuation", "depth", "kernels", "losses")}
    for mode in modes:
        table["bias"][mode] = [[bias(mode, w, d) for d in depths] for w in widths]
        table["fluctuation"][mode] = [[fluctuation(mode, w, d) for d in depths] for w in widths]
        table["depth"][mode] = [depth_row(mode, w) for w in widths]
        table["kernels"][mode] = {
            name: [[_kernel_bias(ensembles[(mode, w, d)], limits[targets[d]], name, antithetic)
                    for d in depths] for w in widths]
            for name in KERNELS
        }  # fmt: skip
        table["losses"][mode] = _losses(ensembles, mode, widths, depths, antithetic)
    summary |= table
    per_depth_limits = list(targets.values()) == list(depths) and all(limit_ok.values())
    summary["depth_limit"] = (
        [distance(g) for g in reference.groups(depths, [samples(limits[d]) for d in depths])]
        if per_depth_limits
        else None
    )
    summary["depth_reference"] = {"name": reference.name, "description": reference.description}
    if has_both_modes(modes):
        gaps = [[gap_groups(w, d) for d in depths] for w in widths]
        summary["gap"] = [[distance(g) for g in row] for row in gaps]
        summary["gap_infinite_width"] = [
            _infinite_width(widths, [row[j] for row in gaps], scale) for j in range(len(depths))
        ]
    summary["limit_losses"] = {
        str(steps): _limit_losses(arrays, antithetic) for steps, arrays in limits.items()
    }
    return summary


def noise(samples: np.ndarray) -> float:
    """tr Cov / samples: the squared noise floor of the samples' mean (NaN for one sample)."""
    flat = np.asarray(samples, dtype=float).reshape(len(samples), -1)
    return float(np.sum(flat.var(axis=0, ddof=1))) / len(flat) if len(flat) > 1 else math.nan


def diverged(arrays: dict[str, np.ndarray]) -> tuple[int, int | None]:
    """How many members have a non-finite output or loss, and the first step where one does."""

    def flat(name):  # (members, steps, everything else); explicit sizes, as steps may be 0
        values = np.asarray(arrays[name])
        return values.reshape(*values.shape[:2], int(np.prod(values.shape[2:])))

    eval_bad = ~np.isfinite(flat("f_eval")).all(-1) | ~np.isfinite(arrays["loss_eval"])
    train_bad = ~np.isfinite(flat("f_train")).all(-1) | ~np.isfinite(arrays["loss_train"])
    bad = eval_bad.copy()
    bad[:, : train_bad.shape[1]] |= train_bad
    members = bad.any(axis=1)
    if not members.any():
        return 0, None
    return int(members.sum()), int(np.argmax(bad.any(axis=0)))


def _asdict(distance) -> dict[str, Any]:
    return dataclasses.asdict(distance) | {"relative_stderr": distance.relative_stderr}


def _infinite_width(widths, groups, scale: float) -> dict[str, Any] | None:
    """The mean gap extrapolated linearly in 1/n to n -> infinity (weighted least squares over
    the widths, weights from each mean's noise), as a distance with its interval."""
    valid = [(w, g) for w, g in zip(widths, groups) if g is not None]
    if len(valid) < 2:
        return None
    distance, weights = extrapolated_distance(
        [w for w, _ in valid], [g[0][1] for _, g in valid], scale=scale
    )
    out = _asdict(distance)
    return out | {"widths": [w for w, _ in valid], "weights": weights.tolist()}


def _kernel_bias(finite, limit, name: str, antithetic: bool) -> list[dict[str, float]] | None:
    """Per recorded depth: |E K_n - K_limit| / |K_limit| over steps and input pairs, raw and
    debiased by the per-entry noise of both means."""
    count = float(finite["kernel_count"])
    mean = finite[f"kernel_sum_{name}"] / count
    if not np.all(np.isfinite(mean)) or count < 2:
        return None
    noise = (finite[f"kernel_sumsq_{name}"] / count - mean**2) / (count - 1)
    lim = pair_means(limit[name], antithetic)
    lim_mean = lim.mean(axis=0)
    lim_noise = lim.var(axis=0, ddof=1) / len(lim) if len(lim) > 1 else np.zeros_like(lim_mean)
    axes = (0, 2, 3)
    norm = np.sqrt(np.sum(lim_mean**2, axis=axes))
    raw2 = np.sum((mean - lim_mean) ** 2, axis=axes)
    floor2 = np.sum(np.maximum(noise, 0) + lim_noise, axis=axes)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [
            {"raw": math.sqrt(r) / s, "floor": math.sqrt(f) / s,
             "debiased": math.sqrt(max(r - f, 0.0)) / s}
            for r, f, s in zip(raw2, floor2, norm)
        ]  # fmt: skip


def _losses(ensembles, mode, widths, depths, antithetic) -> dict[str, Any]:
    out = {}
    for name in ("loss_eval", "loss_train"):
        mean, stderr = [], []
        for w in widths:
            row_m, row_s = [], []
            for d in depths:
                values = pair_means(ensembles[(mode, w, d)][name], antithetic)
                row_m.append(values.mean(axis=0))
                row_s.append(
                    values.std(axis=0, ddof=1) / math.sqrt(len(values))
                    if len(values) > 1
                    else np.full(values.shape[1:], np.nan)
                )
            mean.append(row_m)
            stderr.append(row_s)
        out[name] = {"mean": np.asarray(mean), "stderr": np.asarray(stderr)}
    return out


def _limit_losses(arrays, antithetic) -> dict[str, Any]:
    out = {}
    for name in ("loss_eval", "loss_train"):
        values = pair_means(arrays[name], antithetic)
        se = values.std(axis=0, ddof=1) / math.sqrt(len(values)) if len(values) > 1 else None
        out[name] = {"mean": values.mean(axis=0), "stderr": se}
    return out
