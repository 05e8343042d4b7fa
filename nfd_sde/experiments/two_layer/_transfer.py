"""Learning-rate transfer across depth: final loss against log learning rate, per depth and c.

`run_transfer` trains one network per (exponent c, depth L, width n, learning rate eta, seed)
for the fixed budget `training.steps` on one data stream, and asks whether the optimal eta moves
with L. Each finished run is saved at once as `out_dir/runs/<run>.json`, so a sweep killed midway
resumes from its output directory and redoes only the missing runs; the summary
`out_dir/transfer.json` and the figure `out_dir/transfer.png` are (re)written at the end. A
directory holding a sweep of another config or grid (or first seed) is refused, so its summary
is never silently replaced; `overwrite` restarts it.

A run is *diverged* when a loss is not finite (`first_bad_step` records where) or its final
loss exceeds `divergence_factor` times the eval loss at init; diverged runs are kept and
marked, never raised. The final train
loss is the mean minibatch loss over the last max(1, K // 10) steps (each taken before its
update); the final eval loss is the eval loss after K steps. Per depth, the optimum is the
learning rate with the least seed-mean final loss among those where no seed diverged, and
`optimum_log2_lr_interp` refines it with a parabola through log-loss at the grid optimum and
its two neighbours.
"""

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ...model import Config, DataStream, block_of, load_stream, run_meta, to_dict
from ..common import count, numbers, read_json, sizes, write_json
from ._transfer_runs import TrainFn, cells, record_run, train_cell

CRITERIA = ("train", "eval")
DIVERGENCE_FACTOR = 1e3
# Fields each run overrides; the rest of the config must match for a sweep to resume.
SWEPT = {"network": ("width", "depth"), "training": ("eta", "first_layer_exponent")}


