"""The NFD limit solver against closed forms, an independent ODE solve, and itself.

Tolerances: Monte Carlo errors are either the textbook standard error of a variance estimate
from N Gaussian samples (relative sqrt(2/N)) or the empirical standard error over seeds; "exact
discrete" targets are the M-step values of the same scheme, so they carry no discretisation term.
"""

import math

import jax
import numpy as np
import pytest

from nfd_sde import load_config
from nfd_sde.limit import plan_limit, solve_limit
from nfd_sde.validation import (
    backward_second_moment,
    euler_kernel,
    first_step_change,
    forward_second_moment,
    initial_sigma,
    ode_kernel,
)
from solvers import append_factor_rows, conditional_factor, fit_loglog
from tests._limit_helpers import (
    PLAIN,
    first_step_gain,
    first_step_problem,
    init_paths,
    sphere_inputs,
    stream_from,
)

N_INIT = 2**14
M_INIT = 16


def _init_config(activation, *, particles=N_INIT, steps=M_INIT):
    return load_config(
        None,
        [
            *PLAIN,
            f"model.activation={activation}",
            "model.dim=6",
            f"solver.particles={particles}",
            f"solver.depth_steps={steps}",
            "solver.representation=field",
            "training.steps=1",
            "training.batch=1",
        ],
    )


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_init_variance_along_depth(activation):
    """E[H_t^2] = E[H_0^2] (1 + r/M)^m on the grid (-> e^{r t}), r = 1 (linear), 1/2 (ReLU),
    E[H_0^2] = |x|^2/d = 1."""
    x = sphere_inputs(2, 6, seed=3)
    path = init_paths(_init_config(activation), x, seed=0)
    second_moment = np.mean(path[:, :, 0] ** 2, axis=1)
    t = np.arange(M_INIT + 1) / M_INIT
    exact_discrete = forward_second_moment(t, activation=activation, depth=M_INIT)
    # a variance estimated from N Gaussian samples has relative standard error sqrt(2/N); 5 sigma
    np.testing.assert_allclose(second_moment, exact_discrete, rtol=5 * math.sqrt(2 / N_INIT))
    # the grid value tends to e^{r t}: the gap at t = 1 is the O(1/M) Euler error, < r^2 e^r / M
    continuum = forward_second_moment(1.0, activation=activation)
    assert abs(exact_discrete[-1] - continuum) < np.log(continuum) ** 2 * continuum / M_INIT


def test_relu_two_input_kernel_matches_arccosine_ode():
    """Sigma_t(x, x') of the particles = Euler recursion of the arc-cosine ODE, and that recursion
    converges to the adaptive diffrax ODE solution (error < 1e-6 by its tolerances) at rate 1/M."""
    config = _init_config("relu")
    x = sphere_inputs(2, 6, seed=5)
    path = init_paths(config, x, seed=1)
    particle_sigma = np.stack(
        [
            np.mean(path[:, :, 0] ** 2, 1),
            np.mean(path[:, :, 1] ** 2, 1),
            np.mean(path[:, :, 0] * path[:, :, 1], 1),
        ],
        axis=1,
    )
    sigma0 = initial_sigma(x[0], x[1])
    beta = config.model.beta_profile
    discrete = euler_kernel(sigma0, M_INIT, activation="relu", beta=beta)
    # standard error of a sample covariance: sqrt((s11 s22 + s12^2) / N); 5 sigma
    se = np.sqrt((discrete[:, 0] * discrete[:, 1] + discrete[:, 2] ** 2) / N_INIT)
    assert np.all(np.abs(particle_sigma[:, 2] - discrete[:, 2]) < 5 * se)
    # the ODE reference: linear case against its closed form checks the solve itself to 1e-9
    linear = ode_kernel(sigma0, np.array([0.5, 1.0]), activation="linear", beta=beta)
    np.testing.assert_allclose(linear, np.outer(np.exp([0.5, 1.0]), sigma0), rtol=1e-9)
    reference = ode_kernel(sigma0, np.array([1.0]), activation="relu", beta=beta)[0]
    steps = np.array([8, 16, 32, 64, 128])
    errors = [
        np.abs(euler_kernel(sigma0, s, activation="relu", beta=beta)[-1] - reference).max()
        for s in steps
    ]
    fit = fit_loglog(steps, errors)
    # explicit Euler is first order: the slope is -1 up to the O(1/M^2) curvature of the error
    assert -1.1 < fit.slope < -0.9


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_decoupled_backward_variance_at_init(activation):
    """Linear readout, decoupled: E[G_t^2] = E[V^2] (1 + r/M)^{M-m} -> E[V^2] e^{r (1-t)}.

    G is the loss-gradient path chi * V ..., so the kernel is divided by chi^2 (chi = f^0 - y)."""
    n, steps = 2**14, 16
    config = load_config(
        None,
        [
            *PLAIN,
            f"model.activation={activation}",
            "model.readout=linear",
            "model.dim=4",
            f"solver.particles={n}",
            f"solver.depth_steps={steps}",
            "solver.representation=field",
            "training.steps=1",
            "training.batch=1",
            "data.eval_size=1",
            "run.kernel_depths=[0.0, 0.25, 0.5, 0.75, 1.0]",
        ],
    )
    x = sphere_inputs(1, 4, seed=2)
    stream = stream_from(x[None], np.ones((1, 1, 1)), x, np.ones((1, 1)))
    result = solve_limit(config, stream, key=jax.random.key(4))
    chi = result.f_train[0, 0, 0] - 1.0
    g2 = result.kernels["grad_train"][0, :, 0, 0] / chi**2
    m = np.array(result.kernels["layers"])
    exact_discrete = backward_second_moment(m / steps, depth=steps, activation=activation)
    # relative standard errors sqrt(2/N) of E[V^2] and of the path variance; 6 sigma in total
    np.testing.assert_allclose(g2, exact_discrete, rtol=6 * math.sqrt(2 / n))


