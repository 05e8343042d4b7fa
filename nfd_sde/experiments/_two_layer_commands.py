"""`collapse`, `transfer` and `norms`: the two-layer diagnostics on the command line.

    nfd-sde collapse CONFIG.toml --depths 4,8,16 --c 0,0.5 [--widths 128,256] [--seeds S]
                     [--steps K] --out DIR [--overwrite] [--set SECTION.FIELD=VALUE ...]
    nfd-sde transfer CONFIG.toml --depths 4,8,16 --widths 128 --lrs 2^-4:2 --c 0,0.25,0.5
                     [--seeds S] --out DIR [--overwrite] [--set ...]
    nfd-sde norms CONFIG.toml --depths 4,16,64 [--width N] [--seeds S] --out DIR [--set ...]

`--lrs` items are numbers or powers of two, `2^k`, and `2^a:b` is every 2^k for integer k from
a to b.
"""

import argparse
import functools
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..model import BLOCK_ORDERS, load_config, load_stream, run_meta, to_dict
from ._arguments import (
    add_run_arguments,
    check_out_dir,
    count_type,
    learning_rates_type,
    numbers_type,
    refuse_existing,
    sizes_type,
)
from ._collapse import collapse_diagnostic
from ._collapse_limit import collapse_against_limit, plot_collapse_limit
from ._commands import Command
from ._norms import feature_norms
from ._overrides import load_with_flags
from ._records import write_json
from ._transfer import transfer_sweep
from ._two_layer_plots import plot_collapse, plot_coordinate_check, plot_norms, plot_transfer

DEPTHS = functools.partial(sizes_type, example="4,8,16")
WIDTHS = functools.partial(sizes_type, example="128,256")
EXPONENTS = functools.partial(numbers_type, example="0,0.25,0.5")


def _add_common(parser: argparse.ArgumentParser, *, seeds: int) -> None:
    add_run_arguments(parser, example="training.steps=100")
    parser.add_argument("--seeds", type=count_type, default=seeds, help=f"seeds (default {seeds})")


def _add_collapse(parser: argparse.ArgumentParser) -> None:
    _add_common(parser, seeds=3)
    parser.add_argument(
        "--depths",
        type=DEPTHS,
        default=(4, 8, 16, 32),
        help="depths L, e.g. 4,8,16 (two or more for slopes)",
    )
    parser.add_argument(
        "--c", type=EXPONENTS, default=(0.0, 0.5), help="first-layer exponents c, e.g. 0,0.5"
    )
    parser.add_argument("--widths", type=WIDTHS, help="widths n (default: network.width)")
    parser.add_argument(
        "--steps", type=count_type, default=1, help="SGD steps measured (default 1)"
    )
    parser.add_argument(
        "--limit-particles",
        type=count_type,
        metavar="N",
        help="also solve the limit at M = L with N particles x 8 groups and overlay its Delta u "
        "along depth on the finite networks (collapse_limit.json, collapse_limit.png)",
    )


def _add_transfer(parser: argparse.ArgumentParser) -> None:
    _add_common(parser, seeds=2)
    parser.add_argument("--depths", type=DEPTHS, required=True, help="depths L, e.g. 4,8,16")
    parser.add_argument("--widths", type=WIDTHS, help="widths n (default: network.width)")
    parser.add_argument(
        "--lrs",
        type=learning_rates_type,
        required=True,
        help="learning rates, comma-separated: numbers (0.1), powers of two (2^-3) or ranges "
        "2^a:b, every 2^k for the integers k = a..b (2^-4:2 is 2^-4, 2^-3, ..., 2^2)",
    )
    parser.add_argument(
        "--c", type=EXPONENTS, default=(0.0,), help="first-layer exponents c, e.g. 0,0.25,0.5"
    )


def _add_norms(parser: argparse.ArgumentParser) -> None:
    _add_common(parser, seeds=2)
    parser.add_argument("--depths", type=DEPTHS, default=(4, 16, 64), help="depths L, e.g. 4,16,64")
    parser.add_argument(
        "--widths",
        "--width",
        dest="widths",
        type=WIDTHS,
        metavar="N",
        help="the one width n of every network (default: network.width; --width is the same "
        "flag, as in train)",
    )


def _one_width(widths, config) -> int:
    if widths is None:
        return config.network.width
    if len(widths) != 1:
        raise ValueError(
            f"--widths {','.join(map(str, widths))}: norms measures one width; give one"
        )
    return widths[0]