def run_transfer(
    config: Config,
    *,
    depths: Sequence[int],
    widths: Sequence[int],
    lrs: Sequence[float],
    exponents: Sequence[float],
    seeds: int,
    out_dir: str | Path,
    progress: bool = False,
    stream: DataStream | None = None,
    train_fn: TrainFn | None = None,
    divergence_factor: float = DIVERGENCE_FACTOR,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Run (or resume) the sweep and return its summary (also written to `transfer.json`).

    Seeds are run.seed, run.seed + 1, ...; seed s initialises with `jax.random.key(s)`, the same
    initial weights for every learning rate and exponent. `train_fn(config, stream, *, key)`
    returns an object with `loss_train` (K,) and `loss_eval` (K+1,) (`train_finite`'s Result
    and `train_losses` do). By default (None) the missing seeds of each (c, L, n, eta) are
    trained at once, vmapped and split over the visible devices (`train_losses_ensemble`); a
    given `train_fn` is called once per run.
    `overwrite` discards earlier runs in `out_dir` instead of resuming them.
    """
    grid = _grid(config, depths=depths, widths=widths, lrs=lrs, exponents=exponents, seeds=seeds)
    if not (math.isfinite(divergence_factor) and divergence_factor > 1):
        raise ValueError(f"divergence_factor={divergence_factor!r}: must be a finite number > 1")
    if config.training.steps < 1:
        raise ValueError(
            "training.steps=0: a learning-rate sweep needs at least one SGD step to compare"
        )
    out = Path(out_dir)
    runs_dir = out / "runs"
    _prepare(out, config, grid, overwrite=overwrite)
    stream = load_stream(config) if stream is None else stream
    start = time.perf_counter()
    records, done = {}, 0
    todo = list(_runs(grid, config.run.seed))
    bar = tqdm(total=len(todo), disable=not progress, desc="transfer sweep")
    for cell in cells(todo):
        missing = []
        for params in cell:
            record = _load_run(runs_dir / f"{transfer_run_name(**params)}.json", params)
            if record is None:
                missing.append(params)
            else:
                records[transfer_run_name(**params)] = record
                bar.update()
        for params, curves, wall in train_cell(config, stream, missing, train_fn):
            record = record_run(params, curves, wall, divergence_factor)
            write_json(runs_dir / f"{transfer_run_name(**params)}.json", record)
            records[transfer_run_name(**params)] = record
            done += 1
            bar.update()
    bar.close()
    records = [records[transfer_run_name(**params)] for params in todo]
    summary = summarise(records, grid)
    summary |= {
        "config": to_dict(config),
        "data": stream.origin,
        "runs_diverged": sum(bool(r["diverged"]) for r in records),
        "divergence_factor": divergence_factor,
        "runs_trained": done,
        "runs_resumed": len(records) - done,
        "meta": run_meta(config, wall_time=time.perf_counter() - start),
    }
    write_json(out / "transfer.json", summary)
    return summary


def transfer_run_name(*, c: float, depth: int, width: int, lr: float, seed: int) -> str:
    """The file stem of one run: exact (repr) numbers, so different grids never collide."""
    return f"c{c!r}_L{depth}_n{width}_lr{lr!r}_s{seed}".replace("-", "m")


def _grid(config: Config, *, depths, widths, lrs, exponents, seeds) -> dict[str, Any]:
    grid = {
        "depths": sizes("depths", depths),
        "widths": sizes("widths", widths),
        "lrs": numbers("lrs", lrs, positive=True),
        "exponents": numbers("exponents", exponents),
        "seeds": count("seeds", seeds),
    }
    swept = {g.exponent for g in block_of(config).weight_groups}
    if "first_layer_exponent" not in swept and len(grid["exponents"]) > 1:
        raise ValueError(
            f"exponents={list(grid['exponents'])}: model.block='{config.model.block}' has no "
            "weight group for training.first_layer_exponent to act on; give one exponent"
        )
    return grid


def _runs(grid: dict[str, Any], first_seed: int):
    for c in grid["exponents"]:
        for width in grid["widths"]:
            for depth in grid["depths"]:
                for lr in grid["lrs"]:
                    for seed in range(first_seed, first_seed + grid["seeds"]):
                        yield {"c": c, "depth": depth, "width": width, "lr": lr, "seed": seed}


def summarise(records: Sequence[dict[str, Any]], grid: dict[str, Any]) -> dict[str, Any]:
    """Per (c, width): seed-mean final losses on the (depth, lr) grid, optima, spreads."""
    index = {(r["c"], r["width"], r["depth"], r["lr"]): [] for r in records}
    for r in records:
        index[(r["c"], r["width"], r["depth"], r["lr"])].append(r)
    log2_lrs = np.log2(grid["lrs"])
    panels = []
    for c in grid["exponents"]:
        for width in grid["widths"]:
            panel = {"c": c, "width": width, "depths": list(grid["depths"])}
            panel["log2_lrs"] = log2_lrs.tolist()
            for criterion in CRITERIA:
                cells = [
                    [_cell(index[(c, width, depth, lr)], criterion) for lr in grid["lrs"]]
                    for depth in grid["depths"]
                ]
                panel[criterion] = _optima(cells, log2_lrs)
            panels.append(panel)
    spreads = {
        criterion: {f"c={p['c']!r}, n={p['width']}": p[criterion]["spread_log2_lr"] for p in panels}
        for criterion in CRITERIA
    }
    return {"grid": _plain_grid(grid), "panels": panels, "spread_log2_lr": spreads}


def _cell(runs: list[dict[str, Any]], criterion: str) -> dict[str, Any]:
    values = [r[f"final_{criterion}"] for r in runs]
    diverged = sum(bool(r["diverged"]) for r in runs)
    finite = [v for v, r in zip(values, runs) if not r["diverged"] and v is not None]
    return {
        "mean": float(np.mean(finite)) if finite and not diverged else None,
        "std": float(np.std(finite, ddof=1)) if len(finite) > 1 and not diverged else None,
        "diverged": diverged,
        "seeds": len(runs),
    }


def _optima(cells: list[list[dict[str, Any]]], log2_lrs: np.ndarray) -> dict[str, Any]:
    mean = [[cell["mean"] for cell in row] for row in cells]
    optimum, interp, best = [], [], []
    for row in mean:
        valid = [i for i, v in enumerate(row) if v is not None]
        if not valid:
            optimum.append(None), interp.append(None), best.append(None)
            continue
        i = min(valid, key=lambda j: row[j])
        optimum.append(float(log2_lrs[i]))
        interp.append(_parabola_vertex(row, log2_lrs, i))
        best.append(row[i])
    return {
        "mean": mean,
        "std": [[cell["std"] for cell in row] for row in cells],
        "diverged": [[cell["diverged"] for cell in row] for row in cells],
        "optimum_log2_lr": optimum,
        "optimum_log2_lr_interp": interp,
        "best_loss": best,
        "spread_log2_lr": _spread(optimum),
        "spread_log2_lr_interp": _spread(interp),
    }


def _parabola_vertex(row: list[float | None], x: np.ndarray, i: int) -> float:
    """Vertex of the parabola through log(loss) at the grid optimum i and its neighbours,
    clipped to their span; the grid value where a neighbour is missing or diverged."""
    if i == 0 or i == len(row) - 1 or row[i - 1] is None or row[i + 1] is None:
        return float(x[i])
    xs, ys = x[i - 1 : i + 2], np.log([row[i - 1], row[i], row[i + 1]])
    a, b, _ = np.polyfit(xs, ys, 2)
    if a <= 0:
        return float(x[i])
    return float(np.clip(-b / (2 * a), xs[0], xs[-1]))


def _spread(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(max(known) - min(known)) if len(known) > 1 else None


def _prepare(out: Path, config: Config, grid: dict[str, Any], *, overwrite: bool) -> None:
    """Create `out/runs`; resume only a sweep of the same config and grid, refuse any other
    (naming --overwrite), or clear it (overwrite)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a directory")
    manifest = out / "sweep.json"
    if overwrite:
        for path in (out / "runs").glob("*.json") if (out / "runs").is_dir() else ():
            path.unlink()
        for path in (manifest, out / "transfer.json"):
            path.unlink(missing_ok=True)
    base = _base_config(config)
    plain = _plain_grid(grid) | {"first_seed": config.run.seed}
    if manifest.exists():
        stored = read_json(manifest)
        if stored.get("config") != base:
            raise ValueError(
                f"{str(out)!r} holds a transfer sweep of a different config (beyond the swept "
                "width, depth, eta, first_layer_exponent, seed); pass --overwrite "
                "(overwrite=True) to restart it or choose another output directory"
            )
        if stored.get("grid", plain) != plain:
            changed = sorted(k for k in plain if stored["grid"].get(k) != plain[k])
            raise ValueError(
                f"{str(out)!r} holds a transfer sweep of another grid (its {', '.join(changed)} "
                "differ); pass --overwrite (overwrite=True) to restart it with this grid or "
                "choose another output directory"
            )
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_json(manifest, {"config": base, "grid": plain})


def _base_config(config: Config) -> dict[str, Any]:
    base = json.loads(json.dumps(to_dict(config)))
    for section, fields in SWEPT.items():
        for field in fields:
            base[section].pop(field)
    base["run"].pop("seed")
    return base


def _load_run(path: Path, params: dict[str, Any]) -> dict[str, Any] | None:
    """A finished run's record, or None if absent or unreadable (then it is rerun)."""
    try:
        with path.open() as fh:
            record = json.load(fh)
    except (OSError, ValueError):
        return None
    if any(record.get(k) != v for k, v in params.items()):
        return None
    return record


def _plain_grid(grid: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in grid.items()}
