"""The limit solver against the finite network it is the limit of.

* Exact: weight space with M = L and N = n, fed the network's own initial weights (U, v and the
  stored W_l, or W~_l = W_l + D_l for the decoupled backward), is the finite network computed
  another way; the two must agree to round-off in both backward modes.
* In law: a decoupled finite network approaches the exact limit at its depth as the width grows
  (Monte Carlo, n^{-1/2}), and the limit at M = L approaches the continuum as the depth grows
  (O(1/L)), both on the linear problem whose M-step limit `linear_reference` gives exactly.
"""

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.finite import make_network, train_finite
from nfd_sde.limit import solve_limit
from nfd_sde.validation import limit_from_network, linear_reference
from solvers import fit_loglog
from tests._limit_helpers import assert_limit_is_the_network, finite_ensemble, trained_quantities


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
    # the run trained: outputs moved by far more than the tolerance
    assert_limit_is_the_network(limit, finite, rtol=rtol, moved=1e3 * rtol)


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
def test_decoupled_networks_approach_the_limit_as_width_grows(linear_problem):
    """Decoupled finite networks of depth L = 8 and width n = 32, 128, 512 (128, 32, 8 seeds, one
    compiled ensemble per width) against the exact n -> infinity value of the same depth
    (`linear_reference`, linear phi, three trained steps with U and v learning): the RMS distance
    over seeds and entries of the outputs' change, the eval and training feature kernels and the
    gradient kernels, relative to each quantity's RMS, falls like n^{-1/2} (geometric mean over
    the four; slope measured -0.57 +- 0.04). Window (-0.7, -0.4): the exact reference has no
    error of its own, and at n = 32 the O(1/n) corrections to the variance (heavy-tailed
    gradient kernels) and the O(1/n) bias steepen the slope above -1/2."""
    config, stream, reference, _ = linear_problem
    targets = trained_quantities(
        {
            "f_eval": reference.f_eval[None],
            "feature_eval": reference.kernels["feature_eval"][None],
            "feature_train": reference.kernels["feature_train"][None],
            "grad_train": reference.kernels["grad_train"][None],
        }
    )
    widths, seed_counts = [32, 128, 512], [128, 32, 8]
    distances = []
    for width, count in zip(widths, seed_counts):
        network = {"width": width, "depth": config.solver.depth_steps, "backward": "decoupled"}
        runs = trained_quantities(
            finite_ensemble(config.replace(network=network), stream, range(count))
        )
        per_quantity = [
            np.sqrt(np.mean((runs[name] - targets[name]) ** 2) / np.mean(targets[name] ** 2))
            for name in runs
        ]
        distances.append(float(np.exp(np.mean(np.log(per_quantity)))))
    fit = fit_loglog(widths, distances)
    print(f"width rate: slope {fit.slope:.3f} +- {fit.slope_stderr:.3f}, distances {distances}")
    assert -0.7 < fit.slope < -0.4, (fit, distances)


def test_limit_at_depth_l_approaches_the_continuum_as_depth_grows(linear_problem):
    """The limit on an L-step grid (the n -> infinity decoupled network of depth L) moves toward
    the continuum like 1/L. Exact values (`linear_reference` of the trained linear problem, no
    Monte Carlo error; the field-space solver equals it at L = 8 within Monte Carlo error in
    tests/test_limit_field_space.py, and the hand-written scheme exactly in
    tests/test_field_space_replay.py): successive differences |f_L - f_2L| of outputs and
    kernels, L = 8..64, have local slopes that rise toward -1 (the O(1/L^2) curvature), and the
    fitted slope lies in (-1.05, -0.85)."""
    config, stream, _, _ = linear_problem
    values = {}
    for depth in (8, 16, 32, 64, 128):
        result = linear_reference(config.replace(solver={"depth_steps": depth}), stream)
        values[depth] = np.concatenate(
            [result.f_eval.ravel()]
            + [result.kernels[k].ravel() for k in ("feature_eval", "grad_train")]
        )
    depths = [8, 16, 32, 64]
    diffs = [float(np.sqrt(np.mean((values[d] - values[2 * d]) ** 2))) for d in depths]
    local = -np.log2(np.array(diffs[1:]) / np.array(diffs[:-1]))
    fit = fit_loglog(depths, diffs)
    print(f"depth rate: slope {fit.slope:.3f}, local slopes {-local}, differences {diffs}")
    assert np.all(np.diff(local) > 0) and abs(local[-1] - 1.0) < 0.05, local
    assert -1.05 < fit.slope < -0.85, (fit, diffs)
