"""The field-space limit solver against answers that carry no discretisation error.

* Linear activation: `linear_reference` is the exact N -> infinity value of the same M-step
  scheme (no particles), for every reported quantity at every SGD step: outputs, feature kernels
  of the eval and training inputs, gradient kernels. The kernels at init are also checked against
  their closed forms (Sigma_0 (1 + 1/M)^m forward, chi chi' (1 + 1/M)^{M-m} backward, cross terms
  included).
* ReLU at init: the feature kernels are the arc-cosine kernel of the Euler recursion
  `euler_kernel`, and the backward kernels the degree-0 recursion `euler_gradient_kernel`, for two
  inputs jointly (diagonal and cross term), on the eval and the training inputs.

Monte Carlo over seeds: one compiled ensemble per config shape
(`tests/_limit_helpers.limit_ensemble`), S = 64 seeds of N = 2^13 particles (2^19 particle
samples). Tolerances (`tests/_statistics.py`):
  * per quantity, the relative shift delta (least squares over all its entries) within 4 of its
    standard errors (a t with 63 degrees of freedom exceeds 4 with probability 2e-4), and the
    standard error itself below 0.5% (so a 2% error of the quantity is a > 4 sigma effect);
  * per entry, |z| < 5.5 (t_63 tail 8e-7 per entry, < 0.1% over the ~150 entries).
The O(1/N) bias of particle-estimated kernels is below ~0.3% at N = 2^13 (bounded by
tests/test_limit_solver.py::test_convergence_rate_in_particles), below these errors. Gradient
kernels are divided by the run's own chi(x) chi(x') (one output: G is linear in its terminal
value chi V, so the ratio is the same quantity without the chi noise); outputs are compared by
their change f^k - f^0 (f^0 -> 0, so subtracting it removes the initial readout's noise, a
control variate with known mean).
"""

import numpy as np

from nfd_sde import load_config, load_stream
from nfd_sde.validation import (
    backward_second_moment,
    euler_gradient_kernel,
    euler_kernel,
    forward_second_moment,
    initial_sigma,
    linear_reference,
    relu_derivative_expectation,
    relu_expectation,
)
from tests._limit_helpers import limit_ensemble
from tests._statistics import entry_z, relative_shift

PARTICLES = 2**13
SEEDS = range(64)
STEPS = 8


def linear_config(*extra):
    """Linear phi and readout, MSE, K = 3 steps of B = 2, P = 2 eval inputs, M = 8, field space."""
    return load_config(
        None,
        [
            "model.activation=linear",
            "model.readout=linear",
            "model.dim=4",
            "training.steps=3",
            "training.batch=2",
            "training.eta=0.5",
            "data.eval_size=2",
            "data.teacher=linear",
            "data.seed=5",  # every |chi| >= 0.25 in the limit: far from 0 at every N used
            f"solver.particles={PARTICLES}",
            f"solver.depth_steps={STEPS}",
            "solver.representation=field",
            "run.kernel_depths=[0.0, 0.5, 1.0]",
            *extra,
        ],
    )


def normalised_gradients(run, y_train):
    """grad_train / (chi chi') per seed, chi = f_train - y (one output). Needs |chi| well away
    from 0: the factorisation's jitter adds noise of size sqrt(jitter) times the batch's mean
    |chi| to every pair, which is a large relative error for a pair whose chi is ~1e-4."""
    chi = run["f_train"][..., 0] - y_train[None, ..., 0]  # (S, K, B)
    return run["grad_train"] / (chi[:, :, None, :, None] * chi[:, :, None, None, :])


def compare_with_reference(run, reference, y_train):
    """Every quantity of an ensemble against the exact reference; returns the shifts."""
    chi_ref = reference.f_train[..., 0] - y_train[..., 0]
    quantities = {
        "f_eval - f_eval[0]": (
            run["f_eval"][:, 1:] - run["f_eval"][:, :1],
            reference.f_eval[1:] - reference.f_eval[:1],
        ),
        "f_train": (run["f_train"][:, 1:], reference.f_train[1:]),
        "feature_eval": (run["feature_eval"], reference.kernels["feature_eval"]),
        "feature_train": (run["feature_train"], reference.kernels["feature_train"]),
        "grad_train / chi chi'": (
            normalised_gradients(run, y_train),
            reference.kernels["grad_train"]
            / (chi_ref[:, None, :, None] * chi_ref[:, None, None, :]),
        ),
    }
    shifts = {}
    for name, (samples, exact) in quantities.items():
        delta, se = relative_shift(samples, exact)
        z = np.abs(entry_z(samples, exact)).max()
        assert abs(delta) < 4 * se and z < 5.5, (name, delta, se, z)
        shifts[name] = (delta, se)
    return shifts


