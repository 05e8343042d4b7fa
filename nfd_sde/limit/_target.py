"""Choosing the solve's sizes for a requested error (`solve --target-error E`).

The error of an output is taken as 2 stderr + syserr (a 95% Monte Carlo band plus the
discretisation estimate), relative to the largest |f_eval| over steps, inputs and outputs, and its
maximum over every f_eval entry is held against E. A pilot solve (N = min(particles, 512) per
group, the configured groups and levels) measures both parts; then
* the Monte Carlo part falls like 1 / sqrt(groups x N): N is scaled up (powers of two) until
  2 stderr <= E / 2 (half the budget);
* the discretisation part of an extrapolation over `levels` grids falls like
  M^-(order + levels - 1): M is doubled until syserr <= E / 2;
and the time is predicted from the pilot's time per step, scaled by the particles (field space is
linear in N, weight space quadratic) and by the depth steps (linear).
"""

import dataclasses
import math

import numpy as np
from jaxtyping import PRNGKeyArray

from ..model import Config, DataStream
from ._measured_plan import plan_for
from ._solve import solve_limit

PILOT_PARTICLES = 512
MAX_DOUBLINGS = 12


@dataclasses.dataclass(frozen=True)
class TargetPlan:
    config: Config
    target: float
    pilot: dict
    predicted_error: float
    predicted_seconds: float

    def describe(self) -> str:
        solver = self.config.solver
        return (
            f"target relative error {self.target:g}: pilot (N={self.pilot['particles']}, "
            f"M={self.pilot['depth_steps']}) gave Monte Carlo {self.pilot['mc']:.3g} and "
            f"discretisation {self.pilot['sys']:.3g} in {self.pilot['seconds']:.1f} s; plan "
            f"N={solver.particles} per group x {solver.groups} groups, M={solver.depth_steps} "
            f"with {solver.levels} levels: predicted error {self.predicted_error:.3g}, about "
            f"{self.predicted_seconds:.0f} s (plus compilation)"
        )


def relative_errors(result) -> tuple[float, float]:
    """(max 2 stderr, max syserr) over f_eval, relative to max |f_eval|."""
    scale = float(np.max(np.abs(result.f_eval))) or 1.0
    stderr = np.zeros_like(result.f_eval) if result.stderr is None else result.stderr["f_eval"]
    syserr = np.zeros_like(result.f_eval) if result.syserr is None else result.syserr["f_eval"]
    return float(np.max(2 * stderr)) / scale, float(np.max(syserr)) / scale


def plan_target_error(
    config: Config, stream: DataStream, target: float, *, key: PRNGKeyArray
) -> TargetPlan:
    """Run a pilot solve and scale N and M to reach `target` (see the module docstring)."""
    if not (math.isfinite(target) and 0 < target < 1):
        raise ValueError(f"--target-error {target!r}: give a relative error in (0, 1), e.g. 0.01")
    if config.solver.groups < 2 or config.solver.levels < 2:
        raise ValueError(
            "a target error needs error estimates: solver.groups >= 2 and solver.levels >= 2"
        )
    pilot_n = min(config.solver.particles, PILOT_PARTICLES)
    pilot_config = config.replace(solver={"particles": pilot_n})
    pilot = solve_limit(pilot_config, stream, key=key)
    # the pilot's steady-state time: its median step on the finest grid, times the steps, times
    # the nested levels' share (M, M/2, ...: 1 + 1/2 + ...)
    levels_share = sum(0.5**level for level in range(config.solver.levels))
    seconds = pilot.meta["step_s"] * max(stream.steps, 1) * levels_share
    mc, sys = relative_errors(pilot)
    order = 1 + config.solver.levels - 1  # Euler (order 1) extrapolated over `levels` grids
    n, m = pilot_n, config.solver.depth_steps
    for _ in range(MAX_DOUBLINGS):
        if mc * math.sqrt(pilot_n / n) <= target / 2:
            break
        n *= 2
    for _ in range(MAX_DOUBLINGS):
        if sys * (config.solver.depth_steps / m) ** order <= target / 2:
            break
        m *= 2
    planned = config.replace(solver={"particles": n, "depth_steps": m})
    plan = plan_for(planned, stream)
    # the chosen representation's own cost model, from the pilot's particles to n
    growth_n = plan.kind.cost(plan.sizes) / plan.kind.cost(
        dataclasses.replace(plan.sizes, particles=pilot_n)
    )
    predicted = mc * math.sqrt(pilot_n / n) + sys * (config.solver.depth_steps / m) ** order
    return TargetPlan(
        config=planned,
        target=target,
        pilot={
            "particles": pilot_n,
            "depth_steps": config.solver.depth_steps,
            "mc": mc,
            "sys": sys,
            "seconds": max(seconds, 0.0),
        },
        predicted_error=predicted,
        predicted_seconds=max(seconds, 0.01) * growth_n * m / config.solver.depth_steps,
    )


def solve_to_target(
    config: Config,
    stream: DataStream,
    target: float,
    *,
    key: PRNGKeyArray,
    progress: bool = False,
    report=print,
):
    """Plan for `target` (printing the plan and its time estimate first), solve, and record in
    `producer["target_error"]` whether the achieved error (2 stderr + syserr, relative) met it."""
    plan = plan_target_error(config, stream, target, key=key)
    report(plan.describe())
    result = solve_limit(plan.config, stream, key=key, progress=progress)
    mc, sys = relative_errors(result)
    achieved = mc + sys
    result.producer["target_error"] = {
        "target": target,
        "achieved": achieved,
        "met": achieved <= target,
        "plan": plan.describe(),
    }
    verdict = "met" if achieved <= target else "NOT met (raise the printed sizes and rerun)"
    report(f"target {target:g} {verdict}: 2 stderr {mc:.3g} + syserr {sys:.3g} = {achieved:.3g}")
    return result
