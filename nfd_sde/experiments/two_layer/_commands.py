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
from pathlib import Path
from typing import Any, final

import numpy as np

from ...model import BLOCK_ORDERS, Config
from ..common import (
    AbstractExperiment,
    add_run_arguments,
    count_type,
    learning_rates_type,
    load_with_flags,
    numbers_type,
    sizes_type,
    write_record,
)
from ._collapse import run_collapse
from ._collapse_limit import plot_collapse_limit, run_collapse_limit
from ._norms import run_norms
from ._plots import plot_collapse, plot_coordinate_check, plot_norms, plot_transfer
from ._transfer import run_transfer

DEPTHS = functools.partial(sizes_type, example="4,8,16")
WIDTHS = functools.partial(sizes_type, example="128,256")
EXPONENTS = functools.partial(numbers_type, example="0,0.25,0.5")


def _add_common(parser: argparse.ArgumentParser, *, seeds: int) -> None:
    add_run_arguments(parser, example="training.steps=100")
    parser.add_argument("--seeds", type=count_type, default=seeds, help=f"seeds (default {seeds})")


def _one_width(widths, config) -> int:
    if widths is None:
        return config.network.width
    if len(widths) != 1:
        raise ValueError(
            f"--widths {','.join(map(str, widths))}: norms measures one width; give one"
        )
    return widths[0]


@final
class Collapse(AbstractExperiment):
    name = "collapse"
    help = "first-layer collapse of two-layer blocks vs depth"
    description = (
        "Measure the learned changes of two-layer blocks against depth (and the muP coordinate "
        "check) for each first-layer exponent c; fit the slopes in L."
    )
    record = "collapse.json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
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
            help="also solve the limit at M = L with N particles x 8 groups and overlay its "
            "Delta u along depth on the finite networks (collapse_limit.json, collapse_limit.png)",
        )

    def configure(self, args: argparse.Namespace) -> Config:
        config = load_with_flags(args.config, args.overrides, {"training.steps": args.steps})
        return config.replace(model={"block": "two_layer"})

    def run(self, config, stream, args, *, key) -> dict[str, Any]:
        """{"collapse": `run_collapse`'s data, "limit": `run_collapse_limit`'s with
        --limit-particles, else None}."""
        sizes = dict(depths=args.depths, exponents=args.c, widths=_widths(args, config),
                     seeds=args.seeds, steps=args.steps, key=key)  # fmt: skip
        collapse = run_collapse(config, stream, **sizes)
        limit = None
        if args.limit_particles:
            limit = run_collapse_limit(
                config, stream, particles=args.limit_particles, groups=8, **sizes
            )
        return {"collapse": collapse, "limit": limit}

    def plot(self, data: dict[str, Any], out: Path) -> None:
        plot_collapse(data["collapse"], out / "collapse.png")
        plot_coordinate_check(data["collapse"], out / "coordinate_check.png")
        if data["limit"] is not None:
            plot_collapse_limit(data["limit"], out / "collapse_limit.png")

    def write(self, data: dict[str, Any], config: Config, out: Path, *, wall_time: float) -> None:
        if data["limit"] is not None:  # collapse.json, which marks the run complete, comes last
            write_record(out / "collapse_limit.json", data["limit"], config, wall_time=wall_time)
        write_record(out / self.record, data["collapse"], config, wall_time=wall_time)

    def report(self, data: dict[str, Any], args: argparse.Namespace) -> list[str]:
        result, lines = data["collapse"], []
        for run in result["runs"]:
            if run["diverged"]:
                lines.append(
                    f"DIVERGED: n={run['width']}, L={run['depth']}, c={run['c']:g}: "
                    f"{run['diverged']} of {result['seeds']} seed(s), first bad steps "
                    f"{run['first_bad_step']}"
                )
        for fit in result["slopes"]:
            expected = "" if fit["expected"] is None else f" (expected {fit['expected']:g})"
            where = f"n={fit['width']}, c={fit['c']:g}, {fit['quantity']}"
            if fit["slope"] is None:
                lines.append(
                    f"{where}: no slope (finite, positive values at fewer than two depths)"
                )
                continue
            lines.append(
                f"{where}: slope {fit['slope']:.3f} [{fit['ci95'][0]:.3f}, {fit['ci95'][1]:.3f}], "
                f"seed SE {fit['seed_se']:.3f}" + expected
            )
        lines.append(f"wrote {args.out / self.record}, collapse.png and coordinate_check.png")
        if data["limit"] is not None:
            for fit in data["limit"]["fits"]:
                low, high = fit["ci95"]
                lines.append(
                    f"limit, c={fit['c']:g}: rms Delta u_l ~ L^{fit['slope']:.3f} [{low:.3f}, "
                    f"{high:.3f}] (expected {fit['expected']:g})"
                )
            lines.append("wrote collapse_limit.json and collapse_limit.png")
        return lines


