"""The limit solver against the finite network it is the limit of.

* Exact: weight space with M = L and N = n, fed the network's own initial weights (U, v and the
  stored W_l, or W~_l = W_l + D_l for the decoupled backward), is the finite network computed
  another way; the two must agree to round-off in both backward modes.
* In law: a decoupled finite network approaches the field-space limit at its depth as the width
  grows (Monte Carlo, n^{-1/2}), and the limit at M = L approaches the fine-grid limit as the
  depth grows (O(1/L)).
"""

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.finite import make_network, train_finite
from nfd_sde.limit import solve_limit
from nfd_sde.validation import limit_from_network
from solvers import fit_loglog


def _problem(width, depth, *, backward, representation="weight", particles=None, extra=()):
    return load_config(
        None,
        [
            "solver.groups=1",
            "solver.levels=1",
            "solver.control_variates=false",
            "model.activation=tanh",
            "model.dim=5",
            "model.outputs=2",
            "training.eta=0.7",
            "training.steps=3",
            "training.batch=2",
            "data.eval_size=3",
            f"network.width={width}",
            f"network.depth={depth}",
            f"network.backward={backward}",
            f"solver.particles={particles or width}",
            f"solver.depth_steps={depth}",
            f"solver.representation={representation}",
            f"solver.backward={backward}",
            "run.kernel_depths=[0.0, 0.5, 1.0]",
            *extra,
        ],
    )


@pytest.mark.parametrize("backward", ["decoupled", "standard"])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-9), ("float32", 2e-4)])
def test_weight_space_with_network_weights_is_the_network(backward, dtype, rtol):
    """Same weights, same data: the M = L, N = n weight-space solve reproduces the finite run.

    Tolerances: float64 round-off accumulated over ~10 matmul layers and 3 steps (1e-9), and
    float32 likewise (2e-4 relative)."""
    config = _problem(48, 6, backward=backward, extra=(f"run.dtype={dtype}",))
    stream = load_stream(config)
    key = jax.random.key(3)
    finite = train_finite(config, stream, key=key)
    with jax.enable_x64(dtype == "float64"):
        network = make_network(config, key=key)
        solver, state = limit_from_network(config, stream, network)
        limit = solve_limit(config, stream, key=jax.random.key(0), solver=solver, state=state)
    scale = np.abs(finite.f_eval).max()
    np.testing.assert_allclose(limit.f_eval, finite.f_eval, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(limit.f_train, finite.f_train, rtol=rtol, atol=rtol * scale)
    for name in ("feature_eval", "feature_train", "grad_train"):
        a, b = limit.kernels[name], finite.kernels[name]
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.abs(b).max())
    # the run trained: outputs moved by far more than the tolerance
    assert np.abs(finite.f_eval[-1] - finite.f_eval[0]).max() > 1e3 * rtol * scale


@pytest.mark.parametrize(
    "extra",
    [
        ("training.loss=cross_entropy", "model.outputs=3"),
        ("model.gamma0=2.0", "model.readout=linear", "model.activation=gelu"),
        ("model.beta_profile=[[0, 1.5], [1, 0.5]]", "model.lr_profile=[[0, 0.5], [1, 2]]"),
    ],
    ids=["cross-entropy", "gamma0-linear-readout", "depth-profiles"],
)
def test_weight_space_matches_the_network_across_options(extra):
    """The same exact identity for cross-entropy with 3 classes, gamma0 != 1 with a linear
    readout (eta -> eta gamma0 and f / gamma0 in the limit), and non-constant depth profiles
    beta(t), eta_lr(t) (read at t_{l-1} by both). float64, tolerance as above."""
    config = _problem(40, 5, backward="decoupled", extra=("run.dtype=float64", *extra))
    stream = load_stream(config)
    key = jax.random.key(5)
    finite = train_finite(config, stream, key=key)
    with jax.enable_x64(True):
        network = make_network(config, key=key)
        solver, state = limit_from_network(config, stream, network)
        limit = solve_limit(config, stream, key=jax.random.key(0), solver=solver, state=state)
    scale = np.abs(finite.f_eval).max()
    np.testing.assert_allclose(limit.f_eval, finite.f_eval, rtol=1e-9, atol=1e-9 * scale)
    assert np.abs(finite.f_eval[-1] - finite.f_eval[0]).max() > 1e-3 * scale


@pytest.mark.slow
def test_decoupled_networks_approach_the_limit_as_width_grows():
    """RMS (over seeds, steps, inputs) distance of finite eval outputs to a 2^15-particle limit
    falls like n^{-1/2}: the window (-0.75, -0.3) allows the reference's own error (~1/sqrt(8)
    of the smallest finite error) and the 4-seed spread of the fit."""
    depth = 4
    widths = [64, 256, 1024]
    config = _problem(64, depth, backward="decoupled", representation="field", particles=2**15)
    stream = load_stream(config)
    reference = solve_limit(config, stream, key=jax.random.key(100)).f_eval
    errors = []
    for width in widths:
        cfg = config.replace(network={"width": width})
        runs = [train_finite(cfg, stream, key=jax.random.key(s)).f_eval for s in range(4)]
        errors.append(float(np.sqrt(np.mean((np.stack(runs) - reference) ** 2))))
    fit = fit_loglog(widths, errors)
    print(f"width rate: slope {fit.slope:.3f} +- {fit.slope_stderr:.3f}, errors {errors}")
    assert -0.75 < fit.slope < -0.3, (fit, errors)


@pytest.mark.slow
def test_limit_at_depth_l_approaches_the_continuum_as_depth_grows():
    """The limit on an L-step grid (= the n -> infinity decoupled network of depth L) moves
    toward the fine-grid limit like 1/L. A problem with a large depth effect (ReLU, beta = 1.5)
    keeps the bias far above the Monte Carlo error; successive differences |f_L - f_2L| need no
    reference, and their slope is -1 up to O(1/L) curvature."""
    extra = ("model.activation=relu", "model.beta_profile=1.5", "training.eta=1.0")
    config = _problem(
        64, 4, backward="decoupled", representation="field", particles=2**14, extra=extra
    )
    stream = load_stream(config)
    outputs = {}
    for depth in (4, 8, 16, 32):
        cfg = config.replace(solver={"depth_steps": depth})
        outputs[depth] = np.mean(
            [solve_limit(cfg, stream, key=jax.random.key(s)).f_eval for s in range(2)], axis=0
        )
    depths = [4, 8, 16]
    diffs = [float(np.sqrt(np.mean((outputs[d] - outputs[2 * d]) ** 2))) for d in depths]
    fit = fit_loglog(depths, diffs)
    print(f"depth rate: slope {fit.slope:.3f} +- {fit.slope_stderr:.3f}, differences {diffs}")
    assert -1.35 < fit.slope < -0.65, (fit, diffs)