@pytest.mark.parametrize(
    "representation, particles, groups", [("field", 2**14, 6), ("weight", 1024, 8)]
)
def test_first_step_decoupled_is_eta_e_minus_one(representation, particles, groups):
    """Decoupled NFD: f^1 = eta y ((1 + 1/M)^M - 1) on the grid, -> eta y (e - 1)."""
    steps = 16
    config, stream = first_step_problem(
        particles=particles, depth_steps=steps, representation=representation, backward="decoupled"
    )
    gain, se = first_step_gain(config, stream, groups)
    target = first_step_change("decoupled", eta=1.0, depth=steps)
    # 4 standard errors of the group mean
    assert abs(gain - target) < 4 * se, (gain, target, se)
    assert abs(target - first_step_change("decoupled", eta=1.0)) < math.e / steps


def test_first_step_standard_backprop_tends_to_eta_e():
    """Weight space with the transposed forward matrices (networks that reuse their weights):
    f^1 = eta y (1 + 1/M)^{M-1} -> eta y e. The e/(e-1) gap to NFD does not shrink with depth."""
    gains_by_steps = {}
    for steps in (4, 32):
        config, stream = first_step_problem(
            particles=1024, depth_steps=steps, representation="weight", backward="standard"
        )
        gain, se = first_step_gain(config, stream, 8)
        target = first_step_change("standard", eta=1.0, depth=steps)
        assert abs(gain - target) < 4 * se, (steps, gain, target, se)
        gains_by_steps[steps] = gain
    # deeper is closer to e, and clearly away from e - 1
    standard, decoupled = (first_step_change(b, eta=1.0) for b in ("standard", "decoupled"))
    assert abs(gains_by_steps[32] - standard) < abs(gains_by_steps[4] - standard) + 0.1
    assert gains_by_steps[32] - decoupled > 0.7


def _nonlinear_problem(particles, depth_steps, representation, *, steps=3, batch=2, eval_size=2):
    config = load_config(
        None,
        [
            *PLAIN,
            "model.activation=tanh",
            "model.dim=4",
            "model.outputs=1",
            "training.eta=0.8",
            f"training.steps={steps}",
            f"training.batch={batch}",
            f"data.eval_size={eval_size}",
            "data.teacher=tanh",
            f"solver.particles={particles}",
            f"solver.depth_steps={depth_steps}",
            f"solver.representation={representation}",
        ],
    )
    from nfd_sde import load_stream

    return config, load_stream(config)


def _eval_outputs(config, stream, seeds):
    return np.stack(
        [solve_limit(config, stream, key=jax.random.key(s)).f_eval[..., 0] for s in seeds]
    )


def test_field_and_weight_space_agree_on_nonlinear_training():
    """Both exact representations of the decoupled noise give the same law: seed means of the
    eval outputs over 3 SGD steps agree within 4 combined standard errors, entry by entry."""
    config_f, stream = _nonlinear_problem(1024, 8, "field")
    config_w, _ = _nonlinear_problem(1024, 8, "weight")
    field = _eval_outputs(config_f, stream, range(8))
    weight = _eval_outputs(config_w, stream, range(100, 108))
    se = np.sqrt(field.var(0, ddof=1) / len(field) + weight.var(0, ddof=1) / len(weight))
    z = np.abs(field.mean(0) - weight.mean(0)) / se
    assert z.max() < 4.0, z
    # and training moved the outputs well beyond that error (the comparison is not vacuous)
    assert np.abs(field.mean(0)[-1] - field.mean(0)[0]).max() > 10 * se.max()


