"""The limit's error bars against truths they can be checked on, cheaply (the default suite).

* `stderr`: independent solves (different keys) of a tiny nonlinear problem spread as much as
  each says it is uncertain, in field and weight space, for the outputs (spread of the groups'
  extrapolated, control-variate values) and for the losses (jackknife over groups).
* Control variates: their estimate is unbiased, on the solver's own statistics (against the
  plain mean on the same particles) and on synthetic statistics with a known mean where fitting
  the coefficient on the particles it corrects is biased by many standard errors.

The discretisation error `syserr` is held against the closed form of spec section 3 in
tests/test_limit_errors.py, the compare statistics in tests/test_compare_stats.py.

Calibration ratio: with R solves, rho = sqrt(sum_e Var_R(value_e) / sum_e mean_R(stderr_e^2))
over the entries e. Honest errors give rho = 1: E stderr^2 = Var(group mean) (the groups are
i.i.d. systems), and solves are i.i.d. The spread's variance estimate has relative s.d.
sqrt(2 / (R - 1)), so rho has s.d. about 1 / sqrt(2 (R - 1)) = 0.10 for R = 48 (no credit taken
for several entries, which are correlated), and mean_R(stderr^2) adds relative s.d.
sqrt(2 / ((G - 1) R)) / 2 = 0.04 (G = 8 groups). The window [0.6, 1.5] is then more than 3.5 s.d.
either side (a false failure below 1e-3, and the seeds are fixed), while an error bar 2 times
too small or too large (rho 2 or 0.5) fails.
"""

import math
import types

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.limit import solve_limit
from nfd_sde.limit._controls import _symmetric_solve, control_solutions, corrected
from nfd_sde.limit._groups import build_groups, run_groups
from nfd_sde.limit._plan import plan_limit
from nfd_sde.limit._step import ControlStatistics

SOLVES = 48
RHO_WINDOW = (0.6, 1.5)


def tiny_config(representation: str, *, levels: int):
    """tanh, U and v trained, K = 2 steps, 2 eval inputs, N = 32 x 8 groups, M = 4."""
    return load_config(
        None,
        [
            "model.activation=tanh",
            "model.dim=4",
            "training.eta=0.8",
            "training.steps=2",
            "training.batch=2",
            "data.eval_size=2",
            "solver.particles=32",
            "solver.groups=8",
            "solver.depth_steps=4",
            f"solver.levels={levels}",
            f"solver.representation={representation}",
            "run.kernel_depths=[1.0]",
        ],
    )


def calibration(values, stderrs) -> float:
    """rho = sqrt(sum_e Var_R(value_e) / sum_e mean_R(stderr_e^2)) (module docstring)."""
    values, stderrs = np.asarray(values, float), np.asarray(stderrs, float)
    spread = np.sum(values.reshape(len(values), -1).var(axis=0, ddof=1))
    stated = np.sum((stderrs.reshape(len(stderrs), -1) ** 2).mean(axis=0))
    return math.sqrt(spread / stated)


# field space extrapolated over two levels (M = 4, 2); weight space on one level, to keep
# the compilation (one per depth grid and representation) to three
@pytest.mark.parametrize(("representation", "levels"), [("field", 2), ("weight", 1)])
def test_stderr_matches_the_spread_of_independent_solves(representation, levels):
    """The outputs after step 0 (f^0 = 0 up to round-off by its control variate, so left out)
    and the eval losses after step 0: calibration ratio within RHO_WINDOW (module docstring)."""
    config = tiny_config(representation, levels=levels)
    stream = load_stream(config)
    outputs, output_errors, losses, loss_errors = [], [], [], []
    for seed in range(SOLVES):
        result = solve_limit(config, stream, key=jax.random.key(seed))
        outputs.append(result.f_eval[1:])
        output_errors.append(result.stderr["f_eval"][1:])
        losses.append(result.loss_eval[1:])
        loss_errors.append(result.stderr["loss_eval"][1:])
    rho_outputs = calibration(outputs, output_errors)
    rho_losses = calibration(losses, loss_errors)
    print(f"{representation}: rho outputs {rho_outputs:.3f}, losses {rho_losses:.3f}")
    assert RHO_WINDOW[0] < rho_outputs < RHO_WINDOW[1], rho_outputs
    assert RHO_WINDOW[0] < rho_losses < RHO_WINDOW[1], rho_losses


def test_control_variates_agree_with_the_plain_mean_on_common_noise():
    """The solver's own groups (field space, M = 4, N = 32, 8 groups, 32 runs): per run, the
    mean over groups of (control-variate f - plain f) on the same particles. Both estimate the
    same expectation, so their difference has mean 0; each entry's z-score over the runs is
    within 4 (a false failure ~6e-5 per entry). The control variates also remove variance: their
    variance over groups is 0.52 of the plain one here (measured), a ratio of variances with
    about 32 x 7 degrees of freedom each, s.d. about 0.05, so it is held below 0.8 (> 5 s.d.)."""
    config = tiny_config("field", levels=1)
    stream = load_stream(config)
    sizes = {"steps": stream.steps, "batch": stream.batch, "eval_size": len(stream.x_eval)}
    plan = plan_limit(config, dim=stream.dim, **sizes)
    differences, plain_var, cv_var = [], 0.0, 0.0
    for seed in range(32):
        solvers, states = build_groups(
            config, stream, key=jax.random.key(seed), plan=plan, refinement=1
        )
        run = run_groups(solvers, states, stream, dtype=config.run.dtype, progress=False)
        plain, controlled = run["f_eval"][:, 1:], run["f_eval_cv"][:, 1:]
        differences.append((controlled - plain).mean(axis=0).ravel())
        plain_var += float(np.sum(plain.var(axis=0, ddof=1)))
        cv_var += float(np.sum(controlled.var(axis=0, ddof=1)))
    d = np.asarray(differences)
    z = d.mean(axis=0) / (d.std(axis=0, ddof=1) / math.sqrt(len(d)))
    assert np.all(np.abs(z) < 4), z
    assert cv_var < 0.8 * plain_var, (cv_var, plain_var)


