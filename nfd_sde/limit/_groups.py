"""Independent particle systems (groups) stepped together: one vmapped, jitted step.

A group is one particle system of N particles with its own keys: group 0 uses the solve's key,
group g >= 1 `fold_in(key, g)`. Their solvers (identical but for the keys) and states are stacked
on a leading axis and stepped by one vmapped call, so G groups cost one compilation.

Where the plan puts the particles (`LimitPlan.mode`, `.devices`): split over a mesh of devices
(their particle axis, axis 1 of the stacked states; the initial states are drawn by one jitted
call straight into that layout, so no device ever holds all of them), or with the per-particle
history kept in host memory (a store of `solvers.HISTORY_STORES`, `solver.streaming`).
"""

import functools
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from solvers import HISTORY_STORES, AxisMesh

from ..model import Config, DataStream
from ._controls import control_solutions, corrected
from ._plan import LimitPlan
from ._solver import LimitSolver, LimitState, build_solver, constrain_state
from ._step import control_gram, limit_evaluate, limit_step


def group_keys(key: PRNGKeyArray, groups: int) -> list[PRNGKeyArray]:
    return [key if g == 0 else jax.random.fold_in(key, g) for g in range(groups)]


def stack(trees: list) -> object:
    """Stack pytrees of identical structure on a new leading axis (static fields shared)."""
    return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)


def build_groups(
    config: Config, stream: DataStream, *, key: PRNGKeyArray, plan: LimitPlan, refinement: int
) -> tuple[LimitSolver, LimitState]:
    """The stacked solvers and initial states of `solver.groups` independent particle systems,
    placed as `plan` says."""
    mesh = particle_mesh(plan)
    host = None
    if plan.mode == "streamed":
        sizes = (config.solver.groups, config.solver.depth_steps, config.solver.particles)
        store = HISTORY_STORES[config.solver.streaming]
        host = store(*sizes, plan.stored_pairs, blocks=plan.blocks, dtype=config.run.dtype)
    solvers, state_keys = [], []
    for group_key in group_keys(key, config.solver.groups):
        key_solver, key_state = jax.random.split(group_key)
        solvers.append(
            build_solver(
                config,
                stream,
                key=key_solver,
                plan=plan,
                refinement=refinement,
                mesh=mesh,
                host=host,
            )
        )
        state_keys.append(key_state)
    if mesh is not None:
        return stack(solvers), _init_on_mesh(stack(solvers), jnp.stack(state_keys))
    states = [s.init_state(key=k, group=g) for g, (s, k) in enumerate(zip(solvers, state_keys))]
    return stack(solvers), (stack if host is None else host.stack)(states)


def particle_mesh(plan: LimitPlan) -> AxisMesh | None:
    """The mesh over the plan's devices (None for one device)."""
    if plan.devices == 1:
        return None
    return AxisMesh.over(jax.devices()[: plan.devices], "particles")


@eqx.filter_jit
def _init_on_mesh(solvers: LimitSolver, keys) -> LimitState:
    def init(solver, key):
        return constrain_state(solver.init_state(key=key), solver.mesh)

    return eqx.filter_vmap(init)(solvers, keys)


@functools.partial(eqx.filter_jit, donate="all-except-first")
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces for `eqx.debug.get_num_traces`
def jit_step(inputs, state):
    """One step of every group, `inputs = (solvers, k, x_batch, y_batch, x_eval)` with the
    solvers stacked on a leading group axis; the states (the histories) are donated, so their
    buffers are reused for the new states instead of copied."""
    solver, k, x_batch, y_batch, x_eval = inputs
    step = eqx.filter_vmap(limit_step, in_axes=(0, 0, None, None, None, None))
    return step(solver, state, k, x_batch, y_batch, x_eval)


@eqx.filter_jit
def jit_evaluate(solver, state, k, x_eval):
    evaluate = eqx.filter_vmap(limit_evaluate, in_axes=(0, 0, None, None))
    return evaluate(solver, state, k, x_eval)


@eqx.filter_jit
def jit_control_gram(solver, state):
    return eqx.filter_vmap(control_gram)(solver, state)


