"""Small builders shared by the limit-solver tests."""

import equinox as eqx
import jax
import numpy as np

from nfd_sde import DataStream, load_config
from nfd_sde.limit import build_solver, forward_paths, solve_limit


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


def init_paths(config, inputs, *, seed):
    """Forward paths H_m (points, particles, inputs) at initialisation."""
    stream = stream_from(
        inputs[None, :1], np.zeros((1, 1, config.model.outputs)), inputs, np.zeros((len(inputs), 1))
    )
    key_solver, key_state = jax.random.split(jax.random.key(seed))
    solver = build_solver(config, stream, key=key_solver)
    state = solver.init_state(key=key_state)
    path, _ = eqx.filter_jit(forward_paths)(solver, state, 0, inputs.astype(np.float32))
    return np.asarray(solver.block.stream(path))
