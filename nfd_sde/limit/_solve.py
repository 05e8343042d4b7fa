"""`solve_limit`: the NFD limit through all SGD steps of a data stream, with its errors.

The solve runs `solver.groups` independent particle systems (one vmapped step) on each of
`solver.levels` nested depth grids (M, M/2, ...; the noise is drawn on the finest grid and summed,
so the levels share their Brownian paths), extrapolates in depth per group, and reports the mean
over groups with its Monte Carlo standard error and its discretisation error (`_estimates`).
"""

import time

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from solvers import t95

from ..model import Config, DataStream, Result, loss_of, run_meta, to_dict
from ._estimates import KERNELS, estimate, loss_estimate, variance_ratios
from ._groups import build_groups, run_groups, stack
from ._measured_plan import plan_for
from ._solver import LimitSolver, LimitState, build_solver

FIELDS = ("f_train", "f_eval")


def level_steps(config: Config) -> list[int]:
    """Depth steps of the nested levels, finest first."""
    return [config.solver.depth_steps // 2**level for level in range(config.solver.levels)]


def solve_limit(
    config: Config,
    stream: DataStream,
    *,
    key: PRNGKeyArray,
    progress: bool = False,
    solver: LimitSolver | None = None,
    state: LimitState | None = None,
) -> Result:
    """Solve the NFD limit through all of `stream`'s SGD steps; returns the shared Result schema
    with `stderr` and `syserr`.

    `solver` and `state` may be given to inject noise or initial particles (cross-checks): one
    particle system on one level (`solver.groups = solver.levels = 1`); a given `state` is
    consumed (its buffers are donated to the solve).
    """
    plan = plan_for(config, stream)
    given = solver is not None or state is not None
    if given and (config.solver.groups, config.solver.levels) != (1, 1):
        raise ValueError(
            "a given solver or state is one particle system on one depth grid; set "
            "solver.groups=1 and solver.levels=1"
        )
    start = time.perf_counter()
    with jax.enable_x64(config.run.dtype == "float64"):
        runs = []
        for level, steps in enumerate(level_steps(config)):
            if given:
                key_solver, key_state = jax.random.split(key)
                solver = solver or build_solver(config, stream, key=key_solver, plan=plan)
                state = state or solver.init_state(key=key_state)
                solvers, states = stack([solver]), stack([state])
            else:
                solvers, states = build_groups(
                    config.replace(solver={"depth_steps": steps, "levels": 1}),
                    stream,
                    key=key,
                    plan=plan,
                    refinement=2**level,
                )
            desc = f"NFD limit, M={steps}" if config.solver.levels > 1 else "NFD limit"
            runs.append(
                run_groups(
                    solvers, states, stream, dtype=config.run.dtype, progress=progress, desc=desc
                )
            )
        wall = time.perf_counter() - start
        return _result(config, stream, runs, solvers, plan, wall)


def _result(config, stream, runs, solver, plan, wall) -> Result:
    order = solver.scheme.order
    controls = config.solver.control_variates
    levels = {
        name: np.stack([run[name] for run in runs])
        for name in runs[0]
        if name not in ("step_times", "steps_solved", "final_state")
    }
    outputs = {
        name: estimate(levels[f"{name}_cv" if controls else name], order=order) for name in FIELDS
    }
    kernels = {name: estimate(levels[name], order=order) for name in KERNELS}
    loss = loss_of(config)
    losses = {
        "loss_train": loss_estimate(
            loss,
            outputs["f_train"],
            np.asarray(stream.y_train),
            levels["f_train_cv" if controls else "f_train"],
            order=order,
        ),
        "loss_eval": loss_estimate(
            loss,
            outputs["f_eval"],
            np.asarray(stream.y_eval)[None],
            levels["f_eval_cv" if controls else "f_eval"],
            order=order,
        ),
    }

    def errors(kind):
        if all(v[kind] is None for v in (*outputs.values(), *losses.values())):
            return None
        out = {name: value[kind] for name, value in (*outputs.items(), *losses.items())}
        out["kernels"] = {name: kernels[name][kind] for name in KERNELS}
        return out

    step_times = runs[0]["step_times"]
    later = step_times[1:] or step_times or [0.0]
    first = step_times[0] if step_times else 0.0
    steps = level_steps(config)
    producer = {
        "kind": "limit",
        "particles": config.solver.particles,
        "groups": config.solver.groups,
        "depth_steps": steps[0],
        "levels": len(steps),
        "grids": steps,
        "target": "infinite depth" if len(steps) > 1 else f"depth {steps[0]}",
        "control_variates": controls,
        "representation": plan.representation,
        "backward": config.solver.backward,
        "block": config.model.block,
        "driver": config.solver.driver,
        "jitter": config.solver.jitter,
        "estimated_gb": plan.gigabytes,
        "devices": plan.devices,
        "placement": plan.mode,
        "particle_blocks": plan.blocks,
        "interval95_factor": t95(config.solver.groups - 1) if config.solver.groups > 1 else 1.96,
        "variance_ratios": variance_ratios(levels, controls),
        "level_f_eval": levels["f_eval_cv" if controls else "f_eval"].mean(axis=1),
    }
    meta = run_meta(
        config,
        wall_time=wall,
        first_step_s=first,
        step_s=float(np.median(later)),
        compile_time_s=max(first - float(np.median(later)), 0.0),
        steps_solved=min(run["steps_solved"] for run in runs),
        data=stream.origin,
    )
    return Result(
        f_train=outputs["f_train"]["value"],
        f_eval=outputs["f_eval"]["value"],
        loss_train=losses["loss_train"]["value"],
        loss_eval=losses["loss_eval"]["value"],
        kernels={
            "t": list(config.run.kernel_depths),
            "layers": list(solver.kernel_points),
            **{name: kernels[name]["value"] for name in KERNELS},
        },
        config=to_dict(config),
        producer=producer,
        meta=meta,
        stderr=errors("stderr"),
        syserr=errors("syserr"),
    )
