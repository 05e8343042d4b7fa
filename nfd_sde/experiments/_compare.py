"""Finite networks against their NFD limit on one data stream: errors, kernels, the backward gap.

`run_compare` solves the NFD limit (the decoupled system, `limit_seeds` particle seeds) and
trains finite ResNets over a grid of widths n and depths L, `seeds` initialisations each, in both
backward modes, all on the same `DataStream`. Seed s gives the same initial forward weights in
both modes (the decoupled network adds independent backward copies), so standard minus
decoupled is a paired difference.

With f_ref the limit's eval predictions averaged over its seeds, shape (K+1, P, C), and ||.||
the Frobenius norm over every axis:

    error(run)         = ||f_run - f_ref|| / ||f_ref||
    kernel error at t_d = ||K_run[:, d] - K_ref[:, d]|| / ||K_ref[:, d]||   (all steps and pairs)
    gap(n, L, s)       = ||f_standard - f_decoupled|| / ||f_ref||           (same seed s)
    limit MC error     = sqrt(sum of per-entry sample variances over limit seeds) / ||f_ref||
                         for one solve; the reference's own error is that / sqrt(limit_seeds)

Seed means carry standard errors std / sqrt(seeds). Rates are `fit_loglog` fits of seed means:
against n at the largest L and against L at the largest n, per mode, and the same for the gap.
Arrays in the summary are indexed [width, depth(, ...)] in the sorted order of `grid`.
"""

import itertools
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from ..finite import train_finite
from ..limit import plan_limit, solve_limit
from ..model import Config, DataStream, Result, loss_of, run_meta, to_dict
from ._arguments import count, sizes
from ._compare_summary import KERNELS, fit_rates, per_depth_norm, summarise
from ._records import read_json, write_json

MODES = ("decoupled", "standard")
COMPARE_FILE = "compare.json"


