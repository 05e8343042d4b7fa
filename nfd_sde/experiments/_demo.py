"""`demo`: the NFD limit (with its error band) against ensembles of finite networks of growing
width, on the built-in config (`nfd_sde/configs/default.toml`).

    nfd-sde demo [--out DIR] [--fast] [--overwrite]

The limit is solved on M = L depth steps without extrapolation, so it is the exact n -> infinity
limit of the depth-L decoupled networks it is compared with (spec section 2); its band is the
Monte Carlo error over independent particle groups. Every width trains several seeds in both
backward modes; the ensemble mean's distance to the limit, against width, gives the rate at which
the decoupled networks converge (their bias is O(1/n)).
"""

import argparse
import importlib.resources
from pathlib import Path
from typing import Any

import jax
import numpy as np

from solvers import fit_loglog

from ..finite import train_finite
from ..limit import solve_limit
from ..model import Config, DataStream, load_config, load_stream
from ._arguments import refuse_existing
from ._commands import Command
from ._demo_plots import plot_demo
from ._records import write_json, write_result
from ._single_runs import describe_limit, loss_summary, timing

DEFAULT_CONFIG = importlib.resources.files("nfd_sde") / "configs" / "default.toml"
DEMO_WIDTHS = (64, 256, 1024)
DEMO_SEEDS = 8
FAST_DEMO_WIDTHS = (16, 32)
FAST_DEMO_SEEDS = 2
FAST_DEMO_OVERRIDES = (
    "solver.particles=256",
    "solver.groups=2",
    "solver.depth_steps=4",
    "training.steps=2",
    "training.batch=2",
    "data.eval_size=4",
)
MODES = ("decoupled", "standard")


def run_demo(
    config: Config,
    stream: DataStream,
    *,
    widths: tuple[int, ...],
    seeds: int,
    key,
    progress: bool = False,
    out: Path | None = None,
) -> dict[str, Any]:
    """The limit at M = L and `seeds` finite networks per width and backward mode; writes each
    result under `out` when given."""
    depth = config.solver.depth_steps
    config = config.replace(solver={"levels": 1}, network={"depth": depth})
    key_limit, key_finite = jax.random.split(key)
    limit = solve_limit(config, stream, key=key_limit, progress=progress)
    if out is not None:
        write_result(limit, out / "limit")
    print(f"  {describe_limit(limit)}: {loss_summary(limit)}; {timing(limit)}", flush=True)
    seed_keys = jax.random.split(key_finite, seeds)
    ensembles = {}
    for mode in MODES:
        for width in widths:
            net = config.replace(network={"width": width, "backward": mode})
            runs = [train_finite(net, stream, key=jax.random.fold_in(k, width)) for k in seed_keys]
            if out is not None:
                for seed, result in enumerate(runs):
                    write_result(result, out / f"finite_{mode}_w{width}_s{seed}")
            ensembles[(mode, width)] = runs
    return {"limit": limit, "ensembles": ensembles, "summary": summarise(limit, ensembles)}


