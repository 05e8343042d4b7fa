"""The `curves` command (`run_curves`, `plot_curves`): writes DIR/curves.json and
DIR/curves.png, keeps its pieces under DIR/runs/."""

import argparse
from pathlib import Path
from typing import Any, final

from ...model import LOSSES, Config, DataStream
from ..common import (
    AbstractExperiment,
    add_run_arguments,
    count_type,
    load_with_flags,
    sizes_type,
    write_record,
)
from ._curves import CurveSizes, class_labels, run_curves
from ._curves_plots import plot_curves
from ._train_solve import describe_plan

CURVES_FILE, FIGURE_FILE = "curves.json", "curves.png"


def losses_type(text: str) -> tuple[str, ...]:
    names = tuple(item.strip() for item in text.split(","))
    unknown = [name for name in names if name not in LOSSES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give losses from {', '.join(LOSSES)}, separated by commas"
        )
    return names


@final
class Curves(AbstractExperiment):
    name = "curves"
    help = "a whole training run: the limit's loss and accuracy curves beside finite networks"
    description = (
        "Eval loss and accuracy at every SGD step of a classification run (digits, CIFAR-10): "
        "the NFD limit with its 95%% band (the network's backward mode; infinite depth when "
        "solver.levels > 1) beside seed ensembles of finite networks of depth network.depth at "
        "each width, once per loss. Finished pieces are kept under OUT/runs/: a killed run "
        "resumes. Example: nfd-sde curves configs/digits_long.toml --out runs/curves"
    )
    record = CURVES_FILE

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, example="training.steps=200")
        parser.add_argument("--widths", type=sizes_type, default=(64, 256),
                            help="finite widths n (default: 64,256)")  # fmt: skip
        parser.add_argument("--seeds", type=count_type, default=8,
                            help="finite networks per width (default: 8)")  # fmt: skip
        parser.add_argument(
            "--losses",
            type=losses_type,
            default=("cross_entropy", "mse"),
            help="losses to train with, one row of panels each (default: cross_entropy,mse)",
        )

    def configure(self, args: argparse.Namespace) -> Config:
        return load_with_flags(args.config, args.overrides, {})

    def run(self, config: Config, stream: DataStream, args: argparse.Namespace, *, key) -> Any:
        class_labels(stream.y_eval)  # refused before any work unless the targets are labels
        for loss in args.losses:
            cfg = config.replace(
                training={"loss": loss}, solver={"backward": config.network.backward}
            )
            print(f"{loss}: {describe_plan(cfg, stream)}", flush=True)
        sizes = CurveSizes(widths=tuple(args.widths), seeds=args.seeds)
        return run_curves(config, stream, sizes=sizes, losses=tuple(args.losses), key=key,
                          out=args.out, progress=True)  # fmt: skip

    def plot(self, data: Any, out: Path) -> None:
        plot_curves(data, out / FIGURE_FILE)

    def write(self, data: Any, config: Config, out: Path, *, wall_time: float) -> None:
        write_record(out / CURVES_FILE, data, config, wall_time=wall_time)

    def report(self, data: Any, args: argparse.Namespace) -> list[str]:
        lines = []
        k = data["steps"]
        for loss, curves in data["losses"].items():
            limit = curves["limit"]
            lines.append(f"{loss}, after {k} steps: NFD limit {_final(limit)}")
            for cell in curves["finite"]:
                lines.append(f"  n={cell['width']} ({cell['members']} seeds, "
                             f"{cell['diverged']} diverged): {_final(cell)}")  # fmt: skip
        lines.append(f"wrote {args.out / CURVES_FILE} and {args.out / FIGURE_FILE}")
        return lines


def _final(curve: dict[str, Any]) -> str:
    if curve.get("loss") is None:
        return "every run diverged"
    loss, half = curve["loss"][-1], curve.get("loss_half95")
    text = f"eval loss {loss:.4g}" + ("" if half is None else f" +- {half[-1]:.2g}")
    acc = curve["accuracy"][-1]
    if curve.get("accuracy_low") is not None:
        return f"{text}, accuracy {acc:.3f} [{curve['accuracy_low'][-1]:.3f}, " \
               f"{curve['accuracy_high'][-1]:.3f}]"  # fmt: skip
    acc_half = curve.get("accuracy_half95")
    return f"{text}, accuracy {acc:.3f}" + ("" if acc_half is None else f" +- {acc_half[-1]:.3f}")


CURVES = Curves()
