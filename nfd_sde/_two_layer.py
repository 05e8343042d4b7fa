"""Two-layer residual blocks under depth-muP: figures and the `collapse`, `transfer` and `norms`
commands (the diagnostics themselves are in `_collapse` and `_transfer`).

    nfd-sde collapse CONFIG.toml --depths 4,8,16 --c 0,0.5 [--widths 128,256] [--seeds S]
                     [--steps K] --out DIR [--overwrite] [--set SECTION.FIELD=VALUE ...]
    nfd-sde transfer CONFIG.toml --depths 4,8,16 --widths 128 --lrs 2^-4:2 --c 0,0.25,0.5
                     [--seeds S] --out DIR [--overwrite] [--set ...]
    nfd-sde norms CONFIG.toml --depths 4,16,64 [--width N] [--seeds S] --out DIR [--set ...]

`register(subparsers)` adds them to an argparse subparsers object. `--lrs` items are numbers or
powers of two, `2^k`, and `2^a:b` is every 2^k for integer k from a to b.
"""

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ._cli_common import add_run_arguments, refuse_existing
from ._collapse import BLOCK_ORDERS, collapse_diagnostic, feature_norms
from ._config import load_config, to_dict
from ._data import load_stream
from ._result import json_ready, run_meta
from ._transfer import transfer_sweep
from ._two_layer_plots import plot_collapse, plot_coordinate_check, plot_norms, plot_transfer


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `collapse`, `transfer` and `norms` commands; each sets `command=function(args)`,
    which raises ValueError / OSError for a mistake in the input."""
    collapse = subparsers.add_parser(
        "collapse",
        help="first-layer collapse of two-layer blocks vs depth",
        description="Measure the learned changes of two-layer blocks against depth (and the muP "
        "coordinate check) for each first-layer exponent c; fit the slopes in L.",
    )
    _add_common(collapse, seeds=3)
    collapse.add_argument(
        "--depths", default="4,8,16,32", help="depths L, e.g. 4,8,16 (two or more for slopes)"
    )
    collapse.add_argument("--c", default="0,0.5", help="first-layer exponents c, e.g. 0,0.5")
    collapse.add_argument("--widths", help="widths n (default: network.width)")
    collapse.add_argument("--steps", type=int, default=1, help="SGD steps measured (default 1)")
    collapse.set_defaults(command=_collapse)

    transfer = subparsers.add_parser(
        "transfer",
        help="learning-rate transfer across depth",
        description="Final loss against learning rate for several depths and exponents c. "
        "Resumes from --out when it holds a partial sweep; --overwrite restarts.",
    )
    _add_common(transfer, seeds=2)
    transfer.add_argument("--depths", required=True, help="depths L, e.g. 4,8,16")
    transfer.add_argument("--widths", help="widths n (default: network.width)")
    transfer.add_argument("--lrs", required=True, help="learning rates: 0.1,0.2 or 2^-4:2")
    transfer.add_argument("--c", default="0", help="first-layer exponents c, e.g. 0,0.25,0.5")
    transfer.set_defaults(command=_transfer)

    norms = subparsers.add_parser(
        "norms",
        help="feature norms along depth, pre- vs post-activation",
        description="rms of h_l along depth for pre- and post-activation blocks, at init and "
        "after training.",
    )
    _add_common(norms, seeds=2)
    norms.add_argument("--depths", default="4,16,64", help="depths L, e.g. 4,16,64")
    norms.add_argument("--width", type=int, help="width n (default: network.width)")
    norms.set_defaults(command=_norms)


def _add_common(parser: argparse.ArgumentParser, *, seeds: int) -> None:
    add_run_arguments(parser, example="training.steps=100")
    parser.add_argument("--seeds", type=int, default=seeds, help=f"seeds (default {seeds})")


def _collapse(args: argparse.Namespace) -> None:
    config = load_config(args.config, [*args.overrides, f"training.steps={args.steps}"])
    config = config.replace(model={"block": "two_layer"})
    depths, exponents = parse_ints(args.depths, "--depths"), parse_floats(args.c, "--c")
    widths = parse_ints(args.widths, "--widths") if args.widths else [config.network.width]
    refuse_existing(args.out, overwrite=args.overwrite, name="collapse.json")
    start = time.perf_counter()
    result = collapse_diagnostic(
        config,
        load_stream(config),
        depths=depths,
        exponents=exponents,
        widths=widths,
        seeds=args.seeds,
        steps=args.steps,
        key=jax.random.key(config.run.seed),
    )
    path = _write(args.out / "collapse.json", result, config, start)
    plot_collapse(result, args.out / "collapse.png")
    plot_coordinate_check(result, args.out / "coordinate_check.png")
    for fit in result["slopes"]:
        expected = "" if fit["expected"] is None else f" (expected {fit['expected']:g})"
        print(
            f"n={fit['width']}, c={fit['c']:g}, {fit['quantity']}: slope {fit['slope']:.3f} "
            f"[{fit['ci95'][0]:.3f}, {fit['ci95'][1]:.3f}], seed SE {fit['seed_se']:.3f}" + expected
        )
    print(f"wrote {path}, collapse.png and coordinate_check.png")


def _transfer(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.overrides)
    depths, lrs = parse_ints(args.depths, "--depths"), parse_lrs(args.lrs)
    widths = parse_ints(args.widths, "--widths") if args.widths else [config.network.width]
    summary = transfer_sweep(
        config,
        depths=depths,
        widths=widths,
        lrs=lrs,
        exponents=parse_floats(args.c, "--c"),
        seeds=args.seeds,
        out_dir=args.out,
        progress=True,
        overwrite=args.overwrite,
    )
    plot_transfer(summary, args.out / "transfer.png")
    print(f"{summary['runs_trained']} runs trained, {summary['runs_resumed']} resumed")
    for panel in summary["panels"]:
        stats = panel["train"]
        optima = ", ".join(
            f"L={d}: {'-' if o is None else f'{o:g}'}"
            for d, o in zip(panel["depths"], stats["optimum_log2_lr"])
        )
        print(
            f"c={panel['c']:g}, n={panel['width']}: optimal log2 eta (train) {optima}; "
            f"spread {stats['spread_log2_lr']}"
        )
    print(f"wrote {args.out / 'transfer.json'} and {args.out / 'transfer.png'}")


def _norms(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.overrides)
    depths = parse_ints(args.depths, "--depths")
    refuse_existing(args.out, overwrite=args.overwrite, name="norms.json")
    start = time.perf_counter()
    result = feature_norms(
        config,
        load_stream(config),
        depths=depths,
        width=config.network.width if args.width is None else args.width,
        seeds=args.seeds,
        key=jax.random.key(config.run.seed),
        block_orders=BLOCK_ORDERS,
    )
    path = _write(args.out / "norms.json", result, config, start)
    plot_norms(result, args.out / "norms.png")
    for run in result["runs"]:
        init, trained = np.asarray(run["init"]), np.asarray(run["trained"])
        print(
            f"{run['block_order']}, L={run['depth']}: rms h_0 {init[0]:.3g}, h_L {init[-1]:.3g} "
            f"at init, {trained[-1]:.3g} trained"
        )
    print(f"wrote {path} and norms.png")


def parse_ints(text: str, flag: str) -> list[int]:
    """A comma-separated list of integers; ValueError naming `flag` otherwise."""
    items = _items(text, flag)
    try:
        return [int(item) for item in items]
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a comma-separated list of integers") from None


def parse_floats(text: str, flag: str) -> list[float]:
    items = _items(text, flag)
    try:
        values = [float(item) for item in items]
    except ValueError:
        raise ValueError(f"{flag}: {text!r} is not a comma-separated list of numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{flag}: {text!r} has a non-finite value")
    return values


def parse_lrs(text: str, flag: str = "--lrs") -> list[float]:
    """Numbers, powers `2^k`, and ranges `2^a:b` (every 2^k, k = a..b integer)."""
    values = []
    for item in _items(text, flag):
        try:
            if item.startswith("2^") and ":" in item:
                low, high = (int(v) for v in item[2:].split(":"))
                if low > high:
                    raise ValueError
                values += [2.0**k for k in range(low, high + 1)]
            elif item.startswith("2^"):
                values.append(2.0 ** float(item[2:]))
            else:
                values.append(float(item))
        except ValueError:
            raise ValueError(
                f"{flag}: {item!r} is not a number, a power 2^k or a range 2^a:b (a <= b)"
            ) from None
    return values


def _items(text: str, flag: str) -> list[str]:
    items = [item.strip() for item in str(text).split(",")]
    if not items or any(not item for item in items):
        raise ValueError(f"{flag}: {text!r} has an empty item; give e.g. 4,8,16")
    return items


def _write(path: Path, result: dict[str, Any], config, start: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**result, "config": to_dict(config)}
    data["meta"] = run_meta(config, wall_time=time.perf_counter() - start)
    with path.open("w") as fh:
        json.dump(json_ready(data), fh, allow_nan=False)
    return path
