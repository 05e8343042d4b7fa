"""`curves`: a whole training run on a classification task, the NFD limit with its 95% band
beside seed ensembles of finite networks at several widths, eval loss and accuracy at every SGD
step, for one or more losses.

    nfd-sde curves [CONFIG] --widths 64,256 --seeds 8 --losses cross_entropy,mse --out DIR

Per loss: the limit (`solve_limit` on the config with that loss, the network's backward mode,
infinite depth when `solver.levels` > 1) and, per width, `train_ensemble` over `--seeds` keys at
depth `network.depth`. Every finished piece is kept under DIR/runs/ (a killed run resumes).

Accuracy is the fraction of eval inputs whose largest output is the label's. The limit's
accuracy comes from its estimated outputs; its 95% band from theirs: an eval input is decided
when the top output's band and the runner-up's band do not overlap; the band's ends count the
undecided inputs as wrong and as right. A finite width's accuracy and loss are the ensemble's
mean over seeds with a 95% band of 1.96 standard errors (diverged members left out, counted).
"""

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ...finite import train_ensemble
from ...limit import solve_limit
from ...model import Config, DataStream, Result, interval95, json_ready, read_result, to_dict
from ..common import read_json, write_json, write_result


@dataclasses.dataclass(frozen=True)
class CurveSizes:
    """The finite side: `widths` and `seeds` per width (the limit's sizes are the config's)."""

    widths: tuple[int, ...]
    seeds: int


def class_labels(y: np.ndarray) -> np.ndarray:
    """The labels of one-hot targets (inputs, classes); a ValueError names other targets."""
    y = np.asarray(y)
    one_hot = y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1))
    if not one_hot or not np.all(y.sum(axis=1) == 1):
        raise ValueError(
            "curves draws accuracy, so the targets must be class labels (one-hot): use "
            'data.source="digits" or "cifar10", or an npz file with one-hot targets'
        )
    return y.argmax(axis=1)


def accuracy(f: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(..., inputs, classes) outputs -> (...) fraction of inputs whose top output is the label."""
    return (np.asarray(f).argmax(axis=-1) == labels).mean(axis=-1)


def accuracy_band(f: np.ndarray, half: np.ndarray | None, labels: np.ndarray):
    """(steps, inputs, classes) outputs and their 95% half-widths -> (low, high) accuracy per
    step: an input is decided when its top output minus its half-width exceeds every other
    output plus its own; undecided inputs count as wrong (low) and as right (high)."""
    if half is None:
        return None, None
    top = f.argmax(axis=-1)
    top_low = np.take_along_axis(f - half, top[..., None], axis=-1)[..., 0]
    others = np.where(np.arange(f.shape[-1]) == top[..., None], -np.inf, f + half)
    decided = top_low > others.max(axis=-1)
    right = top == labels
    return (right & decided).mean(axis=-1), (right | ~decided).mean(axis=-1)


def run_curves(
    config: Config,
    stream: DataStream,
    *,
    sizes: CurveSizes,
    losses: tuple[str, ...],
    key,
    out: Path | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """{"losses": {loss: {"limit": ..., "finite": [...]}}, "steps", "widths", "seeds"}: per step,
    eval loss and accuracy with their 95% bands (module docstring). With `out`, each finished
    solve and ensemble is kept under out/runs/ and read back by a rerun of the same config
    (a piece of another config is computed again)."""
    labels = class_labels(stream.y_eval)
    runs = None if out is None else Path(out) / "runs"
    config = config.replace(solver={"backward": config.network.backward})
    data: dict[str, Any] = {}
    for loss in losses:
        cfg = config.replace(training={"loss": loss})
        limit = _limit(cfg, stream, labels, key, runs, loss, progress)
        finite = [
            _finite(cfg, stream, labels, width, sizes.seeds, key, runs, loss, progress)
            for width in sizes.widths
        ]
        data[loss] = {"limit": limit, "finite": finite}
    return {
        "losses": data,
        "steps": int(stream.steps),
        "batch": int(stream.batch),
        "eval_size": int(stream.x_eval.shape[0]),
        "depth": config.network.depth,
        "backward": config.network.backward,
        "widths": list(sizes.widths),
        "seeds": sizes.seeds,
        "data": stream.origin,
    }


def _limit(config, stream, labels, key, runs, loss, progress) -> dict[str, Any]:
    folder = None if runs is None else runs / f"limit_{loss}"
    stored = folder is not None and (folder / "result.json").is_file()
    result = read_result(folder) if stored else None
    if result is None or result.config != json_ready(to_dict(config)):
        if progress:
            print(f"curves: the limit, {loss}", flush=True)
        result = solve_limit(config, stream, key=key, progress=progress)
        if folder is not None:
            write_result(result, folder)
    return limit_curves(result, labels)


def limit_curves(result: Result, labels: np.ndarray) -> dict[str, Any]:
    """A limit result's eval loss and accuracy per step with their 95% bands."""
    f = np.asarray(result.f_eval, float)
    low, high = accuracy_band(f, interval95(result, "f_eval"), labels)
    producer = result.producer
    return {
        "loss": np.asarray(result.loss_eval, float),
        "loss_half95": interval95(result, "loss_eval"),
        "accuracy": accuracy(f, labels),
        "accuracy_low": low,
        "accuracy_high": high,
        "diverged": result.status["diverged"],
        "particles": producer.get("particles"),
        "groups": producer.get("groups"),
        "grids": producer.get("grids"),
        "representation": producer.get("representation"),
        "wall_time_s": result.meta.get("wall_time_s"),
    }


def _finite(config, stream, labels, width, seeds, key, runs, loss, progress) -> dict[str, Any]:
    path = None if runs is None else runs / f"finite_{loss}_n{width}_s{seeds}.json"
    sized = config.replace(network={"width": width})
    if path is not None and path.is_file():
        cell = read_json(path)
        if cell.get("config") == json_ready(to_dict(sized)):
            return cell
    if progress:
        print(f"curves: {seeds} networks of width {width}, {loss}", flush=True)
    keys = jax.random.split(jax.random.fold_in(key, width), seeds)
    result = train_ensemble(sized, stream, keys=keys)
    cell = ensemble_curves(result, labels, width) | {"config": to_dict(sized)}
    if path is not None:
        write_json(path, cell)
    return cell


def ensemble_curves(result: Result, labels: np.ndarray, width: int) -> dict[str, Any]:
    """An ensemble's (members first) mean eval loss and accuracy per step with 1.96 standard
    errors over the members whose run stayed finite."""
    loss = np.asarray(result.loss_eval, float)
    f = np.asarray(result.f_eval, float)
    ok = np.all(np.isfinite(loss), axis=1) & np.all(np.isfinite(f), axis=(1, 2, 3))
    cell: dict[str, Any] = {"width": width, "members": int(len(loss)), "diverged": int((~ok).sum())}
    for name, values in (("loss", loss[ok]), ("accuracy", accuracy(f[ok], labels))):
        count = len(values)
        cell[name] = values.mean(axis=0) if count else None
        cell[f"{name}_half95"] = (
            1.96 * values.std(axis=0, ddof=1) / np.sqrt(count) if count > 1 else None
        )
    wall = result.meta.get("wall_time_s")
    cell["wall_time_s"] = wall
    return cell
