"""The runs `time_to_accuracy.py` times, built from the public API only.

A **unit** is one run of fixed size: one `solve_limit` call (G groups of N particles), or one
vmapped ensemble of S finite networks per (width, depth). A method repeats its unit with new keys;
each unit gives a `Unit`: its estimate of f_eval (K+1, P, C), the variance of that estimate (the
groups' or the seeds' spread), its wall time. `_accuracy_law.py` pools them into errors and times.
"""

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nfd_sde import Config, load_stream, solve_limit
from nfd_sde.finite import AbstractRecorder, make_network, mup_multipliers, train_scan
from nfd_sde.model import loss_of
from solvers import extrapolate


@dataclasses.dataclass(frozen=True)
class Problem:
    """ReLU, phi readout, U, v and W trained (eta_P = 1), decoupled backward, tanh teacher."""

    dim: int = 4
    batch: int = 4
    eval_size: int = 4
    steps: int = 4
    eta: float = 0.5

    def config(self) -> Config:
        return Config().replace(
            model={"dim": self.dim, "activation": "relu", "readout": "phi"},
            training={"steps": self.steps, "batch": self.batch, "eta": self.eta},
            data={"eval_size": self.eval_size, "teacher": "tanh"},
            network={"backward": "decoupled"},
        )


@dataclasses.dataclass(frozen=True)
class Unit:
    """One run's estimate of f_eval (K+1, P, C), the variance of that estimate, its wall time."""

    value: np.ndarray
    var: np.ndarray
    wall_s: float


# ---------------------------------------------------------------------------------------------
# The limit solver


@dataclasses.dataclass(frozen=True)
class SolverMethod:
    name: str
    depth_steps: int
    levels: int
    control_variates: bool
    seed: int


def solver_unit(config: Config, stream, method: SolverMethod, particles, groups, unit) -> dict:
    """One `solve_limit` call of `method` (scan driver) with the key of `unit`."""
    config = config.replace(
        solver={
            "particles": particles,
            "groups": groups,
            "depth_steps": method.depth_steps,
            "levels": method.levels,
            "control_variates": method.control_variates,
            "driver": "scan",
            "memory_limit_gb": 64.0,
        }
    )
    key = jax.random.fold_in(jax.random.key(method.seed), unit)
    tick = time.perf_counter()
    result = solve_limit(config, stream, key=key)
    wall = time.perf_counter() - tick
    if result.status["diverged"]:
        raise RuntimeError(f"{method.name} unit {unit} diverged")
    return {
        "unit": Unit(result.f_eval, result.stderr["f_eval"] ** 2, wall),
        "levels": np.asarray(result.producer["level_f_eval"]),
        "variance_ratios": result.producer["variance_ratios"],
    }


# ---------------------------------------------------------------------------------------------
# Finite networks


class Outputs(AbstractRecorder):
    """The network's outputs on the eval inputs."""

    def __call__(self, model, x, y, loss):
        return model(x)


def ensemble(config: Config, width: int, depth: int, refinement: int):
    """A jitted function of (keys, data...): f_eval (S, K+1, P, C) of S decoupled networks of
    width x depth, one per key, built with `depth_refinement=refinement` and trained by
    `train_scan`, vmapped over the seeds (one compilation per shape)."""
    config = config.replace(network={"width": width, "depth": depth})
    loss, recorder = loss_of(config), Outputs()

    @eqx.filter_jit
    def run(keys, eta, x_train, y_train, x_eval, y_eval):
        models = eqx.filter_vmap(
            lambda k: make_network(config, key=k, depth_refinement=refinement)
        )(keys)
        multipliers = mup_multipliers(config, make_network(config, key=keys[0]))

        def train(model):
            return train_scan(
                model, multipliers, eta, x_train, y_train, x_eval, y_eval,
                loss=loss, recorder=recorder,
            )[2]  # fmt: skip

        return eqx.filter_vmap(train)(models)

    return run


def ensemble_data(config: Config) -> tuple:
    stream = load_stream(config)
    f32 = jnp.float32
    arrays = (stream.x_train, stream.y_train, stream.x_eval, stream.y_eval)
    return (jnp.asarray(config.training.eta, f32), *(jnp.asarray(a, f32) for a in arrays))


def width_keys(seed: int, unit: int, width: int, seeds: int):
    """The seeds of one width in one unit; every depth of that width uses the same keys."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), unit), width)
    return jax.random.split(key, seeds)


def finite_estimators(f: dict, walls: dict, widths, depths) -> dict[str, Unit]:
    """The finite estimators of one unit from f[(n, L)] (S, K+1, P, C) and walls[(n, L)]:
    `n{n}_L{L}` the ensemble mean; `n{n}_richL` Richardson in depth 2 f(n, L) - f(n, L/2) on
    common random numbers (per seed); `rich_n{n}_{2n}` Richardson in width too,
    2 R(2n) - R(n) over independent seeds."""
    out = {}
    for (n, depth), values in f.items():
        out[f"n{n}_L{depth}"] = Unit(
            values.mean(0), values.var(0, ddof=1) / len(values), walls[n, depth]
        )
    deep, shallow = max(depths), min(depths)
    for n in widths:
        per_seed = extrapolate(np.stack([f[n, deep], f[n, shallow]]), order=1)[0]
        wall = walls[n, deep] + walls[n, shallow]
        out[f"n{n}_richL"] = Unit(per_seed.mean(0), per_seed.var(0, ddof=1) / len(per_seed), wall)
    for small, large in zip(widths[:-1], widths[1:]):
        a, b = out[f"n{small}_richL"], out[f"n{large}_richL"]
        value = extrapolate(np.stack([b.value, a.value]), order=1)[0]
        out[f"rich_n{small}_{large}"] = Unit(value, 4 * b.var + a.var, a.wall_s + b.wall_s)
    return out


def finite_shapes(name: str, depths) -> list[tuple[int, int]]:
    """The (width, depth) ensembles a finite estimator uses (see `finite_estimators`)."""
    if name.startswith("rich_n"):
        widths = [int(w) for w in name[len("rich_n") :].split("_")]
        return [(n, depth) for n in widths for depth in depths]
    n, rest = name[1:].split("_", 1)
    used = depths if rest == "richL" else [int(rest[1:])]
    return [(int(n), depth) for depth in used]
