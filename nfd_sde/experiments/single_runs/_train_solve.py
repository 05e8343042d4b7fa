"""`train` and `solve`: one producer (finite network or limit) on one config.

    nfd-sde train [CONFIG.toml] --width N --depth L --backward standard|decoupled --out DIR
    nfd-sde solve [CONFIG.toml] --particles N --depth-steps M --out DIR

Every size flag is an override of the config (`--width 64` is `--set network.width=64`), so a run
is always described by one resolved config, stored in its result.json; `losses.png` draws its
loss curves.
"""

import abc
import argparse
from pathlib import Path
from typing import final

import numpy as np

from ...finite import plan_finite, train_finite
from ...limit import plan_for, solve_limit, solve_to_target
from ...model import BACKWARDS, REPRESENTATIONS, Config, DataStream, Result
from ..common import (
    RESULT_FILE,
    AbstractExperiment,
    add_run_arguments,
    load_with_flags,
    nested_depths_type,
    plot_loss_curves,
    write_result,
)

LOSSES_FILE = "losses.png"


def loss_summary(result: Result) -> str:
    """The eval loss from init to the last step, or where a diverged run stopped being finite."""
    loss = np.asarray(result.loss_eval)
    status = result.status
    if status["diverged"]:
        bad = status["first_bad_step"]
        start = "not finite at init" if bad == 0 else f"eval loss {loss[0]:.4g}"
        return f"DIVERGED: {start}, values not finite from step {bad} of {len(loss) - 1} on"
    final = f"{loss[-1]:.4g}"
    if result.stderr is not None or result.syserr is not None:
        final += _errors(result, "loss_eval", -1)
    return f"eval loss {loss[0]:.4g} -> {final} over {len(loss) - 1} steps"


def _errors(result: Result, name: str, index) -> str:
    parts = []
    for label, errors in (("stderr", result.stderr), ("syserr", result.syserr)):
        if errors is not None and errors.get(name) is not None:
            parts.append(f"{label} {float(np.asarray(errors[name])[index]):.2g}")
    return f" ({', '.join(parts)})" if parts else ""


def timing(result: Result) -> str:
    wall = result.meta.get("wall_time_s")
    return "wall time not recorded" if wall is None else f"{wall:.1f} s"


def describe_finite_plan(config: Config, stream: DataStream) -> str:
    """The finite network's memory against `solver.memory_limit_gb` (`FinitePlan.describe`);
    a network that does not fit is refused here, before any work."""
    eval_size = stream.x_eval.shape[0]
    return plan_finite(config, batch=stream.batch, eval_size=eval_size).describe()


def describe_plan(config: Config, stream: DataStream) -> str:
    """Where the solve will run and why (`LimitPlan.describe`), before it runs."""
    return plan_for(config, stream).describe()


class AbstractSingleRun(AbstractExperiment):
    """One producer on one config: its run is a `Result`, drawn as loss curves (losses.png) and
    written as result.json; `describe(result)` names the producer."""

    record = RESULT_FILE

    @abc.abstractmethod
    def describe(self, result: Result) -> str: ...

    @final
    def plot(self, data: Result, out: Path) -> None:
        plot_loss_curves({self.describe(data): data}, out / LOSSES_FILE)

    @final
    def write(self, data: Result, config: Config, out: Path, *, wall_time: float) -> None:
        write_result(data, out)

    @final
    def report(self, data: Result, args: argparse.Namespace) -> list[str]:
        return [
            f"{self.describe(data)}: {loss_summary(data)}; {timing(data)}",
            f"wrote {args.out / RESULT_FILE} and {args.out / LOSSES_FILE}",
        ]


