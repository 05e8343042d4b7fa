"""`demo`: how fast finite networks approach the NFD limit as their width grows, resolved on its
own in about a minute on 2 CPU cores, on the built-in config (`nfd_sde/configs/default.toml`).

    nfd-sde demo [--out DIR] [--fast] [--overwrite]

It is `run_compare` (docs/compare.md) on one depth L: the limit solved on M = L depth steps (the
exact n -> infinity limit of the depth-L decoupled networks, spec section 2) from antithetic
pairs of solves, and, per width, antithetic pairs of finite networks with seeds added in rounds
until the ensemble mean's distance to the limit is resolved (its 95% interval excludes 0) to 15%
or `max_seeds` is reached. The distance of the decoupled ensemble mean, debiased by its noise
floor, falls like 1/n; its fitted rate is stated by the shared evidence rule (`_evidence`), and
a width whose distance is not resolved is reported as "not resolved, below X", never as 0.
"""

import argparse
import dataclasses
import importlib.resources
from pathlib import Path
from typing import Any, final

import numpy as np

from ...model import Config, DataStream, load_config
from ..common import AbstractExperiment, rate_caveats, write_json
from ..compare import describe_fit, run_compare
from ._demo_plots import plot_demo

DEFAULT_CONFIG = importlib.resources.files("nfd_sde") / "configs" / "default.toml"
MODES = ("decoupled", "standard")
DEMO_FILE, FIGURE_FILE = "demo.json", "overlay.png"


@dataclasses.dataclass(frozen=True)
class DemoSizes:
    """The demo's sizes: `widths`, limit `particles` per solve and `limit_seeds` antithetic
    pairs of solves, finite seed pairs per width (`seeds`, or None: adaptive up to
    `max_seeds`), and config overrides."""

    widths: tuple[int, ...]
    particles: int
    limit_seeds: int
    seeds: int | None
    max_seeds: int
    overrides: tuple[str, ...] = ()


# About a minute on 2 CPU cores: widths 8..64 at L = 4 resolve every distance with 128 to 1024
# seed pairs (the seeds a width needs grow like n, its cost per seed like n^2).
DEMO_SIZES = DemoSizes(widths=(8, 16, 32, 64), particles=4096, limit_seeds=4, seeds=None,
                       max_seeds=1024)  # fmt: skip
# Seconds, for the test suite: fixed seeds, tiny sizes (nothing need be resolved).
FAST_SIZES = DemoSizes(
    widths=(8, 16),
    particles=256,
    limit_seeds=2,
    seeds=4,
    max_seeds=4,
    overrides=(
        "training.steps=2",
        "training.batch=2",
        "data.eval_size=4",
    ),
)


