"""`demo`: one limit solve and decoupled and standard finite networks of several widths on the
built-in config (`nfd_sde/configs/default.toml`), overlaid in one figure.

    nfd-sde demo [--out DIR] [--fast] [--overwrite]
"""

import argparse
import importlib.resources
from pathlib import Path

import jax
import numpy as np

from ..finite import train_finite
from ..limit import solve_limit
from ..model import load_config, load_stream
from ._arguments import refuse_existing
from ._commands import Command
from ._plots import plot_overlay
from ._records import write_result
from ._single_runs import describe_finite, describe_limit, loss_summary, timing

DEFAULT_CONFIG = importlib.resources.files("nfd_sde") / "configs" / "default.toml"
DEMO_WIDTHS = (64, 256, 1024)
FAST_DEMO_WIDTHS = (16,)
FAST_DEMO_OVERRIDES = (
    "solver.particles=256",
    "solver.depth_steps=4",
    "training.steps=2",
    "training.batch=2",
    "data.eval_size=4",
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
    parser.add_argument("--fast", action="store_true", help="tiny sizes (seconds, for tests)")
    parser.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")


def _demo(args: argparse.Namespace) -> None:
    out: Path = args.out
    with importlib.resources.as_file(DEFAULT_CONFIG) as path:
        config = load_config(path, FAST_DEMO_OVERRIDES if args.fast else ())
    depth = config.solver.depth_steps
    widths = FAST_DEMO_WIDTHS if args.fast else DEMO_WIDTHS
    runs = [(f"finite_{b}_w{w}", w, b) for b in ("decoupled", "standard") for w in widths]
    for name in ("limit", *(name for name, _, _ in runs)):
        refuse_existing(out / name, overwrite=args.overwrite)
    stream = load_stream(config)
    key_limit, key_finite = jax.random.split(jax.random.key(config.run.seed))
    print(f"demo: {stream.steps} SGD steps of batch {stream.batch}, {len(stream.x_eval)} eval")

    limit = solve_limit(config, stream, key=key_limit, progress=True)
    write_result(limit, out / "limit")
    print(f"  {describe_limit(limit)}: {loss_summary(limit)}; {timing(limit)}")

    finite = {}
    for (name, width, backward), key in zip(runs, jax.random.split(key_finite, len(runs))):
        net_config = config.replace(network={"width": width, "depth": depth, "backward": backward})
        result = train_finite(net_config, stream, key=key)
        write_result(result, out / name)
        finite[f"{backward} n={width}, L={depth}"] = result
        gap = _rms(np.asarray(result.f_eval)[-1] - np.asarray(limit.f_eval)[-1])
        gap = f"{gap:.3g} RMS from the limit" if np.isfinite(gap) else "not finite"
        print(
            f"  {describe_finite(result)}: {loss_summary(result)}; final eval predictions "
            f"{gap}; {timing(result)}"
        )
    figure = out / "overlay.png"
    plot_overlay(limit, finite, figure)
    print(f"wrote results under {out}/ and the figure {figure}")


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


DEMO = Command(
    name="demo",
    help="limit vs finite networks on the built-in config",
    description="Solve the limit and train a few finite networks on the built-in config, "
    "then overlay them in one figure.",
    add_arguments=_add_arguments,
    main=_demo,
)