@final
class Transfer(AbstractExperiment):
    name = "transfer"
    help = "learning-rate transfer across depth"
    description = (
        "Final loss against learning rate for several depths and exponents c. Resumes from --out "
        "when it holds a partial sweep; --overwrite restarts."
    )
    record = None  # the sweep resumes from its own run files and writes transfer.json itself

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
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

    def configure(self, args: argparse.Namespace) -> Config:
        return load_with_flags(args.config, args.overrides, {})

    def run(self, config, stream, args, *, key) -> dict[str, Any]:
        # seed s of the sweep initialises with jax.random.key(s), s = run.seed, run.seed + 1, ...
        return run_transfer(
            config,
            depths=args.depths,
            widths=_widths(args, config),
            lrs=args.lrs,
            exponents=args.c,
            seeds=args.seeds,
            out_dir=args.out,
            progress=True,
            stream=stream,
            overwrite=args.overwrite,
        )

    def plot(self, data: dict[str, Any], out: Path) -> None:
        plot_transfer(data, out / "transfer.png")

    def write(self, data: dict[str, Any], config: Config, out: Path, *, wall_time: float) -> None:
        pass  # transfer.json is the sweep's own summary, written as it finishes

    def report(self, data: dict[str, Any], args: argparse.Namespace) -> list[str]:
        lines = [
            f"{data['runs_trained']} runs trained, {data['runs_resumed']} resumed, "
            f"{data['runs_diverged']} diverged (marked, left out of the optima)"
        ]
        for panel in data["panels"]:
            stats = panel["train"]
            optima = ", ".join(
                f"L={d}: {'-' if o is None else f'{o:g}'}"
                for d, o in zip(panel["depths"], stats["optimum_log2_lr"])
            )
            spread = stats["spread_log2_lr"]
            lines.append(
                f"c={panel['c']:g}, n={panel['width']}: optimal log2 eta (train) {optima}; "
                f"spread {'n/a' if spread is None else f'{spread:g}'}"
            )
        lines.append(f"wrote {args.out / 'transfer.json'} and {args.out / 'transfer.png'}")
        return lines


@final
class Norms(AbstractExperiment):
    name = "norms"
    help = "feature norms along depth, pre- vs post-activation"
    description = (
        "rms of h_l along depth for pre- and post-activation blocks, at init and after training."
    )
    record = "norms.json"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        _add_common(parser, seeds=2)
        parser.add_argument(
            "--depths", type=DEPTHS, default=(4, 16, 64), help="depths L, e.g. 4,16,64"
        )
        parser.add_argument(
            "--widths",
            "--width",
            dest="widths",
            type=WIDTHS,
            metavar="N",
            help="the one width n of every network (default: network.width; --width is the same "
            "flag, as in train)",
        )

    def configure(self, args: argparse.Namespace) -> Config:
        return load_with_flags(args.config, args.overrides, {})

    def run(self, config, stream, args, *, key) -> dict[str, Any]:
        return run_norms(
            config,
            stream,
            depths=args.depths,
            width=_one_width(args.widths, config),
            seeds=args.seeds,
            key=key,
            block_orders=BLOCK_ORDERS,
        )

    def plot(self, data: dict[str, Any], out: Path) -> None:
        plot_norms(data, out / "norms.png")

    def write(self, data: dict[str, Any], config: Config, out: Path, *, wall_time: float) -> None:
        write_record(out / self.record, data, config, wall_time=wall_time)

    def report(self, data: dict[str, Any], args: argparse.Namespace) -> list[str]:
        lines = []
        for run in data["runs"]:
            init, trained = np.asarray(run["init"]), np.asarray(run["trained"])
            after = f"{trained[-1]:.3g} trained"
            if run["diverged"]:
                after = f"DIVERGED in training ({run['diverged']} of {data['seeds']} seed(s))"
            lines.append(
                f"{run['block_order']}, L={run['depth']}: rms h_0 {init[0]:.3g}, h_L "
                f"{init[-1]:.3g} at init, {after}"
            )
        return [*lines, f"wrote {args.out / self.record} and norms.png"]


def _widths(args: argparse.Namespace, config: Config) -> tuple[int, ...]:
    return args.widths or (config.network.width,)


COLLAPSE = Collapse()
TRANSFER = Transfer()
NORMS = Norms()
