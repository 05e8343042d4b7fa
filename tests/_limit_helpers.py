"""Small builders shared by the limit-solver tests, and seed ensembles: many independent solves
(or finite networks) of one config vmapped into a single compiled call, for plain Monte Carlo over
seeds at the cost of one compilation per shape."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from nfd_sde import DataStream, load_config
from nfd_sde.finite import EvalKernels, make_network, mup_multipliers, train_scan
from nfd_sde.limit import (
    build_solver,
    jit_step,
    limit_evaluate,
    limit_step,
    plan_for,
    plan_limit,
    solve_limit,
)
from nfd_sde.model import loss_of
from solvers import DepthGrid


def sphere_inputs(count: int, dim: int, *, seed: int) -> np.ndarray:
    """Inputs with |x|^2 / d = 1."""
    x = np.random.default_rng(seed).standard_normal((count, dim))
    return x / np.linalg.norm(x, axis=-1, keepdims=True) * np.sqrt(dim)


def stream_from(x_train, y_train, x_eval, y_eval) -> DataStream:
    return DataStream(
        np.asarray(x_train, float),
        np.asarray(y_train, float),
        np.asarray(x_eval, float),
        np.asarray(y_eval, float),
    )


# One particle system on one depth grid without control variates: the particle scheme itself.
PLAIN = ["solver.groups=1", "solver.levels=1", "solver.control_variates=false"]


def first_step_problem(
    *, particles, depth_steps, representation, backward, eta=0.1, solver=PLAIN, block="one_layer"
):
    """Spec section 3: linear phi and readout, frozen U and v, one input with |x|^2/d = 1, y = 1
    (with `block="two_layer"`, spec section 5)."""
    config = load_config(
        None,
        [
            *solver,
            f"model.block={block}",
            "model.activation=linear",
            "model.readout=linear",
            "model.dim=4",
            "training.eta_U=0",
            "training.eta_v=0",
            f"training.eta={eta}",
            "training.steps=1",
            "training.batch=1",
            "data.eval_size=1",
            f"solver.particles={particles}",
            f"solver.depth_steps={depth_steps}",
            f"solver.representation={representation}",
            f"solver.backward={backward}",
        ],
    )
    x = sphere_inputs(1, 4, seed=0)
    return config, stream_from(x[None], np.ones((1, 1, 1)), x, np.ones((1, 1)))


def first_step_gain(config, stream, groups: int, *, seed: int = 0) -> tuple[float, float]:
    """(f^1 - f^0) / (eta y) on the eval input (the train input itself) from one solve of
    `groups` independent particle systems (one level, no control variates): its mean and the
    standard error over the groups."""
    config = config.replace(solver={"groups": groups, "levels": 1, "control_variates": False})
    result = solve_limit(config, stream, key=jax.random.key(seed))
    gain = (result.f_eval[1, 0, 0] - result.f_eval[0, 0, 0]) / config.training.eta
    # f^0 and f^1 come from the same groups: the error of the difference is that of f^1 - f^0,
    # bounded by the sum of the two standard errors
    se = (result.stderr["f_eval"][1, 0, 0] + result.stderr["f_eval"][0, 0, 0]) / config.training.eta
    return float(gain), float(se)


# ---------------------------------------------------------------------------------------------
# Seed ensembles. Seed s uses `jax.random.key(s)` exactly as `solve_limit` / `train_finite` do, so
# an ensemble's member s is the run those functions give for that key (tested in
# tests/test_field_space_replay.py). The result is a dict of arrays with a leading seed axis and
# the `Result` field names: f_train (S, K, B, C), f_eval (S, K+1, P, C), feature_train,
# grad_train (S, K, D, B, B), feature_eval (S, K+1, D, P, P). Seeds run in chunks of at most
# CHUNK (the last one padded), so every ensemble of a shape shares one compilation and large
# ensembles stay within memory.

CHUNK = 2048


def _chunked(run, seeds) -> dict[str, np.ndarray]:
    seeds = list(seeds)
    size = min(len(seeds), CHUNK)
    parts = []
    for start in range(0, len(seeds), size):
        chunk = seeds[start : start + size]
        padded = chunk + chunk[:1] * (size - len(chunk))
        parts.append({k: v[: len(chunk)] for k, v in run(padded).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@eqx.filter_jit
def _limit_runs(solvers, states, x_train, y_train, x_eval):
    steps = jnp.arange(x_train.shape[0], dtype=jnp.int32)

    def one(solver, state):
        def step(state, inputs):
            k, x_batch, y_batch = inputs
            return limit_step(solver, state, k, x_batch, y_batch, x_eval)

        state, outs = lax.scan(step, state, (steps, x_train, y_train))
        f_final, _, feature_final = limit_evaluate(solver, state, steps[-1] + 1, x_eval)
        return outs, f_final, feature_final

    return eqx.filter_vmap(one)(solvers, states)


def limit_ensemble(config, stream, seeds) -> dict[str, np.ndarray]:
    """`solve_limit(config, stream, key=jax.random.key(s))` for every s in `seeds`, at once."""
    return _chunked(lambda chunk: _limit_chunk(config, stream, chunk), seeds)


def _limit_chunk(config, stream, seeds):
    # each seed is one particle system on one depth grid (`PLAIN`), as the members are used
    config = config.replace(solver={"groups": 1, "levels": 1, "control_variates": False})
    dtype = config.run.dtype
    plan = plan_limit(
        config,
        dim=stream.dim,
        steps=stream.steps,
        batch=stream.batch,
        eval_size=stream.x_eval.shape[0],
    )
    with jax.enable_x64(dtype == "float64"):

        def build(key):
            key_solver, key_state = jax.random.split(key)
            solver = build_solver(config, stream, key=key_solver, plan=plan)
            return solver, solver.init_state(key=key_state)

        keys = jnp.stack([jax.random.key(s) for s in seeds])
        solvers, states = eqx.filter_vmap(build)(keys)
        outs, f_final, feature_final = _limit_runs(
            solvers,
            states,
            jnp.asarray(stream.x_train, dtype),
            jnp.asarray(stream.y_train, dtype),
            jnp.asarray(stream.x_eval, dtype),
        )
        return {
            "f_train": np.asarray(outs.f_train),
            "f_eval": np.concatenate([outs.f_eval, f_final[:, None]], axis=1),
            "feature_train": np.asarray(outs.feature_train),
            "feature_eval": np.concatenate([outs.feature_eval, feature_final[:, None]], axis=1),
            "grad_train": np.asarray(outs.grad_train),
        }


@eqx.filter_jit
def _finite_runs(models, multipliers, eta, x_train, y_train, x_eval, y_eval, *, loss, layers):
    def one(model):
        _, steps, evals = train_scan(
            model,
            multipliers,
            eta,
            x_train,
            y_train,
            x_eval,
            y_eval,
            loss=loss,
            recorder=EvalKernels(layers),
            layers=layers,
        )
        return steps, evals

    return eqx.filter_vmap(one)(models)


def finite_ensemble(config, stream, seeds) -> dict[str, np.ndarray]:
    """`train_finite(config, stream, key=jax.random.key(s))` for every s in `seeds`, at once."""
    return _chunked(lambda chunk: _finite_chunk(config, stream, chunk), seeds)


def _finite_chunk(config, stream, seeds):
    with jax.enable_x64(config.run.dtype == "float64"):
        dtype = jnp.result_type(float)
        keys = jnp.stack([jax.random.key(s) for s in seeds])
        models = eqx.filter_vmap(lambda key: make_network(config, key=key))(keys)
        template = make_network(config, key=jax.random.key(0))
        layers = DepthGrid(template.depth).point_indices(config.run.kernel_depths)
        steps, evals = _finite_runs(
            models,
            mup_multipliers(config, template),
            jnp.asarray(config.training.eta, dtype),
            *(jnp.asarray(a, dtype) for a in (stream.x_train, stream.y_train)),
            *(jnp.asarray(a, dtype) for a in (stream.x_eval, stream.y_eval)),
            loss=loss_of(config),
            layers=layers,
        )
        return {
            "f_train": np.asarray(steps.outputs),
            "f_eval": np.asarray(evals.outputs),
            "feature_train": np.asarray(steps.feature_kernel),
            "feature_eval": np.asarray(evals.feature_kernel),
            "grad_train": np.asarray(steps.grad_kernel),
        }


def trained_quantities(run) -> dict[str, np.ndarray]:
    """What the convergence tests compare, per seed: the outputs' change from initialisation and
    the recorded kernels."""
    return {
        "f_eval - f_eval[0]": run["f_eval"][:, 1:] - run["f_eval"][:, :1],
        "feature_eval": run["feature_eval"],
        "feature_train": run["feature_train"],
        "grad_train": run["grad_train"],
    }


def assert_limit_is_the_network(limit, finite, *, rtol: float, moved: float) -> None:
    """A limit solved from a finite network's own initial weights (M = L, N = n) against that
    network trained on the same data: outputs (eval and, where both record them, train) and the
    three kernels equal to `rtol` relative to each array's largest entry, and training moved
    the eval outputs by more than `moved` times that scale (the comparison is not vacuous)."""
    scale = np.abs(finite.f_eval).max()
    np.testing.assert_allclose(limit.f_eval, finite.f_eval, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(limit.f_train, finite.f_train, rtol=rtol, atol=rtol * scale)
    for name in ("feature_eval", "feature_train", "grad_train"):
        a, b = limit.kernels[name], finite.kernels[name]
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    assert np.abs(finite.f_eval[-1] - finite.f_eval[0]).max() > moved * scale


def compiled_step_text(config, stream, k: int = 3) -> str:
    """The optimised HLO of one group's limit step at SGD step k (float32 inputs), for checks
    of what the compiled step holds."""
    solver = build_solver(config, stream, key=jax.random.key(0), plan=plan_for(config, stream))
    stacked = jax.tree.map(lambda a: a[None], solver)
    state = jax.tree.map(lambda a: a[None], solver.init_state(key=jax.random.key(1)))
    data = [
        np.asarray(a, np.float32) for a in (stream.x_train[k], stream.y_train[k], stream.x_eval)
    ]
    return jit_step.lower((stacked, np.int32(k), *data), state).compile().compiled.as_text()
