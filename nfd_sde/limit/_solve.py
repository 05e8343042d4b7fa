"""`solve_limit`: the NFD limit through all SGD steps of a data stream, as a `Result`."""

import functools
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from ..model import Config, DataStream, Result, loss_of, run_meta, to_dict
from ._plan import plan_limit
from ._solver import LimitSolver, LimitState, build_solver
from ._step import StepOutputs, limit_evaluate, limit_step


@functools.partial(eqx.filter_jit, donate="all-except-first")
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces for `eqx.debug.get_num_traces`
def jit_step(inputs, state):
    """One step, `inputs = (solver, k, x_batch, y_batch, x_eval)`; the state (the history) is
    donated, so its buffers are reused for the new state instead of copied."""
    solver, k, x_batch, y_batch, x_eval = inputs
    return limit_step(solver, state, k, x_batch, y_batch, x_eval)


@eqx.filter_jit
def jit_evaluate(solver, state, k, x_eval):
    return limit_evaluate(solver, state, k, x_eval)


def solve_limit(
    config: Config,
    stream: DataStream,
    *,
    key: PRNGKeyArray,
    progress: bool = False,
    solver: LimitSolver | None = None,
    state: LimitState | None = None,
) -> Result:
    """Solve the NFD limit through all of `stream`'s SGD steps; returns the shared Result schema.

    `solver` and `state` may be given to inject noise or initial particles (cross-checks); a
    given `state` is consumed (its buffers are donated to the solve). With `training.steps = 0`
    the result holds the outputs at initialisation. When a step's outputs are not finite the
    solve stops there: the later steps are recorded as NaN (`Result.status` names the first bad
    step, `meta["steps_solved"]` the steps solved).
    """
    plan = plan_limit(
        config,
        dim=stream.dim,
        steps=stream.steps,
        batch=stream.batch,
        eval_size=stream.x_eval.shape[0],
    )
    with jax.enable_x64(config.run.dtype == "float64"):
        key_solver, key_state = jax.random.split(key)
        if solver is None:
            solver = build_solver(config, stream, key=key_solver, plan=plan)
        if state is None:
            state = solver.init_state(key=key_state)
        return _solve(config, stream, solver, state, plan, progress)


def _solve(config, stream, solver, state, plan, progress):
    dtype = config.run.dtype
    x_train = jnp.asarray(stream.x_train, dtype)
    y_train = jnp.asarray(stream.y_train, dtype)
    x_eval = jnp.asarray(stream.x_eval, dtype)
    loss, y_eval = loss_of(config), np.asarray(stream.y_eval)
    blank = _blank_outputs(solver, eval_size=stream.x_eval.shape[0])
    outputs, step_times = [], []
    start = time.perf_counter()
    for k in tqdm(range(stream.steps), desc="NFD limit", unit="step", disable=not progress):
        tick = time.perf_counter()
        state, out = jit_step((solver, jnp.int32(k), x_train[k], y_train[k], x_eval), state)
        jax.block_until_ready(out)
        step_times.append(time.perf_counter() - tick)
        outputs.append(jax.device_get(out))
        losses = (loss(out.f_train, stream.y_train[k]), loss(out.f_eval, y_eval))
        if not all(np.all(np.isfinite(a)) for a in (*jax.tree.leaves(outputs[-1]), *losses)):
            break  # diverged: the later steps are not solved, their outputs are NaN
    solved = len(outputs)
    outputs += [blank] * (stream.steps - solved)
    if solved == len(outputs):
        f_final, feature_final = jax.device_get(
            jit_evaluate(solver, state, jnp.int32(stream.steps), x_eval)
        )
    else:
        f_final, feature_final = blank.f_eval, blank.feature_eval
    wall = time.perf_counter() - start

    steps = _stack(outputs, blank)
    f_train = steps.f_train
    f_eval = np.concatenate([steps.f_eval, f_final[None]])
    loss_train = np.asarray(loss(f_train, stream.y_train)).mean(axis=-1)
    loss_eval = np.asarray(loss(f_eval, y_eval[None])).mean(axis=-1)
    kernels = {
        "t": list(config.run.kernel_depths),
        "layers": list(solver.kernel_points),
        "feature_eval": np.concatenate([steps.feature_eval, feature_final[None]]),
        "feature_train": steps.feature_train,
        "grad_train": steps.grad_train,
    }
    later = step_times[1:] or step_times or [math.nan]
    first = step_times[0] if step_times else math.nan
    producer = {
        "kind": "limit",
        "particles": solver.particles,
        "depth_steps": solver.grid.steps,
        "representation": solver.representation.name,
        "backward": config.solver.backward,
        "block": solver.block.name,
        "driver": config.solver.driver,
        "jitter": config.solver.jitter,
        "estimated_gb": plan.gigabytes,
    }
    meta = run_meta(
        config,
        wall_time=wall,
        first_step_s=first,
        step_s=float(np.median(later)),
        compile_time_s=max(first - float(np.median(later)), 0.0),
        steps_solved=solved,
        data=stream.origin,
    )
    return Result(
        f_train=f_train,
        f_eval=f_eval,
        loss_train=loss_train,
        loss_eval=loss_eval,
        kernels=kernels,
        config=to_dict(config),
        producer=producer,
        meta=meta,
    )


def _blank_outputs(solver: LimitSolver, *, eval_size: int) -> StepOutputs:
    """One step's outputs, all NaN: the steps after a divergence, and the shapes of no step."""
    b, p, c, d = solver.batch, eval_size, solver.outputs, len(solver.kernel_points)

    def nan(*shape):
        return np.full(shape, np.nan, solver.dtype)

    return StepOutputs(
        f_train=nan(b, c),
        f_eval=nan(p, c),
        feature_train=nan(d, b, b),
        feature_eval=nan(d, p, p),
        grad_train=nan(d, b, b),
    )


def _stack(outputs: list[StepOutputs], blank: StepOutputs) -> StepOutputs:
    """The steps' outputs stacked on a leading step axis (of length 0 for no step)."""
    if not outputs:
        return jax.tree.map(lambda a: a[None][:0], blank)
    return jax.tree.map(lambda *leaves: np.stack(leaves), *outputs)