def check_grid(
    *, widths, depths, seeds, particles, depth_steps, limit_seeds
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Refuse a bad grid with a message naming it; returns the sorted widths and depths."""
    checked = sizes("widths", widths), sizes("depths", depths)
    for name, value in (
        ("seeds", seeds),
        ("particles", particles),
        ("depth_steps", depth_steps),
        ("limit_seeds", limit_seeds),
    ):
        count(name, value)
    return checked


def run_compare(
    config: Config,
    stream: DataStream,
    *,
    widths: Iterable[int],
    depths: Iterable[int],
    seeds: int,
    particles: int,
    depth_steps: int,
    limit_seeds: int = 2,
    key: PRNGKeyArray | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Compare finite networks with the NFD limit; returns plain data (see the module docstring).

    The limit is solved with `particles` particles on `depth_steps` depth steps (always the
    decoupled NFD, whatever `solver.backward` says). `key` (default `jax.random.key(run.seed)`)
    is split once into the limit's seeds and the finite networks' seeds; seed s of width n and
    depth L trains both modes from `fold_in(fold_in(seed_key[s], n), L)`. The grid and the
    limit's memory plan are checked before any solve or training.
    """
    widths, depths = check_grid(
        widths=widths,
        depths=depths,
        seeds=seeds,
        particles=particles,
        depth_steps=depth_steps,
        limit_seeds=limit_seeds,
    )
    config = config.replace(
        solver={
            "particles": particles,
            "depth_steps": depth_steps,
            "backward": "decoupled",
            # each limit seed is one particle system on the depth-M grid (the M-step limit)
            "groups": 1,
            "levels": 1,
            "control_variates": False,
        }
    )
    eval_size = stream.x_eval.shape[0]
    plan = plan_limit(
        config, dim=stream.dim, steps=stream.steps, batch=stream.batch, eval_size=eval_size
    )
    start = time.perf_counter()
    key = jax.random.key(config.run.seed) if key is None else key
    limit_key, finite_key = jax.random.split(key)
    seed_keys = jax.random.split(finite_key, seeds)
    total = limit_seeds + len(widths) * len(depths) * seeds * len(MODES)
    with tqdm(total=total, desc="compare", unit="run", disable=not progress) as bar:
        limits = []
        for limit_seed, k in enumerate(jax.random.split(limit_key, limit_seeds)):
            bar.set_postfix_str(f"NFD limit, seed {limit_seed}")
            limits.append(solve_limit(config, stream, key=k))
            bar.update()
        limit = _limit_record(limits, stream, config)
        runs = []
        for width, depth, seed, mode in itertools.product(widths, depths, range(seeds), MODES):
            bar.set_postfix_str(f"{mode} n={width} L={depth} seed {seed}")
            network = config.replace(network={"width": width, "depth": depth, "backward": mode})
            # the same key for both modes (a paired gap); independent across grid points
            run_key = jax.random.fold_in(jax.random.fold_in(seed_keys[seed], width), depth)
            result = train_finite(network, stream, key=run_key)
            runs.append(_run_record(result, limit, seed=seed))
            bar.update()
    grid = {
        "widths": list(widths),
        "depths": list(depths),
        "seeds": seeds,
        "modes": list(MODES),
        "particles": particles,
        "depth_steps": depth_steps,
        "limit_seeds": limit_seeds,
        "representation": plan.representation,
        "kernel_depths": list(config.run.kernel_depths),
    }
    summary = summarise(grid, runs, limit_norm=limit["norm"])
    return {
        "grid": grid,
        "limit": limit,
        "runs": runs,
        "summary": summary,
        "fits": fit_rates(grid, summary),
        "config": to_dict(config),
        "meta": run_meta(
            config,
            wall_time=time.perf_counter() - start,
            limit_wall_time_s=[r.meta["wall_time_s"] for r in limits],
            finite_wall_time_s=float(sum(r["wall_time_s"] for r in runs)),
        ),
    }


def _limit_record(limits: list[Result], stream: DataStream, config: Config) -> dict[str, Any]:
    """The reference (seed means), its losses, its Monte Carlo error, and every raw solve."""
    f_eval = np.stack([np.asarray(r.f_eval) for r in limits])
    f_train = np.stack([np.asarray(r.f_train) for r in limits])
    f_ref = f_eval.mean(axis=0)
    norm = float(np.linalg.norm(f_ref))
    if not norm > 0.0:
        raise ValueError("the limit's eval predictions are all zero: relative errors are undefined")
    kernels = {name: np.stack([np.asarray(r.kernels[name]) for r in limits]) for name in KERNELS}
    count = len(limits)
    mc = {"f_eval_single": None, "f_eval_mean": None, "loss_eval_final_stderr": None}
    mc["kernels_single"] = {name: None for name in KERNELS}
    if count >= 2:
        single = math.sqrt(float(np.sum(f_eval.var(axis=0, ddof=1)))) / norm
        mc["f_eval_single"], mc["f_eval_mean"] = single, single / math.sqrt(count)
        finals = [float(r.loss_eval[-1]) for r in limits]
        mc["loss_eval_final_stderr"] = float(np.std(finals, ddof=1) / math.sqrt(count))
        for name, stack in kernels.items():
            spread = np.sqrt(np.sum(stack.var(axis=0, ddof=1), axis=(0, 2, 3)))
            mc["kernels_single"][name] = spread / per_depth_norm(stack.mean(axis=0))
    producer = limits[0].producer
    return {
        "f_eval": f_ref,
        "f_train": f_train.mean(axis=0),
        "norm": norm,
        "loss_eval": np.asarray(loss_of(config)(f_ref, stream.y_eval[None])).mean(axis=-1),
        "loss_train": np.asarray(loss_of(config)(f_train.mean(axis=0), stream.y_train)).mean(
            axis=-1
        ),
        "kernels": {name: k.mean(axis=0) for name, k in kernels.items()},
        "kernel_t": [p / producer["depth_steps"] for p in limits[0].kernels["layers"]],
        "mc_error": mc,
        "producer": producer,
        "seeds": [
            {
                "f_eval": r.f_eval,
                "f_train": r.f_train,
                "loss_eval": r.loss_eval,
                "loss_train": r.loss_train,
                "kernels": {name: r.kernels[name] for name in KERNELS},
                "wall_time_s": r.meta["wall_time_s"],
            }
            for r in limits
        ],
    }


def _run_record(result: Result, limit: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """One finite run's raw outputs and its distances to the limit."""
    f_eval = np.asarray(result.f_eval)
    producer = result.producer
    kernels = {name: np.asarray(result.kernels[name]) for name in KERNELS}
    return {
        "mode": producer["backward"],
        "width": producer["width"],
        "depth": producer["depth"],
        "seed": seed,
        "error": float(np.linalg.norm(f_eval - limit["f_eval"])) / limit["norm"],
        "kernel_error": {
            name: per_depth_norm(kernels[name] - limit["kernels"][name])
            / per_depth_norm(limit["kernels"][name])
            for name in KERNELS
        },
        "kernel_t": [layer / producer["depth"] for layer in result.kernels["layers"]],
        "f_eval": f_eval,
        "f_train": np.asarray(result.f_train),
        "loss_eval": np.asarray(result.loss_eval),
        "loss_train": np.asarray(result.loss_train),
        "kernels": kernels,
        "wall_time_s": result.meta["wall_time_s"],
    }


def write_compare(data: dict[str, Any], directory) -> Path:
    """Write `data` as DIR/compare.json (arrays as lists, NaN and infinities as null)."""
    return write_json(Path(directory) / COMPARE_FILE, data)


def read_compare(directory) -> dict[str, Any]:
    """The data of DIR/compare.json (or of the file itself), with lists left as lists."""
    path = Path(directory)
    if path.suffix != ".json":
        path = path / COMPARE_FILE
    return read_json(path, what="compare")
