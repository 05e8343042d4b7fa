"""The `nfd-sde` command line: train a finite ResNet, solve the NFD limit, or run the demo.

    nfd-sde train [CONFIG.toml] --width N --depth L --backward standard|decoupled --out DIR
    nfd-sde solve [CONFIG.toml] --particles N --depth-steps M --out DIR
    nfd-sde demo [--out DIR] [--fast]
    nfd-sde compare [CONFIG.toml] --widths 64,128 --depths 4,8 --seeds S --particles N
        --depth-steps M --out DIR
    nfd-sde report DIR

Every size flag is an override of the config (`--width 64` is `--set network.width=64`), so a
run is always described by one resolved config, which is stored in its result.json. Mistakes in
the input (missing file, bad override, invalid value) end with a one-line `error: ...` on stderr
and exit status 2.
"""

import argparse
import importlib.resources
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from ._cli_common import add_run_arguments, refuse_existing
from ._compare import COMPARE_FILE, run_compare, write_compare
from ._compare_plots import plot_compare
from ._config import BACKWARDS, REPRESENTATIONS, load_config
from ._data import load_stream
from ._finite_training import train_finite
from ._limit_solver import solve_limit
from ._plots import plot_loss_curves, plot_overlay
from ._report import REPORT_FILE, describe_fit, write_report
from ._result import Result, write_result
from ._two_layer import register as register_two_layer

USAGE_ERROR = 2
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


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit status 2), like ours."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {message} (see `{self.prog} --help`)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 for a mistake in the input)."""
    args = build_parser().parse_args(argv)
    try:
        args.command(args)
    except (ValueError, OSError) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nfd-sde",
        description="Finite depth-muP ResNets and their Neural Feature Dynamics (NFD) limit.",
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a finite ResNet", description="Train a finite depth-muP ResNet."
    )
    _add_common(train)
    train.add_argument("--width", type=int, help="network.width: hidden width n")
    train.add_argument("--depth", type=int, help="network.depth: number of residual blocks L")
    train.add_argument("--backward", choices=BACKWARDS, help="network.backward")
    train.set_defaults(command=_train)

    solve = commands.add_parser(
        "solve",
        help="solve the NFD limit",
        description="Solve the NFD limit (infinite width and depth) with Monte Carlo particles.",
    )
    _add_common(solve)
    solve.add_argument("--particles", type=int, help="solver.particles: Monte Carlo particles N")
    solve.add_argument("--depth-steps", type=int, help="solver.depth_steps: depth grid steps M")
    solve.add_argument("--representation", choices=REPRESENTATIONS, help="solver.representation")
    solve.add_argument("--backward", choices=BACKWARDS, help="solver.backward")
    solve.set_defaults(command=_solve)

    demo = commands.add_parser(
        "demo",
        help="limit vs finite networks on the built-in config",
        description="Solve the limit and train a few finite networks on the built-in config, "
        "then overlay them in one figure.",
    )
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
    demo.add_argument("--fast", action="store_true", help="tiny sizes (seconds, for tests)")
    demo.add_argument("--overwrite", action="store_true", help="replace earlier results in --out")
    demo.set_defaults(command=_demo)

    compare = commands.add_parser(
        "compare",
        help="finite networks over a width x depth grid against the NFD limit",
        description="Solve the NFD limit and train finite networks over a grid of widths and "
        "depths, several seeds, both backward modes, on the same data; write DIR/compare.json "
        "(every number, the rate fits, the config) and the figures.",
    )
    _add_common(compare, seed=False)
    compare.add_argument(
        "--widths", type=_int_list, required=True, metavar="N1,N2,...", help="widths n"
    )
    compare.add_argument(
        "--depths", type=_int_list, required=True, metavar="L1,L2,...", help="depths L"
    )
    compare.add_argument(
        "--seeds", type=_count, default=3, metavar="S", help="seeds per (n, L) (default 3)"
    )
    compare.add_argument(
        "--particles", type=_count, metavar="N", help="limit particles (default: solver.particles)"
    )
    compare.add_argument(
        "--depth-steps",
        type=_count,
        metavar="M",
        help="limit depth steps (default: solver.depth_steps)",
    )
    compare.add_argument(
        "--limit-seeds",
        type=_count,
        default=2,
        metavar="S",
        help="limit solves averaged into the reference; their spread is its MC error (default 2)",
    )
    compare.set_defaults(command=_compare)

    report = commands.add_parser(
        "report",
        help="write DIR/report.md from DIR/compare.json",
        description="Write DIR/report.md from a `compare` run: the figures and the fitted rates "
        "in words.",
    )
    report.add_argument("directory", type=Path, help="the --out directory of `nfd-sde compare`")
    report.set_defaults(command=_report)
    register_two_layer(commands)
    return parser


def _add_common(parser: argparse.ArgumentParser, *, seed: bool = True) -> None:
    add_run_arguments(parser, example="training.eta=0.25")
    if seed:
        parser.add_argument("--seed", type=int, help="run.seed: seed of the weights / particles")


def _train(args: argparse.Namespace) -> None:
    flags = {"network.width": args.width, "network.depth": args.depth}
    flags |= {"network.backward": args.backward, "run.seed": args.seed}
    _run_one(args, flags, train_finite, describe=_describe_finite)