@final
class Train(AbstractSingleRun):
    name = "train"
    help = "train a finite ResNet"
    description = "Train a finite depth-muP ResNet."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, example="training.eta=0.25")
        parser.add_argument("--seed", type=int, help="run.seed: seed of the weights")
        parser.add_argument("--width", type=int, help="network.width: hidden width n")
        parser.add_argument("--depth", type=int, help="network.depth: number of residual blocks L")
        parser.add_argument("--backward", choices=BACKWARDS, help="network.backward")

    def configure(self, args: argparse.Namespace) -> Config:
        flags = {"network.width": args.width, "network.depth": args.depth}
        flags |= {"network.backward": args.backward, "run.seed": args.seed}
        return load_with_flags(args.config, args.overrides, flags)

    def run(self, config, stream, args, *, key) -> Result:
        print(describe_finite_plan(config, stream), flush=True)
        return train_finite(config, stream, key=key, progress=True)

    def describe(self, result: Result) -> str:
        p = result.producer
        return f"finite ResNet (width {p['width']}, depth {p['depth']}, {p['backward']} backward)"


@final
class Solve(AbstractSingleRun):
    name = "solve"
    help = "solve the NFD limit"
    description = "Solve the NFD limit (infinite width and depth) with Monte Carlo particles."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_run_arguments(parser, example="training.eta=0.25")
        parser.add_argument("--seed", type=int, help="run.seed: seed of the particles")
        parser.add_argument(
            "--particles", type=int, help="solver.particles: Monte Carlo particles N per group"
        )
        parser.add_argument(
            "--groups",
            type=int,
            help="solver.groups: independent particle systems (their spread is the Monte Carlo "
            "error)",
        )
        parser.add_argument(
            "--depth-steps",
            type=nested_depths_type,
            help="solver.depth_steps: depth grid steps M, or nested grids M1,M2,... (each twice "
            "the previous: extrapolation over them), e.g. 16,32,64",
        )
        parser.add_argument(
            "--levels", type=int, help="solver.levels: nested depth grids M, M/2, ... (1: none)"
        )
        parser.add_argument(
            "--extrapolate",
            action="store_true",
            help="extrapolate in depth over three nested grids (solver.levels=3)",
        )
        parser.add_argument(
            "--target-error",
            type=float,
            metavar="E",
            help="choose the particles and depth steps for a relative error E (a pilot solve "
            "measures the errors; the plan and a time estimate are printed first)",
        )
        parser.add_argument(
            "--representation", choices=REPRESENTATIONS, help="solver.representation"
        )
        parser.add_argument("--backward", choices=BACKWARDS, help="solver.backward")
        parser.add_argument(
            "--devices", type=int, help="solver.devices: devices the particles are split over"
        )

    def configure(self, args: argparse.Namespace) -> Config:
        flags = {"solver.particles": args.particles, "solver.groups": args.groups}
        if args.depth_steps is not None:
            finest, nested = args.depth_steps
            flags |= {"solver.depth_steps": finest, "solver.levels": nested or args.levels}
        else:
            flags |= {"solver.levels": args.levels}
        if args.extrapolate:
            flags["solver.levels"] = 3
        flags |= {"solver.representation": args.representation, "solver.backward": args.backward}
        flags |= {"run.seed": args.seed}
        flags |= {"solver.devices": args.devices}
        return load_with_flags(args.config, args.overrides, flags)

    def run(self, config, stream, args, *, key) -> Result:
        if args.target_error is not None:  # the target's own plan is printed by solve_to_target
            return solve_to_target(config, stream, key=key, progress=True, target=args.target_error)
        print(describe_plan(config, stream), flush=True)
        return solve_limit(config, stream, key=key, progress=True)

    def describe(self, result: Result) -> str:
        p = result.producer
        grids = p.get("grids") or [p["depth_steps"]]
        depth = "depth steps " + ",".join(str(m) for m in grids[::-1])
        groups = f" x {p['groups']} groups" if p.get("groups", 1) > 1 else ""
        return (
            f"NFD limit ({p['particles']} particles{groups}, {depth}, "
            f"{p['representation']} space, {p['backward']})"
        )


TRAIN = Train()
SOLVE = Solve()
