"""Backward noise must be conditioned on the stored history: a two-step closed form.

The problem (`nfd_sde.validation.second_step_gradient_moment`): linear phi and readout, U and v
frozen, step 0 on x_0, step 1 on x_1 with <x_0, x_1> = 0. Step 1's gradient kernel at depth t is
chi_1^2 (1 + 1/M)^{M-m} plus a term eta^2 chi_0^2 chi_1^2 (...) that exists only through the
backward learning drift, whose coefficient Gam^{01} = E[G^0 G^1] is r^{M-m-1} times larger when
the backward noise of step 1 is conditioned on step 0's than when it is drawn afresh. At
eta = 1, t = 0 the two values differ by ~30% (closed form), so the field-space solver's gradient
kernel tells them apart at > 20 standard errors.

Monte Carlo: the ensemble of tests/test_limit_field_space.py (same config shape, so the same
compilation: S = 64 seeds of N = 2^13). The closed form is evaluated at each seed's own
chi_0 = f^0 - y_0 and chi_1 (their particle noise is then not part of the comparison); the kernel
at t = 0 and 1/2 is divided by the kernel at t = 1, chi_1^2 E[V^2]. Tolerance: the relative shift
within 4 standard errors (t_63 tail 2e-4); the standard error (~0.5%) puts the unconditioned
system's value > 20 standard errors away.
"""

import math

import numpy as np
import pytest

from nfd_sde.validation import linear_reference, second_step_gradient_moment
from tests._limit_helpers import finite_ensemble, limit_ensemble, stream_from
from tests.test_limit_field_space import SEEDS, STEPS, linear_config

ETA = 1.0
Y = (1.0, -0.8, 0.5)


def conditioning_problem(*extra):
    """Three steps on 2e_1, 2e_2, 2e_3 (|x|^2/d = 1, orthogonal), each as a minibatch of two
    copies; frozen U and v; eval inputs x_0 and (x_0 + x_1)/sqrt(2)."""
    config = linear_config("training.eta_U=0", "training.eta_v=0", f"training.eta={ETA}", *extra)
    e = 2.0 * np.eye(4)
    x_train = np.stack([[e[k], e[k]] for k in range(3)])
    y_train = np.array([[[y], [y]] for y in Y])
    x_eval = np.stack([e[0], (e[0] + e[1]) / math.sqrt(2)])
    return config, stream_from(x_train, y_train, x_eval, np.zeros((2, 1)))


def depth_times(config):
    return np.asarray(config.run.kernel_depths)


def test_closed_form_is_the_exact_reference():
    """Both variants of the closed form against the isonormal-field reference (round-off), and
    the continuum form as M grows."""
    config, stream = conditioning_problem("solver.depth_steps=4")
    t = depth_times(config)
    for conditioned in (True, False):
        reference = linear_reference(config, stream, conditioned_backward=conditioned)
        chi = reference.f_train[:2, 0, 0] - np.array(Y[:2])
        np.testing.assert_allclose(chi, -np.array(Y[:2]), atol=1e-12)  # f^0 = f^1(x_1) = 0
        exact = second_step_gradient_moment(
            t, eta=ETA, chi0=chi[0], chi1=chi[1], depth=4, conditioned_backward=conditioned
        )
        np.testing.assert_allclose(reference.kernels["grad_train"][1, :, 0, 0], exact, rtol=1e-12)
        fine = second_step_gradient_moment(
            t, eta=ETA, chi0=-1, chi1=0.6, depth=4096, conditioned_backward=conditioned
        )
        continuum = second_step_gradient_moment(
            t, eta=ETA, chi0=-1, chi1=0.6, conditioned_backward=conditioned
        )
        np.testing.assert_allclose(fine, continuum, rtol=1e-3)  # O(1/M)


def test_field_space_conditions_backward_noise_on_history():
    config, stream = conditioning_problem()
    run = limit_ensemble(config, stream, SEEDS)
    t = depth_times(config)
    chi = run["f_train"][:, :2, 0, 0] - np.array(Y[:2])  # (S, 2)
    # G^1_1 = chi_1 V, so the kernel at t = 1 is chi_1^2 times the particles' E[V^2]: dividing
    # by it removes both noises (the closed form's value at t = 1 is chi_1^2 exactly)
    kernel = run["grad_train"][:, 1, :-1, 0, 0] / run["grad_train"][:, 1, -1:, 0, 0]

    def closed_form(conditioned):
        return np.stack(
            [
                second_step_gradient_moment(
                    t[:-1], eta=ETA, chi0=c0, chi1=c1, depth=STEPS, conditioned_backward=conditioned
                )
                / c1**2
                for c0, c1 in chi
            ]
        )

    def shift(target):
        per_seed = np.sum((kernel - target) * target, 1) / np.sum(target * target, 1)
        return per_seed.mean(), per_seed.std(ddof=1) / math.sqrt(len(per_seed))

    delta, se = shift(closed_form(True))
    assert abs(delta) < 4 * se and se < 0.01, (delta, se)
    wrong, _ = shift(closed_form(False))
    assert abs(wrong) > 20 * se, (wrong, se)


@pytest.mark.slow
def test_closed_form_against_weight_space_and_finite_networks():
    """The same closed form against the weight-space solver and decoupled finite networks at
    N = n = 1024, M = L = 8 (32 seeds each; the O(1/n) bias is ~0.1%, below the ~2% seed
    error), with the same normalisation by the kernel at t = 1. A few minutes."""
    config, stream = conditioning_problem(
        "solver.representation=weight",
        "solver.particles=1024",
        "network.width=1024",
        f"network.depth={STEPS}",
        "network.backward=decoupled",
    )
    t = depth_times(config)[:-1]
    runs = {
        "weight": limit_ensemble(config, stream, range(32)),
        "finite": finite_ensemble(config, stream, range(32)),
    }
    for name, run in runs.items():
        chi = run["f_train"][:, :2, 0, 0] - np.array(Y[:2])
        kernel = run["grad_train"][:, 1, :-1, 0, 0] / run["grad_train"][:, 1, -1:, 0, 0]
        for conditioned in (True, False):
            target = np.stack(
                [
                    second_step_gradient_moment(
                        t, eta=ETA, chi0=c0, chi1=c1, depth=STEPS, conditioned_backward=conditioned
                    )
                    / c1**2
                    for c0, c1 in chi
                ]
            )
            ratio = kernel / target
            mean, se = ratio.mean(0), ratio.std(0, ddof=1) / math.sqrt(len(ratio))
            print(
                f"{name}, conditioned={conditioned}: kernel / closed form at t = {t}: "
                f"{mean} +- {se}"
            )
            if conditioned:
                assert np.all(np.abs(mean - 1.0) < 4 * se + 2e-3), (name, mean, se)
            else:
                assert np.any(np.abs(mean - 1.0) > 10 * se), (name, mean, se)
