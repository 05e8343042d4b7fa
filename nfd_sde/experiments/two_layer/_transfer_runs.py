"""The runs of a learning-rate transfer sweep: grouped into cells of seeds, trained (all seeds
of a cell at once by default) and recorded with the divergence rule of `_transfer`."""

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ...finite import LossCurves, train_losses_ensemble
from ...model import Config, first_nonfinite_step

TrainFn = Callable[..., Any]  # (config, stream, *, key) -> anything with loss_train, loss_eval


def cells(todo: list[dict[str, Any]]):
    """The runs grouped by everything but the seed (consecutive in `_runs`' order)."""
    cell: list[dict[str, Any]] = []
    for params in todo:
        if cell and {**params, "seed": 0} != {**cell[0], "seed": 0}:
            yield cell
            cell = []
        cell.append(params)
    if cell:
        yield cell


def _run_config(config: Config, params: dict[str, Any]) -> Config:
    return config.replace(
        network={"width": params["width"], "depth": params["depth"]},
        training={"eta": params["lr"], "first_layer_exponent": params["c"]},
        run={"seed": params["seed"]},
    )


def train_cell(config, stream, cell: list[dict[str, Any]], train_fn: TrainFn | None):
    """Yield (params, loss curves, wall time) for the runs of one cell: all at once with the
    vmapped default, else one `train_fn` call per run (each yielded as it finishes)."""
    if not cell:
        return
    if train_fn is None:
        keys = jax.numpy.stack([jax.random.key(p["seed"]) for p in cell])
        start = time.perf_counter()
        curves = train_losses_ensemble(_run_config(config, cell[0]), stream, keys=keys)
        wall = (time.perf_counter() - start) / len(cell)
        for i, params in enumerate(cell):
            yield params, LossCurves(curves.loss_train[i], curves.loss_eval[i]), wall
        return
    for params in cell:
        start = time.perf_counter()
        curves = train_fn(_run_config(config, params), stream, key=jax.random.key(params["seed"]))
        yield params, curves, time.perf_counter() - start


def record_run(params, curves, wall: float, factor: float) -> dict[str, Any]:
    curves = LossCurves(np.asarray(curves.loss_train, float), np.asarray(curves.loss_eval, float))
    tail = max(1, len(curves.loss_train) // 10)
    final_train = float(np.mean(curves.loss_train[-tail:]))
    final_eval = float(curves.loss_eval[-1])
    initial = float(curves.loss_eval[0])
    first_bad = first_nonfinite_step(curves.loss_train, curves.loss_eval)
    diverged = first_bad is not None or max(final_train, final_eval) > factor * initial
    return {
        **params,
        "log2_lr": math.log2(params["lr"]),
        "final_train": number(final_train),
        "final_eval": number(final_eval),
        "initial_loss": number(initial),
        "diverged": diverged,
        "first_bad_step": first_bad,
        "loss_train": [number(v) for v in curves.loss_train],
        "loss_eval": [number(v) for v in curves.loss_eval],
        "wall_time_s": wall,
    }


def number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