def _solve(args: argparse.Namespace) -> None:
    flags = {"solver.particles": args.particles, "solver.depth_steps": args.depth_steps}
    flags |= {"solver.representation": args.representation, "solver.backward": args.backward}
    flags |= {"run.seed": args.seed}
    _run_one(args, flags, solve_limit, describe=_describe_limit)


def _run_one(
    args: argparse.Namespace,
    flags: dict[str, object],
    produce: Callable[..., Result],
    *,
    describe: Callable[[Result], str],
) -> None:
    overrides = [*args.overrides, *(f"{k}={v}" for k, v in flags.items() if v is not None)]
    config = load_config(args.config, overrides)
    refuse_existing(args.out, overwrite=args.overwrite)
    stream = load_stream(config)
    result = produce(config, stream, key=jax.random.key(config.run.seed), progress=True)
    path = write_result(result, args.out)
    figure = args.out / "losses.png"
    plot_loss_curves({describe(result): result}, figure)
    print(f"{describe(result)}: {_loss_summary(result)}; {_timing(result)}")
    print(f"wrote {path} and {figure}")


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
    print(f"  {_describe_limit(limit)}: {_loss_summary(limit)}; {_timing(limit)}")

    finite = {}
    for (name, width, backward), key in zip(runs, jax.random.split(key_finite, len(runs))):
        net_config = config.replace(network={"width": width, "depth": depth, "backward": backward})
        result = train_finite(net_config, stream, key=key)
        write_result(result, out / name)
        finite[f"{backward} n={width}, L={depth}"] = result
        gap = _rms(np.asarray(result.f_eval)[-1] - np.asarray(limit.f_eval)[-1])
        print(
            f"  {_describe_finite(result)}: {_loss_summary(result)}; final eval predictions "
            f"{gap:.3g} RMS from the limit; {_timing(result)}"
        )
    figure = out / "overlay.png"
    plot_overlay(limit, finite, figure)
    print(f"wrote results under {out}/ and the figure {figure}")


def _compare(args: argparse.Namespace) -> None:
    config = load_config(args.config, args.overrides)
    refuse_existing(args.out, overwrite=args.overwrite, name=COMPARE_FILE)
    stream = load_stream(config)
    data = run_compare(
        config,
        stream,
        widths=args.widths,
        depths=args.depths,
        seeds=args.seeds,
        particles=args.particles or config.solver.particles,
        depth_steps=args.depth_steps or config.solver.depth_steps,
        limit_seeds=args.limit_seeds,
        progress=True,
    )
    path = write_compare(data, args.out)
    (args.out / REPORT_FILE).unlink(missing_ok=True)  # a report of an earlier run
    figures = plot_compare(data, args.out)
    for name, symbol in (("error_decoupled", "n"), ("error_decoupled", "L"), ("gap", "n")):
        fit = data["fits"][name]["vs_width" if symbol == "n" else "vs_depth"]
        quantity = "decoupled error" if name == "error_decoupled" else "standard-decoupled gap"
        print(describe_fit(fit, quantity=quantity, symbol=symbol))
    fit = data["fits"]["gap"]["vs_depth"]
    print(describe_fit(fit, quantity="standard-decoupled gap", symbol="L"))
    print(f"wrote {path} and {len(figures)} figures; `nfd-sde report {args.out}` writes the report")


def _report(args: argparse.Namespace) -> None:
    print(f"wrote {write_report(args.directory)}")


_INTEGER = re.compile(r"[0-9]+")


def _count(text: str) -> int:
    """A strict integer >= 1 (no signs, no decimals)."""
    text = text.strip()
    if not _INTEGER.fullmatch(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def _int_list(text: str) -> tuple[int, ...]:
    """A comma-separated list of integers >= 1, e.g. `64,128,256`."""
    example = "give comma-separated integers >= 1, e.g. 64,128,256"
    if not text.strip():
        raise argparse.ArgumentTypeError(f"empty list; {example}")
    values = []
    for item in text.split(","):
        item = item.strip()
        if not _INTEGER.fullmatch(item) or int(item) < 1:
            shown = repr(item) if item else "an empty item"
            where = f" in {text!r}" if "," in text else ""
            raise argparse.ArgumentTypeError(f"{shown}{where} is not an integer >= 1; {example}")
        values.append(int(item))
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a value; {example}")
    return tuple(values)


def _describe_finite(result: Result) -> str:
    p = result.producer
    return f"finite ResNet (width {p['width']}, depth {p['depth']}, {p['backward']} backward)"


def _describe_limit(result: Result) -> str:
    p = result.producer
    return (
        f"NFD limit ({p['particles']} particles, {p['depth_steps']} depth steps, "
        f"{p['representation']} space, {p['backward']})"
    )


def _loss_summary(result: Result) -> str:
    loss = np.asarray(result.loss_eval)
    return f"eval loss {loss[0]:.4g} -> {loss[-1]:.4g} over {len(loss) - 1} steps"


def _timing(result: Result) -> str:
    wall = result.meta.get("wall_time_s")
    return "wall time not recorded" if wall is None else f"{wall:.1f} s"


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
