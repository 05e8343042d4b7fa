"""Field space against weight space (tight enough that a 2% error fails) and against decoupled
finite networks, after training.

At the same particle number N the two representations are the same particle system in law, not
two approximations of the limit with different O(1/N) biases: conditioned on the particles'
features, the weight-space product Omega_m a / sqrt(N) of a new input with a fixed Gaussian
matrix is Gaussian with the particles' kernel as covariance, conditioned on the stored products
by exactly the regression on the stored inputs that field space's growing Cholesky factor
performs; independent rows of Omega_m are independent particles. (Eval pairs are conditioned on
each other and the history in both; field space does not condition later pairs on them, which
changes no single step's law.) So their seed means may be compared at any N with no bias term,
and small N is cheapest: weight space costs ~N^2 per seed, while the noise per seed only falls
like N^{-1/2}.

Problem: gelu, 3-class cross-entropy, non-constant beta(t) and eta_lr(t), K = 2 steps of B = 2,
P = 2 eval inputs, M = 4, N = 32. Seeds s = 0..S-1 are run in both representations; a seed draws
the same initial U and v in both (the solver's state key), so per-seed differences are less
noisy than the two means (paired design).

Power calculation. For each quantity Q (the output change f^K - f^0, the eval and training
feature kernels after the first step, the gradient kernels), delta_s is the relative shift of
seed s (`tests/_statistics.paired_shift`). Measured per-seed standard deviations of the paired
delta_s at N = 32 (2048 seeds): output change 0.81, feature_eval 0.39, feature_train 0.44,
gradient 0.37 (they scale like N^{-1/2}, so the total cost at fixed error scales like N).
With S = 16384 seeds the standard errors are 0.63%, 0.30%, 0.34%, 0.29%: a 2% error of a kernel
is a 6-7 sigma effect, detected (|delta| > 3 sigma) with probability > 0.9999; a 2% error of the
output change is 3.2 sigma (detected with probability ~0.6; 4 sigma needs S = 26000, or the
control variates of the error-bar machinery). A correct solver passes each of the four
|delta| < 3 SE checks with probability 0.9973, and the per-entry check (|z| < 4.5 over ~100
entries) with probability 0.999. The test also asserts the standard errors it reached, so it
cannot quietly lose its power. Cost: ~18 s of runs after two compilations.
"""

import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from tests._limit_helpers import finite_ensemble, limit_ensemble
from tests._statistics import paired_entry_z, paired_shift, relative_shift

SEEDS = range(16384)


def _config(representation):
    return load_config(
        None,
        [
            "model.activation=gelu",
            "model.dim=4",
            "model.outputs=3",
            "model.beta_profile=[[0, 1.25], [1, 0.75]]",
            "model.lr_profile=[[0, 0.5], [1, 1.5]]",
            "training.loss=cross_entropy",
            "training.eta=1.0",
            "training.steps=2",
            "training.batch=2",
            "data.eval_size=2",
            "solver.particles=32",
            "solver.depth_steps=4",
            "network.width=32",
            "network.depth=4",
            "network.backward=decoupled",
            f"solver.representation={representation}",
            "run.kernel_depths=[0.0, 0.5, 1.0]",
        ],
    )


@pytest.fixture(scope="module")
def runs():
    stream = load_stream(_config("field"))
    out = {rep: limit_ensemble(_config(rep), stream, SEEDS) for rep in ("field", "weight")}
    out["finite"] = finite_ensemble(_config("field"), stream, SEEDS)
    return out


def _quantities(run):
    return {
        "output_change": run["f_eval"][:, -1] - run["f_eval"][:, 0],
        "feature_eval": run["feature_eval"][:, 1:],
        "feature_train": run["feature_train"][:, 1:],
        "grad_train": run["grad_train"],
    }


@pytest.mark.parametrize(
    "quantity, max_se",
    [
        ("output_change", 0.008),
        ("feature_eval", 0.005),
        ("feature_train", 0.005),
        ("grad_train", 0.005),
    ],
)
def test_field_and_weight_space_are_the_same_particle_system(runs, quantity, max_se):
    field = _quantities(runs["field"])[quantity]
    weight = _quantities(runs["weight"])[quantity]
    delta, se = paired_shift(field, weight)
    assert se < max_se, (quantity, se)  # the power promised above
    assert abs(delta) < 3 * se, (quantity, delta, se)
    z = np.abs(paired_entry_z(field, weight))
    assert z.max() < 4.5, (quantity, z.max())


def test_the_comparison_is_not_vacuous(runs):
    """Training moved the outputs and kernels far beyond the errors above."""
    weight = runs["weight"]
    change = np.abs(weight["f_eval"][:, -1] - weight["f_eval"][:, 0]).mean(0)
    assert change.max() > 0.2
    moved = np.abs(weight["feature_eval"][:, -1] - weight["feature_eval"][:, 0]).mean(0)
    assert moved.max() > 0.1 * np.abs(weight["feature_eval"][:, 0]).mean(0).max()


@pytest.mark.parametrize(
    "quantity", ["output_change", "feature_eval", "feature_train", "grad_train"]
)
def test_decoupled_finite_networks_after_training(runs, quantity):
    """Decoupled finite networks of width n = 32 and depth L = 4 are the same law as the
    particle system at N = 32, M = 4 (weight space with the network's weights is the network,
    tests/test_limit_vs_finite.py). Their initial weights come from other draws than the
    solver's, so the comparison is unpaired: standard error sqrt(2) x per-seed spread / sqrt(S)
    (~0.55% for kernels, ~0.9% for the output change), tolerance 4 of it."""
    field = _quantities(runs["field"])[quantity]
    finite = _quantities(runs["finite"])[quantity]
    delta_field, se_field = relative_shift(field, finite.mean(0))
    delta_finite, se_finite = relative_shift(finite, finite.mean(0))
    delta, se = delta_field - delta_finite, np.hypot(se_field, se_finite)
    assert se < 0.012 and abs(delta) < 4 * se, (quantity, delta, se)
    flat = [a.reshape(len(a), -1) for a in (field, finite)]
    se_entries = np.sqrt(sum(a.var(0, ddof=1) / len(a) for a in flat))
    z = np.abs(flat[0].mean(0) - flat[1].mean(0)) / np.maximum(se_entries, 1e-12)
    assert z.max() < 4.5, (quantity, z.max())
