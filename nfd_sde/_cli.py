"""The `nfd-sde` command line: train a finite ResNet, solve the NFD limit, or run the demo.

    nfd-sde train [CONFIG.toml] --width N --depth L --backward standard|decoupled --out DIR
    nfd-sde solve [CONFIG.toml] --particles N --depth-steps M --out DIR
    nfd-sde demo [--out DIR] [--fast]

Every size flag is an override of the config (`--width 64` is `--set network.width=64`), so a
run is always described by one resolved config, which is stored in its result.json. Mistakes in
the input (missing file, bad override, invalid value) end with a one-line `error: ...` on stderr
and exit status 2.
"""

import argparse
import importlib.resources
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
import numpy as np

from ._config import BACKWARDS, REPRESENTATIONS, load_config
from ._data import load_stream
from ._finite_training import train_finite
from ._limit_solver import solve_limit
from ._plots import plot_loss_curves, plot_overlay
from ._result import Result, write_result

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
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", type=Path, help="TOML config (default: defaults)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help="override a config field (repeatable), e.g. --set training.eta=0.25",
    )
    parser.add_argument("--seed", type=int, help="run.seed: seed of the weights / particles")
    parser.add_argument("--overwrite", action="store_true", help="replace a result in --out")


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
    _refuse_existing(args.out, overwrite=args.overwrite)
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
        _refuse_existing(out / name, overwrite=args.overwrite)
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


def _refuse_existing(out: Path, *, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    if (out / "result.json").exists() and not overwrite:
        raise ValueError(
            f"{str(out / 'result.json')!r} already exists; pass --overwrite to replace it "
            "or choose another --out"
        )


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