def test_drivers_agree():
    """diffrax and the hand-written lax.scan run the same scheme on the same noise."""
    config, stream = _nonlinear_problem(256, 4, "field")
    a = solve_limit(config, stream, key=jax.random.key(0))
    b = solve_limit(config.replace(solver={"driver": "scan"}), stream, key=jax.random.key(0))
    np.testing.assert_allclose(a.f_eval, b.f_eval, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        a.kernels["grad_train"], b.kernels["grad_train"], rtol=1e-4, atol=1e-6
    )


def test_conditional_factor_grows_the_cholesky_factor():
    """Appending rows reproduces the Cholesky factor of the whole kernel (jitter aside)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 7))
    kernel = a.T @ a / 50
    old, slots = 4, 7
    padded = np.eye(slots)
    padded[:old, :old] = np.linalg.cholesky(kernel[:old, :old])
    cross = np.zeros((3, slots))
    cross[:, :old] = kernel[old:, :old]
    rows, block = conditional_factor(cross, kernel[old:, old:], padded, jitter=0.0)
    grown = append_factor_rows(padded, rows, block, old)
    np.testing.assert_allclose(np.asarray(grown), np.linalg.cholesky(kernel), atol=1e-5)


def test_singular_kernels_are_guarded():
    """Frozen U makes the kernel over steps singular at t = 0 (H^k_0 = H^0_0), and repeated inputs
    make it singular everywhere; the solve stays finite and the factor's rows are bounded."""
    config, stream = _nonlinear_problem(512, 4, "field", steps=3, batch=2)
    config = config.replace(training={"eta_U": 0.0})
    x = stream.x_train.copy()
    x[1] = x[0]  # the same minibatch twice
    stream = stream_from(x, stream.y_train, stream.x_eval, stream.y_eval)
    result = solve_limit(config, stream, key=jax.random.key(0))
    assert np.all(np.isfinite(result.f_eval)) and np.all(np.isfinite(result.kernels["grad_train"]))


def test_representation_choice_and_memory_refusal():
    config = load_config(
        None, ["solver.particles=8192", "solver.groups=1", "training.steps=4", "training.batch=4"]
    )
    assert plan_limit(config, dim=8, steps=4, batch=4, eval_size=8).representation == "field"
    long_run = config.replace(solver={"particles": 256}, training={"steps": 400, "batch": 16})
    assert plan_limit(long_run, dim=8, steps=400, batch=16, eval_size=8).representation == "weight"
    standard = config.replace(solver={"backward": "standard"})
    assert plan_limit(standard, dim=8, steps=4, batch=4, eval_size=8).representation == "weight"
    with pytest.raises(ValueError, match="needs the weight-space representation"):
        config.replace(solver={"backward": "standard", "representation": "field"})
    huge = config.replace(solver={"particles": 2**20, "depth_steps": 512})
    with pytest.raises(ValueError, match=r"needs about .* GB.*Reduce solver.groups"):
        plan_limit(huge, dim=8, steps=4, batch=4, eval_size=8)
    # groups multiply the memory: 8 weight-space systems of 8192 particles do not fit in 8 GB
    with pytest.raises(ValueError, match=r"groups x particles .* = 8 x 8192"):
        plan_limit(standard.replace(solver={"groups": 8}), dim=8, steps=4, batch=4, eval_size=8)


@pytest.mark.slow
def test_convergence_rate_in_particles():
    """Nonlinear, trained U and v, B = 2, K = 3: the eval-output error against a 2^16-particle
    reference falls like N^{-1/2} (Monte Carlo). The 1/M rate in depth steps is tested in
    test_limit_vs_finite.py on a problem whose depth bias dominates its Monte Carlo error."""
    config, stream = _nonlinear_problem(2**16, 8, "field")
    reference = _eval_outputs(config, stream, [999])[0]
    sizes = [256, 1024, 4096]
    errors = []
    for n in sizes:
        cfg = config.replace(solver={"particles": n})
        out = _eval_outputs(cfg, stream, range(6))
        errors.append(np.sqrt(np.mean((out - reference) ** 2)))
    fit = fit_loglog(sizes, errors)
    assert -0.65 < fit.slope < -0.35, (fit, errors)

    print(f"particle rate: slope {fit.slope:.3f} +- {fit.slope_stderr:.3f}, errors {errors}")