def cross_fitted(stats, *, ridge: float = 1e-10):
    """The cross-fitted outputs (groups, steps, pairs, outputs) of `stats` (leading axes
    (groups, steps)), as a solve forms them: the controls' solutions, then each step's
    correction."""
    solutions = control_solutions(stats.mean_x, stats.xx, ridge=ridge)
    return corrected(solutions, stats.mean_y, stats.xy)


def synthetic_statistics(groups: int, particles: int, *, seed: int):
    """Per group, `particles` i.i.d. z ~ N(0, I_2); controls x = (z, z^2 - 1) (mean 0 exactly),
    value y = sum_j exp(z_j) (mean 2 e^{1/2}, a nonlinear function of the controls). Returns
    the `ControlStatistics` (one step, one output, one pair) and the plain means."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((groups, particles, 2))
    x = np.concatenate([z, z**2 - 1], axis=-1)
    y = np.exp(z).sum(axis=-1, keepdims=True)
    mean_x, mean_y = x.mean(axis=1), y.mean(axis=1)
    xc, yc = x - mean_x[:, None], y - mean_y[:, None]
    stats = ControlStatistics(
        mean_x=mean_x[:, None, :, None],
        mean_y=mean_y[:, None, :, None],
        xx=np.einsum("gir,gis->grs", xc, xc)[:, None, None],
        xy=np.einsum("gir,giq->grq", xc, yc)[:, None, None],
    )
    return stats, mean_y[:, 0]


def test_cross_fitted_control_variates_are_unbiased_where_in_sample_fits_are_not():
    """8192 groups of N = 16 particles, 4 controls: the cross-fitted estimate's mean over groups
    is within 4 standard errors of the known mean 2 e^{1/2}, and of the plain mean's on the same
    particles (paired). A coefficient fitted on the group's own particles is biased by O(p / N)
    (p = 4 controls): measured 11 standard errors of the mean here (3.7 at 512 groups), so that
    mistake fails the first check."""
    stats, plain = synthetic_statistics(8192, 16, seed=0)
    controlled = cross_fitted(stats)[:, 0, 0, 0]
    truth = 2 * math.exp(0.5)
    se = controlled.std(ddof=1) / math.sqrt(len(controlled))
    assert abs(controlled.mean() - truth) < 4 * se, (controlled.mean(), truth, se)
    d = controlled - plain
    assert abs(d.mean()) < 4 * d.std(ddof=1) / math.sqrt(len(d)), d.mean()
    # and they are worth having: the variance over groups falls to about a sixth
    assert controlled.var() < 0.3 * plain.var(), (controlled.var(), plain.var())


def test_cross_fitting_solves_for_the_defined_coefficients():
    """`control_solutions` and `corrected` apply beta_g = (XX - XX_g)^{-1} (XY - XY_g), the regression fitted on the
    other groups, through one solve per output ((A^{-1} mean_x)^T XY, A symmetric); written out
    from the definition here (float64: they agree to round-off, measured ~1e-15 relative)."""
    rng = np.random.default_rng(5)
    groups, steps, outputs, controls, pairs = 3, 2, 2, 5, 4
    features = rng.standard_normal((groups, steps, outputs, controls, 3 * controls))
    stats = types.SimpleNamespace(
        mean_x=rng.standard_normal((groups, steps, controls, outputs)),
        mean_y=rng.standard_normal((groups, steps, pairs, outputs)),
        xx=np.einsum("gkcrn,gkcsn->gkcrs", features, features),
        xy=rng.standard_normal((groups, steps, outputs, controls, pairs)),
    )
    got = cross_fitted(stats, ridge=0.0)
    for g in range(groups):
        others = [h for h in range(groups) if h != g]
        beta = np.linalg.solve(stats.xx[others].sum(0), stats.xy[others].sum(0))  # (k, c, R, Q)
        expected = stats.mean_y[g] - np.einsum("krc,kcrq->kqc", stats.mean_x[g], beta)
        np.testing.assert_allclose(got[g], expected, rtol=1e-10, atol=1e-12)


def test_the_symmetric_solve_falls_back_where_the_factor_fails():
    indefinite = np.array([[[2.0, 1.0], [1.0, -1.0]], [[4.0, 1.0], [1.0, 3.0]]])
    vectors = np.array([[1.0, 2.0], [3.0, -1.0]])
    expected = np.linalg.solve(indefinite, vectors[..., None])[..., 0]
    np.testing.assert_allclose(_symmetric_solve(indefinite, vectors), expected, rtol=1e-12)
    positive = indefinite[1:]  # Cholesky path
    np.testing.assert_allclose(_symmetric_solve(positive, vectors[1:]), expected[1:], rtol=1e-12)
