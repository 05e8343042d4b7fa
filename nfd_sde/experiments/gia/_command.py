"""`gia-digits`: standard against decoupled backprop on the digits, under depth-muP and plain muP.

    nfd-sde gia-digits [CONFIG.toml] --out DIR [--depths 2,4,8,16] [--width 128] [--seeds 8]
                       [--steps 100] [--batch 16] [--eval 128] [--overwrite] [--set ...]

The protocol fixes the data (scikit-learn's digits: d = 64, 10 classes) and the cross-entropy
loss; every other field (eta, gamma0, activation, ...) is the config's. Writes gia_digits.json
(every curve and number) and gia_digits.png.
"""

import argparse
import functools
from pathlib import Path
from typing import Any, final

from ...model import Config
from ..common import (
    AbstractExperiment,
    add_run_arguments,
    count_type,
    load_with_flags,
    sizes_type,
    write_record,
)
from ._digits import run_gia_digits
from ._plots import plot_gia_digits

DEPTHS = functools.partial(sizes_type, example="2,4,8,16")
JSON_FILE, FIGURE_FILE = "gia_digits.json", "gia_digits.png"


def digits_protocol(config: Config, *, steps: int, batch: int, eval_size: int) -> Config:
    """`config` on the digits with cross-entropy, `steps` SGD steps of `batch` images, and
    `eval_size` held-out images for the eval loss."""
    return config.replace(
        data={"source": "digits", "eval_size": eval_size},
        model={"dim": 64, "outputs": 10},
        training={"loss": "cross_entropy", "steps": steps, "batch": batch},
    )


@final
class GiaDigits(AbstractExperiment):
    name = "gia-digits"
    help = "standard vs decoupled backprop on the digits, depth-muP and plain muP"
    description = (
        "Train width-n networks on scikit-learn's digits with standard backprop and with "
        "independent backward weights (paired by seed) under depth-muP and under plain muP (no "
        "1/sqrt(L)); the gap between the eval loss curves against L, with a fitted slope."
    )
    record = JSON_FILE

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, example="training.eta=0.25")
        parser.add_argument("--depths", type=DEPTHS, default=(2, 4, 8, 16), help="depths L")
        parser.add_argument("--width", type=count_type, default=128, help="width n (default 128)")
        parser.add_argument("--seeds", type=count_type, default=8, help="seeds (default 8)")
        parser.add_argument("--steps", type=count_type, default=100, help="SGD steps (default 100)")
        parser.add_argument("--batch", type=count_type, default=16, help="minibatch (default 16)")
        parser.add_argument(
            "--eval", type=count_type, default=128, help="held-out images in the eval loss"
        )

    def configure(self, args: argparse.Namespace) -> Config:
        return digits_protocol(
            load_with_flags(args.config, args.overrides, {}),
            steps=args.steps,
            batch=args.batch,
            eval_size=args.eval,
        )

    def run(self, config, stream, args, *, key) -> dict[str, Any]:
        return run_gia_digits(
            config,
            stream,
            depths=args.depths,
            width=args.width,
            seeds=args.seeds,
            key=key,
            progress=True,
        )

    def plot(self, data: dict[str, Any], out: Path) -> None:
        plot_gia_digits(data, out / FIGURE_FILE)

    def write(self, data: dict[str, Any], config: Config, out: Path, *, wall_time: float) -> None:
        write_record(out / JSON_FILE, data, config, wall_time=wall_time)

    def report(self, data: dict[str, Any], args: argparse.Namespace) -> list[str]:
        lines = []
        for fit in data["fits"]:
            where = f"{fit['scaling']}, {fit['quantity']}"
            if fit["slope"] is None:
                lines.append(f"{where}: no fit (fewer than two depths with a gap and its error)")
                continue
            low, high = fit["ci95"]
            verdict = {True: "merge", False: "separate", None: "undecided"}[fit["merge"]]
            lines.append(
                f"{where}: gap ~ L^{fit['slope']:.3f} [{low:.3f}, {high:.3f}] -> {verdict}"
            )
        return [*lines, f"wrote {args.out / JSON_FILE} and {args.out / FIGURE_FILE}"]


GIA_DIGITS = GiaDigits()
