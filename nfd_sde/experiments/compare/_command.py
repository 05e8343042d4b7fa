"""`compare` and `report`: finite networks over a width x depth grid against the NFD limit.

nfd-sde compare [CONFIG.toml] --widths 8,16,32 --depths 2,4,8 --particles N --out DIR
    [--seeds S | --max-seeds S] [--limit-seeds R] [--depth-steps M] [--no-common-noise]
    [--no-antithetic] [--depth-reference successive|deepest] [--overwrite]
nfd-sde report DIR
"""

import argparse
from pathlib import Path
from typing import Any, final

from ...model import Config
from ..common import (
    AbstractExperiment,
    Command,
    add_run_arguments,
    count_type,
    load_with_flags,
    sizes_type,
)
from ._compare import MAX_SEEDS, run_compare
from ._depth_reference import DEPTH_REFERENCES
from ._plots import FIGURES, plot_compare
from ._report import REPORT_FILE, rate_lines, write_report
from ._store import COMPARE_FILE, write_compare


@final
class Compare(AbstractExperiment):
    name = "compare"
    help = "finite networks over a width x depth grid against the NFD limit"
    description = (
        "Solve the NFD limit for every depth and train seed ensembles of finite networks over a "
        "grid of widths and depths, both backward modes, on the same data; write "
        "DIR/compare.json (bias, fluctuation, depth error, the gap, their rate fits, the config), "
        "the figures, and every finished run under DIR/runs/ (a killed compare resumes)."
    )
    record = COMPARE_FILE

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, example="training.eta=0.25")
        parser.add_argument(
            "--widths", type=sizes_type, required=True, metavar="N1,N2,...", help="widths n"
        )
        parser.add_argument(
            "--depths", type=sizes_type, required=True, metavar="L1,L2,...", help="depths L"
        )
        parser.add_argument(
            "--seeds",
            type=count_type,
            metavar="S",
            help="seeds per width (default: adaptive, until every decoupled bias is resolved)",
        )
        parser.add_argument(
            "--max-seeds",
            type=count_type,
            default=MAX_SEEDS,
            metavar="S",
            help=f"most seeds per width of the adaptive rule (default {MAX_SEEDS})",
        )
        parser.add_argument(
            "--particles",
            type=count_type,
            metavar="N",
            help="limit particles (default: solver.particles)",
        )
        parser.add_argument(
            "--limit-seeds",
            type=count_type,
            default=4,
            metavar="R",
            help="limit solves (antithetic pairs) per depth; their spread is the reference's MC "
            "error (default 4)",
        )
        parser.add_argument(
            "--depth-steps",
            type=count_type,
            metavar="M",
            help="one limit on M depth steps for every depth (default: one limit per depth, M = L)",
        )
        parser.add_argument(
            "--no-common-noise",
            dest="common_noise",
            action="store_false",
            help="draw each depth's initial weights (and each limit's noise) independently",
        )
        parser.add_argument(
            "--no-antithetic",
            dest="antithetic",
            action="store_false",
            help="train single networks instead of antithetic pairs (v, -v)",
        )
        parser.add_argument(
            "--depth-reference",
            choices=tuple(DEPTH_REFERENCES),
            default="successive",
            help="what the depth error of L is measured against: the next depth of the grid "
            "(default) or the largest",
        )

    def configure(self, args: argparse.Namespace) -> Config:
        return load_with_flags(args.config, args.overrides, {})

    def run(self, config, stream, args, *, key) -> dict[str, Any]:
        return run_compare(
            config,
            stream,
            widths=args.widths,
            depths=args.depths,
            seeds=args.seeds,
            max_seeds=args.max_seeds,
            particles=args.particles or config.solver.particles,
            limit_seeds=args.limit_seeds,
            depth_steps=args.depth_steps,
            common_noise=args.common_noise,
            antithetic=args.antithetic,
            depth_reference=args.depth_reference,
            key=key,
            progress=True,
            out_dir=args.out,
            overwrite=args.overwrite,
        )

    def plot(self, data: dict[str, Any], out: Path) -> None:
        (out / REPORT_FILE).unlink(missing_ok=True)  # a report of an earlier run
        plot_compare(data, out)

    def write(self, data: dict[str, Any], config: Config, out: Path, *, wall_time: float) -> None:
        write_compare(data, out)  # run_compare's data holds its config and metadata

    def report(self, data: dict[str, Any], args: argparse.Namespace) -> list[str]:
        reused = data["meta"]["pieces_reused"]
        return [
            rate_lines(data).strip(),
            *(f"note: {note}" for note in data["summary"]["notes"]),
            f"wrote {args.out / COMPARE_FILE} and {len(FIGURES)} figures"
            + (f" ({reused} runs reused)" if reused else ""),
            f"`nfd-sde report {args.out}` writes the report",
        ]


def _add_report(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", type=Path, help="the --out directory of `nfd-sde compare`")


def _report(args: argparse.Namespace) -> None:
    print(f"wrote {write_report(args.directory)}")


COMPARE = Compare()
REPORT = Command(
    name="report",
    help="write DIR/report.md from DIR/compare.json",
    description="Write DIR/report.md from a `compare` run: the figures and the fitted rates "
    "in words.",
    add_arguments=_add_report,
    main=_report,
)
