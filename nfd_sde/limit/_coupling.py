"""The limit of real backprop against the NFD, measured apart: `coupling_gap`.

At one depth grid (M = `solver.depth_steps`: the n -> infinity limit of depth-M networks), the
standard-backprop limit (two-sided field space, recording its reuse coupling) and the decoupled
limit (the NFD) are solved from the same key, so each particle group of one sees the same noise
as that group of the other: without its coupling terms the two-sided solve *is* the decoupled one
(tests/test_two_sided.py), so their difference is what the reuse coupling adds, and pairing the
groups removes most of the shared Monte Carlo noise.

Returned, as plain data:
* `gap`: |E (f_standard - f_decoupled)| over every eval output at every step, relative to the
  norm |E f_decoupled| of the same entries (as `compare` measures the gap of finite networks) (`solvers.mean_distance` on the groups' paired differences:
  debiased, with its standard error, 95% interval and whether it is resolved);
* `gap_per_step`: the same per SGD step, with the same scale (the growth of the gap along
  training);
* `coupling`: per direction and weight, at every depth step m, the RMS of the coupling part of the
  products relative to the RMS of the products (`layer_share`), and the RMS of the coupling
  accumulated along the sweep (`accumulated`; see `_coupling_record`), averaged over the steps
  and the groups, with standard errors over the groups;
* `differences`: the groups' paired differences f_standard - f_decoupled, (groups, K+1, P, C), a
  NumPy array (for extrapolation across depths; None when a solve diverged).
"""

import dataclasses
import math
from typing import Any

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from solvers import mean_distance

from ..model import Config, DataStream, block_of
from ._coupling_record import DIRECTIONS
from ._groups import build_groups, run_groups
from ._measured_plan import plan_for


def _solve(config: Config, stream: DataStream, key: PRNGKeyArray, record: bool):
    plan = plan_for(config, stream, record_coupling=record)
    with jax.enable_x64(config.run.dtype == "float64"):
        solvers, states = build_groups(config, stream, key=key, plan=plan, refinement=1)
        if record:
            solvers = dataclasses.replace(solvers, record_coupling=True)
        return run_groups(solvers, states, stream, dtype=config.run.dtype, progress=False)


def coupling_gap(config: Config, stream: DataStream, *, key: PRNGKeyArray) -> dict[str, Any]:
    """The standard-vs-decoupled gap of the limit at depth M and the coupling's per-layer share
    (module docstring). `config.solver.groups` >= 2 paired groups; one level is used."""
    if config.solver.groups < 2:
        raise ValueError("the coupling gap needs solver.groups >= 2 (its error is their spread)")
    base = config.replace(solver={"levels": 1, "representation": "field"})
    standard = _solve(base.replace(solver={"backward": "standard"}), stream, key, record=True)
    decoupled = _solve(base.replace(solver={"backward": "decoupled"}), stream, key, record=False)
    f_std = np.asarray(standard["f_eval"], float)  # (groups, K+1, P, C)
    f_dec = np.asarray(decoupled["f_eval"], float)
    finite = bool(np.all(np.isfinite(f_std)) and np.all(np.isfinite(f_dec)))
    scale = float(np.linalg.norm(np.mean(f_dec, axis=0))) or 1.0
    diff = f_std - f_dec
    out: dict[str, Any] = {
        "depth_steps": config.solver.depth_steps,
        "groups": config.solver.groups,
        "particles": config.solver.particles,
        "finite": finite,
        "scale": scale,
        "f_standard": np.mean(f_std, axis=0).tolist(),
        "f_decoupled": np.mean(f_dec, axis=0).tolist(),
    }
    if not finite:
        out["gap"] = None
        out["gap_per_step"] = None
        out["coupling"] = None
        out["differences"] = None
        return out
    out["gap"] = dataclasses.asdict(mean_distance([(1.0, diff)], scale=scale))
    out["gap_per_step"] = [
        dataclasses.asdict(mean_distance([(1.0, diff[:, k])], scale=scale))
        for k in range(diff.shape[1])
    ]
    out["coupling"] = _coupling_summary(standard["coupling"], config)
    out["differences"] = diff
    return out


def _coupling_summary(record, config: Config) -> dict[str, Any] | None:
    """Per direction and weight: the layer share and the accumulated coupling per depth step,
    mean over SGD steps, then mean and standard error over the groups."""
    if record is None:
        return None
    record = np.asarray(record, float)  # (groups, K, directions, weights, M, 3)
    groups = record.shape[0]
    weights = block_of(config).weights
    summary: dict[str, Any] = {}
    for d, direction in enumerate(DIRECTIONS):
        for w, weight in enumerate(weights):
            part = record[:, :, d, w]  # (groups, K, M, 3)
            share = np.sqrt(part[..., 0] / np.maximum(part[..., 1], np.finfo(float).tiny))
            accumulated = np.sqrt(part[..., 2])
            per_group_share = share.mean(axis=1)  # (groups, M)
            per_group_acc = accumulated.mean(axis=1)
            summary[f"{weight}.{direction}"] = {
                "layer_share": per_group_share.mean(axis=0).tolist(),
                "layer_share_se": (
                    per_group_share.std(axis=0, ddof=1) / math.sqrt(groups)
                ).tolist(),
                "accumulated": per_group_acc.mean(axis=0).tolist(),
                "accumulated_se": (per_group_acc.std(axis=0, ddof=1) / math.sqrt(groups)).tolist(),
            }
    return summary
