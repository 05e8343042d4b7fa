"""The named mutations and the tests meant to catch each one.

Each mutation is one exact snippet of one file and its replacement; the runner refuses (reports
"stale") a snippet that no longer occurs exactly once. Test lists run in order with `-x`, so
put the cheapest decisive test first. Groups:

* field space only (the noise representation of spec section 4 that weight space does not share);
* shared by both representations (block increments, scales, profiles, the SGD step of the limit);
* the limit made a few percent wrong everywhere;
* the transfer sweep's divergence rule;
* the error estimates (standard errors, the discretisation error, control variates, the compare
  statistics): each is held against a truth by a default-suite test.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    find: str
    replace: str
    tests: tuple[str, ...]
    description: str


REPLAY = "tests/test_field_space_replay.py"
PINNED = (
    "tests/test_streamed.py::"
    "test_a_history_in_the_devices_host_memory_is_streamed_without_callbacks[one_sided]"
)
FIELD_SPACE = "tests/test_limit_field_space.py"
CONDITIONING = "tests/test_backward_conditioning.py"
FIELD_VS_WEIGHT = "tests/test_field_vs_weight.py"
IDENTITY = "tests/test_limit_vs_finite.py::test_weight_space_with_network_weights_is_the_network"
IDENTITY_OPTIONS = (
    "tests/test_limit_vs_finite.py::test_weight_space_matches_the_network_across_options"
)
FIRST_STEP = "tests/test_limit_solver.py::test_first_step_decoupled_is_eta_e_minus_one"
TRANSFER = "tests/test_transfer_divergence.py"
TWO_SIDED = "tests/test_two_sided.py"
TWO_SIDED_MATRIX = f"{TWO_SIDED}::test_two_sided_product_is_the_conditioned_matrix"
TWO_SIDED_IDENTITY = (
    f"{TWO_SIDED}::test_two_sided_field_space_fed_the_network_weights_is_the_network"
)
TWO_SIDED_FIRST_STEP = f"{TWO_SIDED}::test_standard_first_step_matches_the_closed_form"
TWO_SIDED_WEIGHT = f"{TWO_SIDED}::test_two_sided_field_space_agrees_with_standard_weight_space"
TWO_SIDED_CURRENT = (
    f"{TWO_SIDED}::test_backward_products_are_conditioned_on_the_steps_own_forward_products"
)
STDERR_FIELD = (
    "tests/test_error_bars.py::test_stderr_matches_the_spread_of_independent_solves[field-2]"
)
STDERR_WEIGHT = (
    "tests/test_error_bars.py::test_stderr_matches_the_spread_of_independent_solves[weight-1]"
)
SYSERR = (
    "tests/test_limit_errors.py::test_syserr_bounds_the_true_discretisation_error_within_a_factor"
)
CONTROLS = (
    "tests/test_error_bars.py::"
    "test_cross_fitted_control_variates_are_unbiased_where_in_sample_fits_are_not"
)
CONTROLS_SOLVER = (
    "tests/test_error_bars.py::test_control_variates_agree_with_the_plain_mean_on_common_noise"
)
DISTANCE = "tests/test_compare_stats.py::test_debiased_distance_removes_its_noise_floor"
FLUCTUATION = "tests/test_compare_stats.py::test_fluctuation_and_its_stderr_on_known_spreads"

# The tests that compare field space with something other than the code itself, cheapest first.
FIELD_TESTS = (REPLAY, FIELD_SPACE, CONDITIONING, FIELD_VS_WEIGHT)
# Tests that do not read the field-space code (closed forms in weight space, the network
# identity): what catches an error both representations share, besides the field tests.
SHARED_TESTS = (IDENTITY, FIELD_SPACE, FIRST_STEP, REPLAY)

CATALOGUE = (
    # ------------------------------------------------------------------ field space only
    Mutation(
        "field-noise-variance-x1.05",
        "solvers/_gaussian_products.py",
        "return self.stored_white[m] @ rows.T + self.new_white[m] @ block.T",
        "return (self.stored_white[m] @ rows.T + self.new_white[m] @ block.T) * 1.05**0.5",
        (FIELD_SPACE, FIELD_VS_WEIGHT),
        "every field-space product's variance 5% too large",
    ),
    Mutation(
        "backward-noise-unconditioned",
        "solvers/_field_space.py",
        'inputs, field = history[conditioning[w][side]], noise[f"{w}.{direction}"]',
        'inputs, field = history[conditioning[w][side]] * (side == 0), noise[f"{w}.{direction}"]',
        (CONDITIONING, FIELD_SPACE, FIELD_VS_WEIGHT),
        "backward noise drawn without conditioning on the stored history",
    ),
    Mutation(
        "forward-noise-unconditioned",
        "solvers/_field_space.py",
        'inputs, field = history[conditioning[w][side]], noise[f"{w}.{direction}"]',
        'inputs, field = history[conditioning[w][side]] * (side == 1), noise[f"{w}.{direction}"]',
        (FIELD_SPACE, FIELD_VS_WEIGHT),
        "forward noise drawn without conditioning on the stored history",
    ),
    Mutation(
        "new-pairs-conditionally-independent",
        "solvers/_gaussian_products.py",
        "            particle_gram(inputs, inputs),\n",
        "            jnp.diag(jnp.diag(particle_gram(inputs, inputs))),\n",
        (FIELD_SPACE, FIELD_VS_WEIGHT),
        "a step's new pairs (minibatch and eval inputs) independent of each other given the "
        "history",
    ),
    Mutation(
        "stored-white-of-the-eval-pairs",
        "nfd_sde/limit/_step.py",
        "else {w: a[:, :, :b] for w, a in stored_forward.items()},",
        "else {w: a[:, :, -b:] for w, a in stored_forward.items()},",
        (FIELD_SPACE, FIELD_VS_WEIGHT),
        "the history stores the last pairs' increments (eval inputs) instead of the minibatch's",
    ),
    Mutation(
        "factor-solve-upper-triangular",
        "solvers/_conditional_gaussian.py",
        "return jsl.solve_triangular(lower, rhs, lower=True)",
        "return jsl.solve_triangular(_transpose(lower), rhs, lower=False)",
        (FIELD_SPACE, FIELD_VS_WEIGHT),
        "conditional rows solved with the transposed factor (L^T instead of L)",
    ),
    Mutation(
        "schur-complement-sign",
        "solvers/_conditional_gaussian.py",
        "joint - rows @ _transpose(rows)",
        "joint + rows @ _transpose(rows)",
        (FIELD_SPACE, FIELD_VS_WEIGHT),
        "the new pairs' own variance is joint + rows rows^T instead of the Schur complement",
    ),
    # ------------------------------------------------------ shared by both representations
    Mutation(
        "forward-drift-sign",
        "nfd_sde/model/_one_layer.py",
        'drift = -drift_rate * ctx.updates.forward("W", m, a)',
        'drift = drift_rate * ctx.updates.forward("W", m, a)',
        SHARED_TESTS,
        "the forward learning drift with the wrong sign",
    ),
    Mutation(
        "backward-drift-sign",
        "nfd_sde/model/_one_layer.py",
        'drift = drift_rate * multiplier * ctx.updates.backward("W", m, g)',
        'drift = -drift_rate * multiplier * ctx.updates.backward("W", m, g)',
        SHARED_TESTS,
        "the backward learning drift with the wrong sign",
    ),
    Mutation(
        "limit-noise-scale-dt",
        "nfd_sde/model/_one_layer.py",
        'noise = ctx.coefficients.beta[m] * signed_root(dt) * ctx.forward["W"](m, a)',
        'noise = ctx.coefficients.beta[m] * dt * ctx.forward["W"](m, a)',
        SHARED_TESTS,
        "forward noise scaled by dt instead of sqrt(dt) (a dropped 1/sqrt(L) in the limit)",
    ),
    Mutation(
        "finite-branch-dropped-sqrt-L",
        "nfd_sde/model/_scales.py",
        "return config.model.beta_profile(layer_times(depth)) / math.sqrt(depth)",
        "return config.model.beta_profile(layer_times(depth)) / depth**0.5 * depth**0.05",
        (IDENTITY,),
        "the finite network's branch multiplier off by L^0.05",
    ),
    Mutation(
        "backward-multiplier-at-m+1",
        "nfd_sde/model/_one_layer.py",
        "multiplier = ctx.phi.derivative(forward[m])",
        "multiplier = ctx.phi.derivative(forward[m + 1])",
        (IDENTITY, REPLAY),
        "phi'(H_{m+1}) instead of phi'(H_m) in the backward step (index placement)",
    ),
    Mutation(
        "stored-grads-at-m",
        "nfd_sde/model/_one_layer.py",
        '"grads": backward[1:]',
        '"grads": backward[:-1]',
        SHARED_TESTS,
        "the history stores G_m instead of G_{m+1} (index placement)",
    ),
    Mutation(
        "profiles-read-at-t_m+1",
        "nfd_sde/model/_scales.py",
        "    t = DepthGrid(steps).step_times\n",
        "    t = DepthGrid(steps).times[1:]\n",
        (FIELD_SPACE, IDENTITY_OPTIONS),
        "the limit reads beta(t) and eta_lr(t) at the end of each step",
    ),
    Mutation(
        "readin-update-sign",
        "nfd_sde/limit/_step.py",
        "readin=state.readin\n        - solver.readin_rate",
        "readin=state.readin\n        + solver.readin_rate",
        SHARED_TESTS,
        "the limit's U update with the wrong sign",
    ),
    Mutation(
        "backward-noise-x1.05",
        "nfd_sde/model/_one_layer.py",
        'noise = ctx.coefficients.beta[m] * multiplier * ctx.backward["W"](m, g)',
        'noise = 1.05 * ctx.coefficients.beta[m] * multiplier * ctx.backward["W"](m, g)',
        SHARED_TESTS,
        "backward noise 5% too large in both representations",
    ),
    Mutation(
        "mse-derivative-sign",
        "nfd_sde/model/_losses.py",
        "        return f - y\n",
        "        return y - f\n",
        (FIRST_STEP, IDENTITY, FIELD_SPACE),
        "chi = y - f: shared by the finite network and the limit (and the linear reference)",
    ),
    Mutation(
        "weight-space-matrix-scale",
        "solvers/_gaussian_products.py",
        "return product / jnp.sqrt(inputs.shape[0]).astype(inputs.dtype)",
        "return product / jnp.sqrt(inputs.shape[0] - 1.0).astype(inputs.dtype)",
        (FIELD_VS_WEIGHT, IDENTITY),
        "weight-space products divided by sqrt(N - 1) (variance N / (N - 1), 3% at N = 32)",
    ),
    # --------------------------------------------------- the limit a few percent wrong
    Mutation(
        "limit-outputs-x1.05",
        "nfd_sde/limit/_step.py",
        "return particle_gram(feats, state.readout) / solver.gamma0, feats",
        "return 1.05 * particle_gram(feats, state.readout) / solver.gamma0, feats",
        SHARED_TESTS,
        "every limit output 5% too large",
    ),
    Mutation(
        "limit-forward-drift-x1.1",
        "nfd_sde/model/_one_layer.py",
        'drift = -drift_rate * ctx.updates.forward("W", m, a)',
        'drift = -1.1 * drift_rate * ctx.updates.forward("W", m, a)',
        SHARED_TESTS,
        "the forward learning drift 10% too strong",
    ),
    Mutation(
        "limit-readout-rate-x1.2",
        "nfd_sde/limit/_step.py",
        "readout=state.readout - solver.readout_rate",
        "readout=state.readout - 1.2 * solver.readout_rate",
        SHARED_TESTS,
        "the limit's readout learning rate 20% too large",
    ),
    # ------------------------------------------------------------------------ transfer
    Mutation(
        "transfer-ignores-eval-loss",
        "nfd_sde/experiments/two_layer/_transfer_runs.py",
        "max(final_train, final_eval) > factor * initial",
        "final_train > factor * initial",
        (TRANSFER,),
        "divergence judged on the final train loss only",
    ),
    Mutation(
        "transfer-reference-first-minibatch",
        "nfd_sde/experiments/two_layer/_transfer_runs.py",
        "initial = float(curves.loss_eval[0])",
        "initial = float(curves.loss_train[0])",
        (TRANSFER,),
        "divergence measured against the first minibatch loss instead of the initial eval loss",
    ),
    # ------------------------------------------------- two-sided field space (standard)
    Mutation(
        "two-sided-coupling-dropped",
        "solvers/_two_sided.py",
        "reuse = other.inputs @ other.solve(particle_gram(other.values, projected))",
        "reuse = 0.0 * other.inputs @ other.solve(particle_gram(other.values, projected))",
        (TWO_SIDED_MATRIX, TWO_SIDED_FIRST_STEP),
        "the reuse-coupling term B K_B^-1 <D, P_A a> left out of every two-sided product",
    ),
    Mutation(
        "two-sided-noise-not-projected",
        "solvers/_two_sided.py",
        "fresh = other.project_out(fresh)",
        "fresh = fresh",
        (TWO_SIDED_MATRIX, TWO_SIDED_IDENTITY),
        "the fresh noise not projected off the other side's stored inputs (P_B left out)",
    ),
    Mutation(
        "two-sided-transposed-conditioning",
        "solvers/_two_sided.py",
        'transpose=direction == "backward",',
        'transpose=direction == "forward",',
        (TWO_SIDED_IDENTITY,),
        "the backward products drawn from W instead of W^T (and the forward ones from W^T)",
    ),
    Mutation(
        "two-sided-wrong-projection",
        "solvers/_two_sided.py",
        "projected = x - same.inputs @ alpha",
        "projected = x",
        (TWO_SIDED_MATRIX, TWO_SIDED_FIRST_STEP),
        "the coupling read off the raw input instead of its part off the stored inputs (P_A a)",
    ),
    Mutation(
        "two-sided-step-pairs-ignored",
        "solvers/_two_sided.py",
        "if self.current is not None and self.coupling:",
        "if False:",
        (TWO_SIDED_CURRENT,),
        "the backward sweep not conditioned on the step's own forward products",
    ),
    # ----------------------------------------------------------------- error estimates
    Mutation(
        "stderr-over-3",
        "solvers/_statistics.py",
        "return mean, values.std(axis=0, ddof=1) / math.sqrt(groups)",
        "return mean, values.std(axis=0, ddof=1) / (3 * math.sqrt(groups))",
        (STDERR_FIELD, STDERR_WEIGHT),
        "every Monte Carlo standard error over groups 3 times too small",
    ),
    Mutation(
        "jackknife-over-3",
        "solvers/_statistics.py",
        "return np.sqrt((groups - 1) / groups * np.sum(spread**2, axis=0))",
        "return np.sqrt((groups - 1) / groups * np.sum(spread**2, axis=0)) / 3",
        (STDERR_FIELD, STDERR_WEIGHT),
        "the losses' jackknife standard error 3 times too small",
    ),
    Mutation(
        "syserr-over-10",
        "solvers/_extrapolation.py",
        "return estimate, np.abs(estimate - fewer)",
        "return estimate, np.abs(estimate - fewer) / 10",
        (SYSERR,),
        "the discretisation error estimate 10 times too small",
    ),
    Mutation(
        "syserr-x4",
        "solvers/_extrapolation.py",
        "return estimate, np.abs(estimate - fewer)",
        "return estimate, 4 * np.abs(estimate - fewer)",
        (SYSERR,),
        "the discretisation error estimate 4 times too large",
    ),
    Mutation(
        "control-variates-fitted-in-sample",
        "nfd_sde/limit/_controls.py",
        "others = xx_total - xx[g]",
        "others = xx[g]",
        (CONTROLS, CONTROLS_SOLVER),
        "each group's control-variate coefficient fitted on its own particles' controls (not "
        "cross-fitted)",
    ),
    Mutation(
        "control-variates-covariance-in-sample",
        "nfd_sde/limit/_controls.py",
        "others = xy.sum(axis=0)[None] - xy",
        "others = xy",
        (CONTROLS, CONTROLS_SOLVER),
        "each group's control-variate coefficient fitted on its own particles' outputs (not "
        "cross-fitted)",
    ),
    Mutation(
        "control-feature-not-mean-zero",
        "nfd_sde/limit/_step.py",
        "v_features = jnp.stack([v, v * v - 1.0], axis=1)",
        "v_features = jnp.stack([v, v * v], axis=1)",
        (CONTROLS_SOLVER,),
        "a control feature V^2 h of mean E[h], not 0: the control-variate estimate is biased",
    ),
    Mutation(
        "distance-floor-not-subtracted",
        "solvers/_ensemble_stats.py",
        "debiased2 = raw2 - floor2",
        "debiased2 = raw2",
        (DISTANCE,),
        "the debiased distance keeps its noise floor",
    ),
    Mutation(
        "distance-variance-noise-only",
        "solvers/_ensemble_stats.py",
        "variance = max(4 * sigma_dd - 2 * trace_sq, 2 * trace_sq)",
        "variance = 2 * trace_sq",
        (DISTANCE,),
        "the debiased distance's variance without its signal term 4 (E d)' Sigma (E d)",
    ),
    Mutation(
        "fluctuation-stderr-over-3",
        "solvers/_ensemble_stats.py",
        "return Spread(value / scale, se2 / (2 * value) / scale, int(q.size))",
        "return Spread(value / scale, se2 / (2 * value) / scale / 3, int(q.size))",
        (FLUCTUATION,),
        "the fluctuation's standard error 3 times too small",
    ),
    Mutation(
        "pinned-history-groups-read-as-one",
        "solvers/_pinned_particles.py",
        "block = lax.dynamic_slice(array, (zero, m, lo, zero), shape)[:, 0]",
        "block = lax.dynamic_slice(array, (zero, m, lo, zero), shape)[:1, 0].repeat(axis_size, 0)",
        (PINNED,),
        "every group of a solve streamed through memory kinds reads group 0's history",
    ),
)
