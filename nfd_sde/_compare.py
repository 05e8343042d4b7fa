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
import json
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from solvers import fit_loglog

from ._config import Config, to_dict
from ._data import DataStream
from ._finite_training import train_finite
from ._limit_plan import plan_limit
from ._limit_solver import solve_limit
from ._losses import example_loss
from ._result import Result, run_meta

MODES = ("decoupled", "standard")
KERNELS = ("feature_eval", "feature_train", "grad_train")
COMPARE_FILE = "compare.json"


def check_grid(
    *, widths, depths, seeds, particles, depth_steps, limit_seeds
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Refuse a bad grid with a message naming it; returns the sorted widths and depths."""
    checked = tuple(_size_list(name, v) for name, v in (("widths", widths), ("depths", depths)))
    counts = {
        "seeds": seeds,
        "particles": particles,
        "depth_steps": depth_steps,
        "limit_seeds": limit_seeds,
    }
    for name, value in counts.items():
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name}={value!r}: must be an integer >= 1")
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
        solver={"particles": particles, "depth_steps": depth_steps, "backward": "decoupled"}
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
    loss = config.training.loss
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
            mc["kernels_single"][name] = spread / _per_depth_norm(stack.mean(axis=0))
    producer = limits[0].producer
    return {
        "f_eval": f_ref,
        "f_train": f_train.mean(axis=0),
        "norm": norm,
        "loss_eval": np.asarray(example_loss(loss, f_ref, stream.y_eval[None])).mean(axis=-1),
        "loss_train": np.asarray(example_loss(loss, f_train.mean(axis=0), stream.y_train)).mean(
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
            name: _per_depth_norm(kernels[name] - limit["kernels"][name])
            / _per_depth_norm(limit["kernels"][name])
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


def _per_depth_norm(kernel: np.ndarray) -> np.ndarray:
    """Frobenius norm over steps and input pairs, one per recorded depth: (K, D, X, X) -> (D,)."""
    return np.sqrt(np.sum(np.square(kernel), axis=(0, 2, 3)))


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _size_list(name: str, values: Any) -> tuple[int, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"{name}={values!r}: give a list of integers >= 1")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty: give at least one integer >= 1")
    for value in values:
        if not _is_int(value) or value < 1:
            raise ValueError(f"{name}={values!r}: {value!r} is not an integer >= 1")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}={values!r}: every value must appear once")
    return tuple(sorted(int(v) for v in values))


def write_compare(data: dict[str, Any], directory) -> Path:
    """Write `data` as DIR/compare.json (arrays as lists, NaN and infinities as null)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    path = out / COMPARE_FILE
    with path.open("w") as fh:
        json.dump(_plain(data), fh, allow_nan=False)
    return path


def read_compare(directory) -> dict[str, Any]:
    """The data of DIR/compare.json (or of the file itself), with lists left as lists."""
    path = Path(directory)
    if path.suffix != ".json":
        path = path / COMPARE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{str(path)!r} does not exist; run `nfd-sde compare` first")
    with path.open() as fh:
        return json.load(fh)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return _plain(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