def summarise(limit, ensembles) -> dict[str, Any]:
    """Per mode and width: the ensemble's mean eval predictions and their standard error, and
    the relative distance of that mean to the limit, ||mean - f_limit|| / ||f_limit|| over every
    step and input, with its standard error (delta method over the seeds' and the limit's
    errors) and debiased: the seeds' and the limit's Monte Carlo noise add sum(se^2) to the
    expected squared distance, which is subtracted (the bias of the decoupled networks is
    O(1/n), under a noise floor of O(n^-1/2 / sqrt(seeds))); for the decoupled mode, the fitted
    rate of the debiased distance in n."""
    f_limit = np.asarray(limit.f_eval)
    limit_se = 0.0 if limit.stderr is None else np.asarray(limit.stderr["f_eval"])
    norm = float(np.linalg.norm(f_limit))
    rows = []
    for (mode, width), runs in ensembles.items():
        f = np.stack([np.asarray(r.f_eval) for r in runs])
        mean = f.mean(axis=0)
        se = f.std(axis=0, ddof=1) / np.sqrt(len(runs)) if len(runs) > 1 else np.zeros_like(mean)
        diff = mean - f_limit
        distance = float(np.linalg.norm(diff))
        weights = diff / max(distance, 1e-300)
        distance_se = float(np.sqrt(np.sum(weights**2 * (se**2 + limit_se**2))))
        # the seeds' and the limit's own noise add sum(se^2) to the expected squared distance
        floor = float(np.sum(se**2 + limit_se**2))
        debiased = float(np.sqrt(max(distance**2 - floor, 0.0)))
        rows.append(
            {
                "mode": mode,
                "width": width,
                "mean": mean,
                "stderr": se,
                "loss_eval": np.mean([r.loss_eval for r in runs], axis=0),
                "loss_eval_stderr": np.std([r.loss_eval for r in runs], axis=0, ddof=1)
                / np.sqrt(len(runs))
                if len(runs) > 1
                else None,
                "distance": distance / norm,
                "distance_stderr": distance_se / norm,
                "debiased": debiased / norm,
                "noise_floor": float(np.sqrt(floor)) / norm,
            }
        )
    decoupled = [r for r in rows if r["mode"] == "decoupled"]
    fit = None
    if len(decoupled) > 1 and all(r["debiased"] > 0 for r in decoupled):
        errors = [r["distance_stderr"] for r in decoupled]
        weights = (
            [(r["debiased"] / e) ** 2 for r, e in zip(decoupled, errors)]
            if all(e > 0 for e in errors)
            else None
        )
        result = fit_loglog(
            [r["width"] for r in decoupled], [r["debiased"] for r in decoupled], weights
        )
        fit = {"slope": result.slope, "ci95": list(result.ci95), "prefactor": result.prefactor}
    return {"rows": rows, "rate": fit}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
    parser.add_argument("--fast", action="store_true", help="tiny sizes (seconds, for tests)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")


def _demo(args: argparse.Namespace) -> None:
    out: Path = args.out
    with importlib.resources.as_file(DEFAULT_CONFIG) as path:
        config = load_config(path, FAST_DEMO_OVERRIDES if args.fast else ())
    widths = FAST_DEMO_WIDTHS if args.fast else DEMO_WIDTHS
    seeds = FAST_DEMO_SEEDS if args.fast else DEMO_SEEDS
    refuse_existing(out, overwrite=args.overwrite, name="demo.json")
    stream = load_stream(config)
    print(
        f"demo: {stream.steps} SGD steps of batch {stream.batch}, {len(stream.x_eval)} eval "
        f"inputs; depth L = M = {config.solver.depth_steps}; widths {list(widths)}, {seeds} "
        "seeds each, both backward modes",
        flush=True,
    )
    data = run_demo(
        config,
        stream,
        widths=widths,
        seeds=seeds,
        key=jax.random.key(config.run.seed),
        progress=True,
        out=out,
    )
    for row in data["summary"]["rows"]:
        print(
            f"  {row['mode']} n={row['width']}: ensemble mean {100 * row['distance']:.3g} +- "
            f"{100 * row['distance_stderr']:.2g} % from the limit (debiased "
            f"{100 * row['debiased']:.3g} %, noise floor {100 * row['noise_floor']:.2g} %)"
        )
    rate = data["summary"]["rate"]
    if rate is not None:
        low, high = rate["ci95"]
        print(
            f"  decoupled debiased distance ~ n^{rate['slope']:.2f} "
            f"(95% CI [{low:.2f}, {high:.2f}])"
        )
    figure = out / "overlay.png"  # before demo.json, which marks the run complete
    plot_demo(data, figure)
    write_json(out / "demo.json", {"summary": data["summary"], "limit": data["limit"].to_json()})
    print(f"wrote results under {out}/ and the figure {figure}")


DEMO = Command(
    name="demo",
    help="limit vs finite-network ensembles on the built-in config",
    description="Solve the limit (with its error band) and train ensembles of finite networks "
    "of growing width on the built-in config, then overlay them in one figure.",
    add_arguments=_add_arguments,
    main=_demo,
)