def _collapse(args: argparse.Namespace) -> None:
    config = load_with_flags(args.config, args.overrides, {"training.steps": args.steps})
    config = config.replace(model={"block": "two_layer"})
    widths = args.widths or (config.network.width,)
    refuse_existing(args.out, overwrite=args.overwrite, name="collapse.json")
    start = time.perf_counter()
    stream = load_stream(config)
    print(f"data: {stream.origin}")
    result = collapse_diagnostic(
        config,
        stream,
        depths=args.depths,
        exponents=args.c,
        widths=widths,
        seeds=args.seeds,
        steps=args.steps,
        key=jax.random.key(config.run.seed),
    )
    plot_collapse(result, args.out / "collapse.png")  # figures before the JSON that marks
    plot_coordinate_check(result, args.out / "coordinate_check.png")  # the run complete
    path = _write(args.out / "collapse.json", result, config, start)
    for run in result["runs"]:
        if run["diverged"]:
            print(
                f"DIVERGED: n={run['width']}, L={run['depth']}, c={run['c']:g}: {run['diverged']} "
                f"of {result['seeds']} seed(s), first bad steps {run['first_bad_step']}"
            )
    for fit in result["slopes"]:
        expected = "" if fit["expected"] is None else f" (expected {fit['expected']:g})"
        where = f"n={fit['width']}, c={fit['c']:g}, {fit['quantity']}"
        if fit["slope"] is None:
            print(f"{where}: no slope (finite, positive values at fewer than two depths)")
            continue
        print(
            f"{where}: slope {fit['slope']:.3f} [{fit['ci95'][0]:.3f}, {fit['ci95'][1]:.3f}], "
            f"seed SE {fit['seed_se']:.3f}" + expected
        )
    print(f"wrote {path}, collapse.png and coordinate_check.png")
    if args.limit_particles:
        overlay = collapse_against_limit(
            config,
            stream,
            depths=args.depths,
            exponents=args.c,
            widths=widths,
            seeds=args.seeds,
            steps=args.steps,
            particles=args.limit_particles,
            groups=8,
            key=jax.random.key(config.run.seed),
        )
        plot_collapse_limit(overlay, args.out / "collapse_limit.png")
        _write(args.out / "collapse_limit.json", overlay, config, start)
        for fit in overlay["fits"]:
            low, high = fit["ci95"]
            print(
                f"limit, c={fit['c']:g}: rms Delta u_l ~ L^{fit['slope']:.3f} [{low:.3f}, "
                f"{high:.3f}] (expected {fit['expected']:g})"
            )
        print("wrote collapse_limit.json and collapse_limit.png")


def _transfer(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.overrides)
    check_out_dir(args.out)
    summary = transfer_sweep(
        config,
        depths=args.depths,
        widths=args.widths or (config.network.width,),
        lrs=args.lrs,
        exponents=args.c,
        seeds=args.seeds,
        out_dir=args.out,
        progress=True,
        overwrite=args.overwrite,
    )
    plot_transfer(summary, args.out / "transfer.png")
    print(f"data: {summary['data']}")
    print(
        f"{summary['runs_trained']} runs trained, {summary['runs_resumed']} resumed, "
        f"{summary['runs_diverged']} diverged (marked, left out of the optima)"
    )
    for panel in summary["panels"]:
        stats = panel["train"]
        optima = ", ".join(
            f"L={d}: {'-' if o is None else f'{o:g}'}"
            for d, o in zip(panel["depths"], stats["optimum_log2_lr"])
        )
        spread = stats["spread_log2_lr"]
        print(
            f"c={panel['c']:g}, n={panel['width']}: optimal log2 eta (train) {optima}; "
            f"spread {'n/a' if spread is None else f'{spread:g}'}"
        )
    print(f"wrote {args.out / 'transfer.json'} and {args.out / 'transfer.png'}")


def _norms(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.overrides)
    refuse_existing(args.out, overwrite=args.overwrite, name="norms.json")
    start = time.perf_counter()
    stream = load_stream(config)
    print(f"data: {stream.origin}")
    result = feature_norms(
        config,
        stream,
        depths=args.depths,
        width=_one_width(args.widths, config),
        seeds=args.seeds,
        key=jax.random.key(config.run.seed),
        block_orders=BLOCK_ORDERS,
    )
    plot_norms(result, args.out / "norms.png")  # before the JSON that marks the run complete
    path = _write(args.out / "norms.json", result, config, start)
    for run in result["runs"]:
        init, trained = np.asarray(run["init"]), np.asarray(run["trained"])
        after = f"{trained[-1]:.3g} trained"
        if run["diverged"]:
            after = f"DIVERGED in training ({run['diverged']} of {result['seeds']} seed(s))"
        print(
            f"{run['block_order']}, L={run['depth']}: rms h_0 {init[0]:.3g}, h_L {init[-1]:.3g} "
            f"at init, {after}"
        )
    print(f"wrote {path} and norms.png")


def _write(path: Path, result: dict[str, Any], config, start: float) -> Path:
    data = {**result, "config": to_dict(config)}
    data["meta"] = run_meta(config, wall_time=time.perf_counter() - start)
    return write_json(path, data)


COLLAPSE = Command(
    name="collapse",
    help="first-layer collapse of two-layer blocks vs depth",
    description="Measure the learned changes of two-layer blocks against depth (and the muP "
    "coordinate check) for each first-layer exponent c; fit the slopes in L.",
    add_arguments=_add_collapse,
    main=_collapse,
)
TRANSFER = Command(
    name="transfer",
    help="learning-rate transfer across depth",
    description="Final loss against learning rate for several depths and exponents c. "
    "Resumes from --out when it holds a partial sweep; --overwrite restarts.",
    add_arguments=_add_transfer,
    main=_transfer,
)
NORMS = Command(
    name="norms",
    help="feature norms along depth, pre- vs post-activation",
    description="rms of h_l along depth for pre- and post-activation blocks, at init and "
    "after training.",
    add_arguments=_add_norms,
    main=_norms,
)
