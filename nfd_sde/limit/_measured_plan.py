"""`solver.plan_costs = "measured"`: `auto` chooses the representation by timing one step of each.

The cost model (`solvers._representation_costs`) has constants fitted once on one machine; at
other sizes or on other hardware its ranking may be wrong. Here every representation that the
plan accepts for the solve (resident on one device) is built at the solve's sizes, its history
filled up to the last step's slots (random stored values, unit-diagonal factors: the work a
step does depends on how many slots are in use, not on their values), one step compiled ahead
of time and called `repeats` times; the fastest call is its cost. The plan takes the fastest and
says so, with every candidate's step time and compile time. A candidate streamed from host
memory or split over devices is not timed: then the model's choice stands, and the plan says
why. Measured plans are kept per config and sizes, so a command that plans twice (to print the
plan, then to solve) times once.
"""

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp

from solvers import FieldNoise

from ..model import Config, DataStream
from ._groups import jit_step, stack
from ._plan import LimitPlan, plan_limit
from ._solver import LimitState, build_solver

_MEASURED: dict[tuple, LimitPlan] = {}


def plan_for(config: Config, stream: DataStream, **kwargs) -> LimitPlan:
    """`plan_limit` at `stream`'s sizes; with `solver.plan_costs = "measured"` and `auto`, the
    representation is chosen by timing (`measured_plan`)."""
    plan = _plan_at(config, stream, **kwargs)
    if config.solver.plan_costs == "measured" and not config.solver.representation_named:
        return measured_plan(config, stream, plan, **kwargs)
    return plan


def measured_plan(config: Config, stream: DataStream, modelled: LimitPlan, **kwargs) -> LimitPlan:
    """The plan whose representation is the fastest one measured (module docstring);
    `modelled` is the cost model's plan, kept where nothing is timed."""
    sizes = (stream.dim, stream.steps, stream.batch, stream.x_eval.shape[0])
    cache_key = (config, sizes, tuple(sorted(kwargs.items())))
    if cache_key in _MEASURED:
        return _MEASURED[cache_key]
    plans = []
    for kind in config.solver.representations:
        named = config.replace(solver={"representation": kind.name})
        try:
            plans.append(_plan_at(named, stream, **kwargs))
        except ValueError:
            continue  # refused: it is not a candidate
    untimed = [p for p in plans if p.mode != "resident" or p.devices > 1]
    if len(plans) < 2 or untimed or not stream.steps:
        why = "only one representation fits" if len(plans) < 2 else "no stored pairs"
        if untimed:
            why = f"{untimed[0].kind.label} space would be {untimed[0].mode} on {untimed[0].devices} device(s)"
        plan = dataclasses.replace(
            modelled, reason=f"{modelled.reason}; solver.plan_costs='measured': not timed ({why})"
        )
    else:
        timings = {p.representation: step_seconds(config, stream, p) for p in plans}
        best = min(plans, key=lambda p: timings[p.representation][0])
        listed = ", ".join(
            f"{p.kind.label} {timings[p.representation][0]:.3g} s "
            f"(compiled in {timings[p.representation][1]:.3g} s)"
            for p in plans
        )
        # the chosen plan's own placement (its reason after "solver.representation=...")
        where = best.reason.split("; ", 1)[1] if "; " in best.reason else ""
        reason = (
            f"auto, solver.plan_costs='measured': {best.kind.label} space is the fastest for "
            f"{config.solver.mode.description} (one step at the last step's history: {listed})"
        )
        plan = dataclasses.replace(
            best,
            costs={name: t for name, (t, _) in timings.items()},
            reason=f"{reason}; {where}" if where else reason,
        )
    _MEASURED[cache_key] = plan
    return plan


def _plan_at(config: Config, stream: DataStream, **kwargs) -> LimitPlan:
    return plan_limit(
        config,
        dim=stream.dim,
        steps=stream.steps,
        batch=stream.batch,
        eval_size=stream.x_eval.shape[0],
        **kwargs,
    )


def step_seconds(
    config: Config, stream: DataStream, plan: LimitPlan, *, repeats: int = 2
) -> tuple[float, float]:
    """(the fastest of `repeats` calls of one compiled step of one particle system at the last
    SGD step, its compile time) in seconds, for `plan`'s representation (resident)."""
    config = config.replace(solver={"representation": plan.representation, "groups": 1})
    dtype = jnp.dtype(config.run.dtype)
    with jax.enable_x64(dtype == jnp.float64):
        key_solver, key_state, key_fill = jax.random.split(jax.random.key(0), 3)
        solver = build_solver(config, stream, key=key_solver, plan=plan)
        k = stream.steps - 1
        filled = k * stream.batch + solver.anchors * (k > 0)
        state = fill_history(stack([solver.init_state(key=key_state)]), filled, key=key_fill)
        inputs = (
            stack([solver]),
            jnp.int32(k),
            jnp.asarray(stream.x_train[k], dtype),
            jnp.asarray(stream.y_train[k], dtype),
            jnp.asarray(stream.x_eval, dtype),
        )
        start = time.perf_counter()
        compiled = jit_step.lower(inputs, state).compile()
        compile_s = time.perf_counter() - start
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            state, out = compiled(inputs, state)
            jax.block_until_ready((state, out))
            best = min(best, time.perf_counter() - start)
    return best, compile_s


def fill_history(state: LimitState, filled: int, *, key) -> LimitState:
    """`state` with its history slots [0, filled) holding random values: stored inputs and
    increments standard normal, factor rows lower-triangular with unit diagonal (a valid
    factor). For timing: a step's work depends on the slots in use, not on their values."""
    keys = iter(jax.random.split(key, 64))

    def values(a):  # (groups, steps, particles, slots)
        used = jnp.arange(a.shape[-1]) < filled
        return jnp.where(used, jax.random.normal(next(keys), a.shape, a.dtype), a)

    def factor(a):  # (groups, steps, slots, slots), identity-padded
        slots = jnp.arange(a.shape[-1])
        noise = 0.1 * jnp.tril(jax.random.normal(next(keys), a.shape, a.dtype), -1)
        return a + jnp.where((slots[:, None] < filled) & (slots < filled), noise, 0)

    history = {name: values(a) for name, a in state.history.items()}
    noise = state.noise
    if noise is not None:
        noise = {name: FieldNoise(values(f.white), factor(f.factor)) for name, f in noise.items()}
    state = eqx.tree_at(lambda s: s.history, state, history)
    return eqx.tree_at(lambda s: s.noise, state, noise, is_leaf=lambda x: x is None)
