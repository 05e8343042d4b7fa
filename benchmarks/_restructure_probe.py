"""One measurement for `restructure.py`, run in a subprocess against one source tree.

    PYTHONPATH=TREE python -P benchmarks/_restructure_probe.py JSON_ARGS

Imports `nfd_sde` from TREE (with `-P` nothing else comes ahead of PYTHONPATH), through its
public names only, so it runs on any tree since the package was split into subpackages. It
prints one line `RESULT {...}`: the `solve_limit` and `train_finite` timings their results
record, and per-step times of the same steps called directly, through each tree's own jitted
step. A tree whose `build_solver` takes the plan (`nfd_sde.limit.plan_for`) is given it; an
older one plans by itself.
"""

import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp

import nfd_sde
from nfd_sde.finite import (
    evaluate,
    make_network,
    mup_multipliers,
    mup_sgd_from,
    mup_sgd_step,
    trainable_parameters,
)
from nfd_sde.limit import build_solver, jit_step
from nfd_sde.model import loss_of
from solvers import DepthGrid

try:
    from nfd_sde.limit import plan_for
except ImportError:  # a tree whose build_solver plans by itself
    plan_for = None


def finite_static(config, depth):
    layers = DepthGrid(depth).point_indices(config.run.kernel_depths)
    return {"loss": loss_of(config), "layers": layers}


def _one_group(tree):
    return jax.tree.map(lambda a: a[None], tree)


def _solver(config, stream, key):
    if plan_for is None:
        return build_solver(config, stream, key=key)
    return build_solver(config, stream, key=key, plan=plan_for(config, stream))


def _times(call, repeats: int) -> list[float]:
    """One warm-up call, then `repeats` timed calls, each ended by `block_until_ready`."""
    jax.block_until_ready(call(-1))
    times = []
    for r in range(repeats):
        tick = time.perf_counter()
        jax.block_until_ready(call(r))
        times.append(time.perf_counter() - tick)
    return times


def _summary(times: list[float]) -> dict:
    return {"times_s": times, "min_s": min(times), "median_s": statistics.median(times)}


def solve(config, stream, repeats: int) -> dict:
    """`solve_limit` (its recorded step and compile times), then `repeats` more steps of the
    same compiled step, the state donated from one call to the next as `solve_limit` does."""
    key = jax.random.key(config.run.seed)
    result = nfd_sde.solve_limit(config, stream, key=key)
    key_solver, key_state = jax.random.split(key)
    solver = _solver(config, stream, key_solver)
    f32 = jnp.float32
    x_train, y_train = jnp.asarray(stream.x_train, f32), jnp.asarray(stream.y_train, f32)
    x_eval = jnp.asarray(stream.x_eval, f32)
    # the jitted step maps over a leading group axis: one group
    state = [_one_group(solver.init_state(key=key_state))]
    solvers = _one_group(solver)

    def step(r):
        k = r % stream.steps
        inputs = (solvers, jnp.int32(k), x_train[k], y_train[k], x_eval)
        state[0], out = jit_step(inputs, state[0])
        return out

    keys = ("step_s", "first_step_s", "compile_time_s", "wall_time_s")
    return {
        "meta": {key: result.meta[key] for key in keys},
        "representation": result.producer["representation"],
        "direct": _summary(_times(step, repeats)),
    }


def train(config, stream, repeats: int) -> dict:
    """`train_finite` (its compile and wall times), then `repeats` more steps as `train_finite`
    makes them: `evaluate` on the eval inputs + `mup_sgd_step`. (wall - compile) / K is kept
    too, but it is mostly the call's eager set-up (building the network), not its K steps."""
    key = jax.random.key(config.run.seed)
    result = nfd_sde.train_finite(config, stream, key=key)
    meta = result.meta
    model = [make_network(config, key=key)]
    static = finite_static(config, model[0].depth)
    multipliers = mup_multipliers(config, model[0])
    eta = jnp.asarray(config.training.eta, jnp.float32)
    opt_state = [mup_sgd_from(multipliers, eta).init(trainable_parameters(model[0]))]
    f32 = jnp.float32
    x_train, y_train = jnp.asarray(stream.x_train, f32), jnp.asarray(stream.y_train, f32)
    x_eval, y_eval = jnp.asarray(stream.x_eval, f32), jnp.asarray(stream.y_eval, f32)

    def step(r):
        k = r % stream.steps
        record = evaluate(model[0], x_eval, y_eval, **static)
        model[0], opt_state[0], out = mup_sgd_step(
            model[0], opt_state[0], x_train[k], y_train[k], multipliers, eta, **static
        )
        return record, out

    wall, compile_s = meta["wall_time_s"], meta["compile_time_s"]
    return {
        "meta": {"compile_time_s": compile_s, "wall_time_s": wall},
        "wall_minus_compile_per_step_s": (wall - compile_s) / stream.steps,
        "direct": _summary(_times(step, repeats)),
    }


def main() -> None:
    args = json.loads(sys.argv[1])
    config = nfd_sde.load_config(None, args["overrides"])
    stream = nfd_sde.load_stream(config)
    out = {
        "nfd_sde": nfd_sde.__file__,
        "solve": solve(config, stream, args["solve_repeats"]),
        "train": train(config, stream, args["train_repeats"]),
    }
    print("RESULT " + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
