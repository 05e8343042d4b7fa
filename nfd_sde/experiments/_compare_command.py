"""`compare` and `report`: finite networks over a width x depth grid against the NFD limit.

nfd-sde compare [CONFIG.toml] --widths 64,128 --depths 4,8 --seeds S --particles N
    --depth-steps M --out DIR
nfd-sde report DIR
"""

import argparse
from pathlib import Path

from ..model import load_config, load_stream
from ._arguments import add_run_arguments, count_type, refuse_existing, sizes_type
from ._commands import Command
from ._compare import COMPARE_FILE, run_compare, write_compare
from ._compare_plots import plot_compare
from ._report import REPORT_FILE, describe_fit, write_report


def _add_compare(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, example="training.eta=0.25")
    parser.add_argument(
        "--widths", type=sizes_type, required=True, metavar="N1,N2,...", help="widths n"
    )
    parser.add_argument(
        "--depths", type=sizes_type, required=True, metavar="L1,L2,...", help="depths L"
    )
    parser.add_argument(
        "--seeds", type=count_type, default=3, metavar="S", help="seeds per (n, L) (default 3)"
    )
    parser.add_argument(
        "--particles",
        type=count_type,
        metavar="N",
        help="limit particles (default: solver.particles)",
    )
    parser.add_argument(
        "--depth-steps",
        type=count_type,
        metavar="M",
        help="limit depth steps (default: solver.depth_steps)",
    )
    parser.add_argument(
        "--limit-seeds",
        type=count_type,
        default=2,
        metavar="S",
        help="limit solves averaged into the reference; their spread is its MC error (default 2)",
    )


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


def _add_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the --out directory of `nfd-sde compare`")


def _report(args: argparse.Namespace) -> None:
    print(f"wrote {write_report(args.directory)}")


COMPARE = Command(
    name="compare",
    help="finite networks over a width x depth grid against the NFD limit",
    description="Solve the NFD limit and train finite networks over a grid of widths and "
    "depths, several seeds, both backward modes, on the same data; write DIR/compare.json "
    "(every number, the rate fits, the config) and the figures.",
    add_arguments=_add_compare,
    main=_compare,
)
REPORT = Command(
    name="report",
    help="write DIR/report.md from DIR/compare.json",
    description="Write DIR/report.md from a `compare` run: the figures and the fitted rates "
    "in words.",
    add_arguments=_add_report,
    main=_report,
)