def run_demo(
    config: Config,
    stream: DataStream,
    *,
    sizes: DemoSizes,
    key,
    progress: bool = False,
    out: Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """`run_compare` at the single depth L = solver.depth_steps over `sizes.widths`; returns
    {"compare": its data, "summary": `summarise` of it}. With `out`, every finished piece is
    kept under out/runs/ (a killed demo resumes)."""
    depth = config.solver.depth_steps
    config = config.replace(network={"depth": depth})
    data = run_compare(
        config, stream, widths=sizes.widths, depths=(depth,), particles=sizes.particles,
        seeds=sizes.seeds, max_seeds=sizes.max_seeds, limit_seeds=sizes.limit_seeds, key=key,
        progress=progress, out_dir=out, overwrite=overwrite,
    )  # fmt: skip
    return {"compare": data, "summary": summarise(data)}


def summarise(data: dict[str, Any]) -> dict[str, Any]:
    """Per mode and width, the ensemble mean's distance to the limit (relative to |f_limit|):
    raw, its noise floor, debiased with its 95% interval [low, high], whether it is resolved,
    the seed pairs; the eval losses; the decoupled rate in n, with its sentence and caveats."""
    grid, summary = data["grid"], data["summary"]
    depth = grid["depths"][0]
    rows = []
    for mode in MODES:
        losses = summary["losses"][mode]["loss_eval"]
        for i, width in enumerate(grid["widths"]):
            cell = summary["bias"][mode][i][0]
            row = {"mode": mode, "width": width, "diverged": cell is None}
            if cell is not None:
                row |= {
                    "seeds": cell["seeds"],
                    "distance": cell["raw"],
                    "noise_floor": cell["floor"],
                    "debiased": cell["debiased"],
                    "stderr": cell["stderr"],
                    "low": cell["low"],
                    "high": cell["high"],
                    "resolved": bool(cell["resolved"]),
                }
            row["loss_eval"] = np.asarray(losses["mean"][i][0])
            row["loss_eval_stderr"] = np.asarray(losses["stderr"][i][0])
            rows.append(row)
    rate = data["fits"]["bias_decoupled"][0]
    limit = summary["limit_losses"][str(grid["limit_depth_steps"][0])]["loss_eval"]
    return {
        "depth": depth,
        "scale": data["scale"],
        "rows": rows,
        "limit_loss_eval": np.asarray(limit["mean"]),
        "limit_loss_eval_stderr": None if limit["stderr"] is None else np.asarray(limit["stderr"]),
        "rate": rate,
        "rate_text": describe_fit(rate, quantity="decoupled distance to the limit", symbol="n"),
        "caveats": rate_caveats(rate, "n"),
    }


def row_text(row: dict[str, Any]) -> str:
    """`decoupled n=8 (128 seed pairs): 29.1 % [22.2, 34.6] from the limit (raw 30.1 %, noise
    floor 7.8 %)`, or `not resolved, below X %` in place of the value."""
    where = f"{row['mode']} n={row['width']}"
    if row["diverged"]:
        return f"{where}: diverged (left out)"
    if row["resolved"]:
        value = (
            f"{100 * row['debiased']:.3g} % [{100 * row['low']:.3g}, {100 * row['high']:.3g}] "
            "from the limit"
        )
    else:
        value = f"not resolved, below {100 * row['high']:.2g} % from the limit"
    return (
        f"{where} ({row['seeds']} seed pairs): {value} (raw {100 * row['distance']:.3g} %, noise "
        f"floor {100 * row['noise_floor']:.2g} %)"
    )


@final
class Demo(AbstractExperiment):
    name = "demo"
    help = "how fast finite networks approach the NFD limit, on the built-in config"
    description = (
        "Solve the NFD limit and train seed ensembles of finite networks of growing width on the "
        "built-in config (antithetic pairs, seeds added until each distance is resolved), and "
        "draw the ensemble mean's distance to the limit against width with its fitted rate."
    )
    record = DEMO_FILE

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="output directory")
        parser.add_argument("--fast", action="store_true", help="tiny sizes (seconds, for tests)")
        parser.add_argument(
            "--overwrite", action="store_true", help="replace earlier results in --out"
        )

    def configure(self, args: argparse.Namespace) -> Config:
        with importlib.resources.as_file(DEFAULT_CONFIG) as path:
            return load_config(path, _sizes(args).overrides)

    def run(self, config, stream, args, *, key) -> dict[str, Any]:
        sizes = _sizes(args)
        seeds = (
            f"{sizes.seeds} seed pairs" if sizes.seeds else f"up to {sizes.max_seeds} seed pairs"
        )
        print(
            f"demo: {stream.steps} SGD steps of batch {stream.batch}, {len(stream.x_eval)} eval "
            f"inputs; depth L = M = {config.solver.depth_steps}; widths {list(sizes.widths)}, "
            f"{seeds} each (antithetic), both backward modes; the NFD limit from "
            f"{sizes.limit_seeds} pairs of {sizes.particles}-particle solves",
            flush=True,
        )
        return run_demo(
            config, stream, sizes=sizes, key=key, progress=True, out=args.out,
            overwrite=args.overwrite,
        )  # fmt: skip

    def plot(self, data: dict[str, Any], out: Path) -> None:
        plot_demo(data["summary"], out / FIGURE_FILE)

    def write(self, data: dict[str, Any], config: Config, out: Path, *, wall_time: float) -> None:
        compare = data["compare"]
        write_json(
            out / DEMO_FILE,
            {"summary": data["summary"], "grid": compare["grid"], "meta": compare["meta"],
             "config": compare["config"]},
        )  # fmt: skip

    def report(self, data: dict[str, Any], args: argparse.Namespace) -> list[str]:
        summary, out = data["summary"], args.out
        return [
            *(f"  {row_text(row)}" for row in summary["rows"]),
            f"  {summary['rate_text']}",
            f"wrote {out / DEMO_FILE}, the figure {out / FIGURE_FILE} and every run under "
            f"{out / 'runs'}/",
        ]


def _sizes(args: argparse.Namespace) -> DemoSizes:
    return FAST_SIZES if args.fast else DEMO_SIZES


DEMO = Demo()