def test_linear_init_kernels_match_closed_forms(linear_problem):
    """k = 0: E[H_t(x) H_t(x')] = (x.x'/d) (1 + 1/M)^m and E[G_t(x) G_t(x')] = chi chi'
    (1 + 1/M)^{M-m} (E[V^2] = 1), diagonal and cross terms, eval and training inputs; the
    reference reproduces them to round-off."""
    _, stream, reference, run = linear_problem
    m = np.array([0, STEPS // 2, STEPS])
    growth = forward_second_moment(m / STEPS, activation="linear", depth=STEPS)
    for name, x in (("feature_eval", stream.x_eval), ("feature_train", stream.x_train[0])):
        exact = growth[:, None, None] * (x @ x.T / x.shape[1])[None]
        np.testing.assert_allclose(reference.kernels[name][0], exact, rtol=1e-12)
        samples = run[name][:, 0]
        delta, se = relative_shift(samples, exact)
        assert abs(delta) < 4 * se and se < 0.005, (name, delta, se)
        assert np.abs(entry_z(samples, exact)).max() < 5.5
    backward = backward_second_moment(m / STEPS, depth=STEPS)[:, None, None] * np.ones((3, 2, 2))
    chi_ref = reference.f_train[0, :, 0] - stream.y_train[0, :, 0]
    np.testing.assert_allclose(
        reference.kernels["grad_train"][0] / np.outer(chi_ref, chi_ref), backward, rtol=1e-12
    )
    samples = normalised_gradients(run, stream.y_train)[:, 0]
    delta, se = relative_shift(samples, backward)
    assert abs(delta) < 4 * se and se < 0.005, (delta, se)
    assert np.abs(entry_z(samples, backward)).max() < 5.5
    # the grid value tends to e^t: the gap at t = 1 is the O(1/M) Euler error
    assert abs(growth[-1] - np.e) < np.e / STEPS


def test_trained_linear_limit_matches_exact_reference(linear_problem):
    """Three SGD steps with trained U and v: outputs, eval and training feature kernels and
    gradient kernels at t = 0, 1/2, 1 of every step agree with the exact M-step values."""
    _, stream, reference, run = linear_problem
    shifts = compare_with_reference(run, reference, stream.y_train)
    assert all(se < 0.005 for _, se in shifts.values()), sorted(shifts.items())
    # training moved every quantity well beyond its error (the comparison is not vacuous)
    moved = reference.kernels["feature_eval"][-1] - reference.kernels["feature_eval"][0]
    assert np.abs(moved).max() > 0.05 * np.abs(reference.kernels["feature_eval"][0]).max()


def test_depth_profiles_and_gamma0_match_exact_reference():
    """Non-constant beta(t) and eta_lr(t) (read at t_m), gamma0 = 2 and frozen U: the same
    comparison. The coefficients are traced, so this reuses the compiled ensemble."""
    config = linear_config(
        "model.beta_profile=[[0, 1.5], [1, 0.5]]",
        "model.lr_profile=[[0, 0.5], [1, 2.0]]",
        "model.gamma0=2.0",
        "training.eta=0.25",  # the limit's rate is eta gamma0 = 0.5, as in the problem above
        "training.eta_U=0",
    )
    stream = load_stream(config)
    reference = linear_reference(config, stream)
    shifts = compare_with_reference(
        limit_ensemble(config, stream, SEEDS), reference, stream.y_train
    )
    assert all(se < 0.005 for _, se in shifts.values()), sorted(shifts.items())


def test_relu_init_kernels_match_arccosine_recursions():
    """ReLU, linear readout, at init: the feature kernels E[relu(H(x)) relu(H(x'))] are the
    degree-1 arc-cosine kernel of the Euler recursion's Sigma_m, the gradient kernels the
    degree-0 backward recursion, for the eval pair and the training pair jointly."""
    config = load_config(
        None,
        [
            "model.activation=relu",
            "model.readout=linear",
            "model.dim=4",
            "training.steps=1",
            "training.batch=2",
            "data.eval_size=2",
            f"solver.particles={PARTICLES}",
            f"solver.depth_steps={STEPS}",
            "solver.representation=field",
            "run.kernel_depths=[0.0, 0.25, 0.5, 0.75, 1.0]",
        ],
    )
    stream = load_stream(config)
    run = limit_ensemble(config, stream, SEEDS)
    beta = config.model.beta_profile
    points = [0, 2, 4, 6, 8]
    checks = {}
    for name, x in (("feature_eval", stream.x_eval), ("feature_train", stream.x_train[0])):
        sigma = euler_kernel(initial_sigma(x[0], x[1]), STEPS, activation="relu", beta=beta)
        entries = np.stack([np.asarray(relu_expectation(s)) for s in sigma[points]])
        checks[name] = (run[name][:, 0], _as_matrix(entries))
        if name == "feature_train":
            gradient = euler_gradient_kernel(sigma, activation="relu", beta=beta)[points]
            checks["grad_train / chi chi'"] = (
                normalised_gradients(run, stream.y_train)[:, 0],
                _as_matrix(gradient),
            )
    for name, (samples, exact) in checks.items():
        delta, se = relative_shift(samples, exact)
        z = np.abs(entry_z(samples, exact)).max()
        assert abs(delta) < 4 * se and se < 0.005 and z < 5.5, (name, delta, se, z)
    # the inputs are correlated but not collinear: the cross terms are neither 0 nor the diagonal
    cross = checks["feature_train"][1][:, 0, 1] / checks["feature_train"][1][:, 0, 0]
    assert np.all((0.05 < np.abs(cross)) & (np.abs(cross) < 0.99)), cross
    assert float(relu_derivative_expectation(np.array([1.0, 1.0, 0.0]))[2]) == 0.25


def _as_matrix(entries):
    """(points, 3) entries (11, 22, 12) -> (points, 2, 2) symmetric kernels."""
    out = np.empty((len(entries), 2, 2))
    out[:, 0, 0], out[:, 1, 1] = entries[:, 0], entries[:, 1]
    out[:, 0, 1] = out[:, 1, 0] = entries[:, 2]
    return out