def run_groups(
    solver: LimitSolver,
    state: LimitState,
    stream: DataStream,
    *,
    dtype: str,
    progress: bool,
    desc: str = "NFD limit",
) -> dict[str, object]:
    """Every SGD step of the stacked groups; arrays with a leading group axis (NumPy).

    A step whose outputs are not finite in some group ends the solve: the later steps (and the
    final evaluation) are recorded as NaN, and `steps_solved` says how many were solved."""
    x_train = jnp.asarray(stream.x_train, dtype)
    y_train = jnp.asarray(stream.y_train, dtype)
    x_eval = jnp.asarray(stream.x_eval, dtype)
    final_k = jnp.int32(stream.steps)
    outputs, steps_cv, step_times = [], [], []
    solutions = []  # the controls' A_g^{-1} mean_x_g: the same at every step, computed once

    def cross_fitted(controls):
        """One step's cross-fitted outputs (groups, 1, pairs, outputs); None for one group."""
        if controls.mean_y.shape[0] < 2:
            return None
        if not solutions:  # after step 0 (the step-0 features are in `state`), or at init
            mean_x, xx = jax.device_get(jit_control_gram(solver, state))
            solutions.append(control_solutions(mean_x[:, None], xx[:, None]))
        return corrected(solutions[0], controls.mean_y[:, None], controls.xy[:, None])

    for k in tqdm(range(stream.steps), desc=desc, unit="step", disable=not progress):
        tick = time.perf_counter()
        state, out = jit_step((solver, jnp.int32(k), x_train[k], y_train[k], x_eval), state)
        jax.block_until_ready(out)
        step_times.append(time.perf_counter() - tick)
        out = jax.device_get(out)
        # the control statistics (groups x outputs x controls x pairs) are reduced to the
        # step's cross-fitted estimates at once, not kept for every step
        steps_cv.append(cross_fitted(out.controls))
        outputs.append(eqx.tree_at(lambda o: o.controls, out, None))
        if not all(np.all(np.isfinite(a)) for a in jax.tree.leaves(out)):
            break  # diverged: the later steps are not solved
    solved = len(outputs)
    if outputs and solved < stream.steps:
        outputs += [_blank(outputs[-1])] * (stream.steps - solved)
        steps_cv += [None if c is None else _blank(c) for c in steps_cv[-1:]] * (
            stream.steps - solved
        )
        f_final, controls_final, feature_final = _blank(
            jax.eval_shape(jit_evaluate, solver, state, final_k, x_eval)
        )
    else:
        f_final, controls_final, feature_final = jax.device_get(
            jit_evaluate(solver, state, final_k, x_eval)
        )

    groups, batch, outputs_ = f_final.shape[0], stream.batch, stream.outputs
    depths, eval_size = feature_final.shape[1], x_eval.shape[0]
    empty = {  # per-step shapes, for a stream of zero SGD steps
        "f_train": (batch, outputs_),
        "f_eval": (eval_size, outputs_),
        "feature_eval": (depths, eval_size, eval_size),
        "feature_train": (depths, batch, batch),
        "grad_train": (depths, batch, batch),
    }

    def steps(name):
        if not outputs:
            return np.zeros((groups, 0, *empty[name]), f_final.dtype)
        return np.stack([getattr(o, name) for o in outputs], axis=1)

    run = {
        "f_train": steps("f_train"),
        "f_eval": np.concatenate([steps("f_eval"), f_final[:, None]], axis=1),
        "feature_eval": np.concatenate([steps("feature_eval"), feature_final[:, None]], axis=1),
        "feature_train": steps("feature_train"),
        "grad_train": steps("grad_train"),
        "coupling": steps("coupling") if outputs else None,
        "step_times": step_times,
        "steps_solved": solved,
        "final_state": state,
    }
    final_cv = cross_fitted(controls_final)
    if final_cv is None:  # one group: nothing to cross-fit, the plain means stand
        run["f_train_cv"], run["f_eval_cv"] = run["f_train"], run["f_eval"]
        return run
    if outputs:
        steps_cv = np.concatenate(steps_cv, axis=1)
    else:
        steps_cv = np.zeros((groups, 0, batch + eval_size, outputs_), f_final.dtype)
    run["f_train_cv"] = steps_cv[:, :, :batch]
    run["f_eval_cv"] = np.concatenate([steps_cv[:, :, batch:], final_cv], axis=1)
    return run


def _blank(tree):
    """NaN arrays shaped as `tree`'s leaves (arrays or shape structs)."""
    return jax.tree.map(lambda a: np.full(a.shape, np.nan, a.dtype), tree)
