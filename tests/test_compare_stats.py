"""The statistics of `compare` on problems with known answers (synthetic ensembles, NumPy only).

* Ensembles f_s = f_limit + (c / n) u + (sigma / sqrt(n)) xi_s: the bias fit recovers slope -1 and
  the fluctuation fit -1/2, within their 95% intervals, through the same `summarise` and
  `fit_rates` that `compare` uses; against a limit 5% off, the bias levels off and its fit
  excludes -1.
* `mean_distance`'s 95% interval covers the true distance about 95% of the time, and calls pure
  noise resolved rarely; antithetic pairs estimate one network's spread without bias.
* `fit_loglog` with known standard errors: exact on exact power laws, finite intervals from two
  points, widened by the Birge ratio when points scatter beyond their errors.
* The adaptive seed rule asks for more seeds only while they help.
"""

import math

import numpy as np
import pytest

import nfd_sde.experiments.compare._compare as compare
from nfd_sde.experiments import DeepestDepth, SuccessiveDepths
from nfd_sde.experiments.compare._fits import fit_rates
from nfd_sde.experiments.compare._summary import summarise
from solvers import (
    antithetic_spread_samples,
    fit_loglog,
    intercept_weights,
    mean_distance,
    plain_spread_samples,
    spread,
)

STEPS, EVAL = 4, 5  # f_eval of (K + 1) x P x 1 = 25 entries


def members(f_eval: np.ndarray) -> dict[str, np.ndarray]:
    """A stored ensemble (`_compare_runs`'s layout) with outputs `f_eval` and empty kernels."""
    count, steps = len(f_eval), f_eval.shape[1] - 1
    kernel = np.zeros((steps + 1, 1, EVAL, EVAL))
    arrays = {
        "f_eval": f_eval,
        "f_train": np.zeros((count, steps, 2, 1)),
        "loss_eval": np.zeros((count, steps + 1)),
        "loss_train": np.zeros((count, steps)),
        "kernel_count": np.asarray(count),
        "kernel_layers": np.asarray([0]),
    }
    for name in ("feature_eval", "feature_train", "grad_train"):
        arrays[f"kernel_sum_{name}"] = kernel
        arrays[f"kernel_sumsq_{name}"] = kernel
        arrays[name] = np.zeros((count, *kernel.shape))  # the limit keeps them per member
    return arrays


def synthetic(limit_scale: float, *, seed: int = 0):
    """Widths 16..256, seeds 100 n per width (bias 5x its noise floor at every width)."""
    rng = np.random.default_rng(seed)
    shape = (STEPS + 1, EVAL, 1)
    f_limit = rng.standard_normal(shape)
    u = rng.standard_normal(shape)
    u /= np.linalg.norm(u)
    c, sigma = 2.0, 4.0  # bias c / n, one network's spread sigma / sqrt(n); |f_limit| ~ 5
    widths, depth = [16, 32, 64, 128, 256], 4
    ensembles = {}
    for n in widths:
        noise = sigma / math.sqrt(n) * rng.standard_normal((100 * n, *shape)) / math.sqrt(25)
        for mode in ("decoupled", "standard"):
            ensembles[(mode, n, depth)] = members(f_limit + c / n * u + noise)
    limit = limit_scale * f_limit + 0.002 * rng.standard_normal((64, *shape))
    grid = {"widths": widths, "depths": [depth], "modes": ["decoupled", "standard"]}
    grid |= {"antithetic": False, "limit_depth_steps": [depth]}
    scale = float(np.linalg.norm(f_limit))
    summary = summarise(
        grid, {depth: members(limit)}, ensembles, scale=scale, reference=SuccessiveDepths()
    )
    return summary, fit_rates(grid, summary)


def test_bias_and_fluctuation_fits_recover_their_rates():
    summary, fits = synthetic(1.0)
    bias, fluctuation = fits["bias_decoupled"][0], fits["fluctuation_decoupled"][0]
    assert len(bias["sizes"]) == 5 and not bias["excluded"]
    low, high = bias["ci95"]
    assert low < -1.0 < high and high - low < 0.3, bias
    low, high = fluctuation["ci95"]
    assert low < -0.5 < high and high - low < 0.1, fluctuation
    # one network's spread is sigma / sqrt(n) = 4 / 4 at n = 16, by construction
    cell = summary["fluctuation"]["decoupled"][0][0]
    expected = 1.0 / summary["scale"]
    assert abs(cell["value"] - expected) < 4 * cell["stderr"], (cell, expected)
    # the gap of identical modes is pure noise: never resolved
    assert not any(row[0]["resolved"] for row in summary["gap"])


def test_a_limit_five_percent_off_breaks_the_bias_rate():
    """The bias then levels off at 5% of |f_limit|: the fitted slope's interval excludes -1."""
    _, fits = synthetic(1.05)
    bias = fits["bias_decoupled"][0]
    assert bias["ci95"][1] < -1.0 or bias["ci95"][0] > -1.0, bias
    assert bias["slope"] > -0.5, bias


def test_mean_distance_interval_covers_the_true_distance():
    """400 repetitions, |E d| = 0.3 in 40 entries of noise sd 2 over 400 samples (resolved in
    about half): coverage 0.95 has binomial s.d. 0.011 over 400; the window is 4 s.d. Pure
    noise is called resolved with probability <= 0.025 (one-sided) by construction."""
    rng = np.random.default_rng(1)
    shift = np.zeros(40)
    shift[0] = 0.3
    covered, false_alarms = 0, 0
    for _ in range(400):
        x = shift + 2 * rng.standard_normal((400, 40))
        d = mean_distance([(1.0, x[:200]), (-1.0, x[200:] - shift)])
        covered += d.low <= 0.3 <= d.high
        null = mean_distance([(1.0, 2 * rng.standard_normal((400, 40)))])
        false_alarms += null.resolved
    assert 0.95 - 0.044 < covered / 400 < 0.95 + 0.044, covered
    assert false_alarms / 400 < 0.025 + 0.031, false_alarms  # + 4 binomial s.d.


def test_antithetic_pairs_estimate_one_networks_spread():
    """a = e + o, b = e - o with Var e = 1, Var o = 9 per entry (10 entries): tr Var f = 100."""
    rng = np.random.default_rng(2)
    even = rng.standard_normal((4000, 10))
    odd = 3 * rng.standard_normal((4000, 10))
    q = antithetic_spread_samples(even + odd, even - odd)
    estimate = spread(q)
    assert abs(estimate.value - 10.0) < 4 * estimate.stderr, estimate
    plain = spread(plain_spread_samples(even + odd))
    assert abs(plain.value - 10.0) < 4 * plain.stderr, plain


def test_known_variance_fits():
    sizes = np.array([8, 16, 32, 64])
    values = 2.0 * sizes**-1.0
    fit = fit_loglog(sizes, values, stderrs=0.1 * values)
    assert fit.slope == pytest.approx(-1.0, abs=1e-12) and fit.reduced_chi2 < 1e-20
    # with known errors the slope's s.e. is 0.1 / sqrt(sum (log n - mean)^2)
    spread_ = np.sum((np.log(sizes) - np.log(sizes).mean()) ** 2)
    assert fit.slope_stderr == pytest.approx(0.1 / math.sqrt(spread_), rel=1e-9)
    two = fit_loglog(sizes[:2], values[:2], stderrs=0.1 * values[:2])
    assert math.isfinite(two.slope_stderr) and two.ci95[0] < -1.0 < two.ci95[1]
    wiggle = values * np.array([1.3, 0.7, 1.3, 0.7])  # scatter far beyond the 1% errors
    wide = fit_loglog(sizes, wiggle, stderrs=0.01 * wiggle)
    assert wide.reduced_chi2 > 100
    assert wide.slope_stderr == pytest.approx(
        0.01 / math.sqrt(spread_) * math.sqrt(wide.reduced_chi2), rel=1e-9
    )


def test_intercept_weights_extrapolate_straight_lines_exactly():
    x = np.array([1 / 8, 1 / 16, 1 / 32])
    weights = intercept_weights(x, [4.0, 1.0, 2.0])
    assert weights @ (0.3 + 5 * x) == pytest.approx(0.3)
    assert intercept_weights(x[:2], [1.0, 1.0]) == pytest.approx([-1.0, 2.0])


def test_adaptive_rounds_ask_for_seeds_only_while_they_help():
    rng = np.random.default_rng(3)
    shape = (STEPS + 1, EVAL, 1)
    limit = {4: members(0.001 * rng.standard_normal((8, *shape)))}
    scale = {"value": 1.0}

    def rule(seeds=None, max_seeds=1000, chunk=1):
        return compare._Rounds(limit, {4: 4}, scale, False, seeds, max_seeds, 0.15, chunk)

    def cells(bias, noise, count):
        f = bias + noise * rng.standard_normal((count, *shape))
        return {("decoupled", 4): members(f), ("standard", 4): members(f)}

    assert rule()(cells(1.0, 0.1, 64)) is None  # resolved to ~1%: done
    assert rule()(cells(0.0, 1.0, 64)) == 128  # nothing resolved: at most twice as many
    assert rule(max_seeds=100)(cells(0.0, 1.0, 64)) == 100
    assert rule(chunk=100)(cells(0.0, 1.0, 64)) == 200  # whole chunks: padding is not wasted
    assert rule(seeds=64)(cells(0.0, 1.0, 64)) is None  # fixed seeds: one round
    wanted = rule()(cells(0.2, 2.0, 64))  # resolved, relative error ~0.3: about 4x, capped
    assert wanted == 128


@pytest.mark.parametrize("reference", [SuccessiveDepths(), DeepestDepth()])
def test_depth_errors_of_paired_samples(reference):
    """f_s(L) = f_inf + (c / L) u + xi_s, the same noise xi_s at every depth (common random
    numbers): the depth error is c |1/L - 1/L_ref| to within its small error, with a floor far
    below the noise of one depth's mean; successive differences on a doubling grid fit slope -1
    exactly."""
    rng = np.random.default_rng(4)
    shape = (STEPS + 1, EVAL, 1)
    u = rng.standard_normal(shape)
    u /= np.linalg.norm(u)
    noise = rng.standard_normal((256, *shape))
    depths, c = [2, 4, 8, 16], 0.5
    ensembles = {
        (mode, 16, d): members(c / d * u + noise + 0.001 * rng.standard_normal(noise.shape))
        for d in depths
        for mode in ("decoupled", "standard")
    }
    limits = {d: members(c / d * u + 0.001 * rng.standard_normal((8, *shape))) for d in depths}
    grid = {"widths": [16], "depths": depths, "modes": ["decoupled", "standard"]}
    grid |= {"antithetic": False, "limit_depth_steps": depths}
    summary = summarise(grid, limits, ensembles, scale=1.0, reference=reference)
    row = summary["depth"]["decoupled"][0]
    assert row[-1] is None
    for d, cell in zip(depths, row):
        if cell is None:
            continue
        target = 2 * d if reference.name == "successive" else depths[-1]
        expected = c * (1 / d - 1 / target)
        assert abs(cell["debiased"] - expected) < 4 * cell["stderr"], (d, cell, expected)
        assert cell["floor"] < 0.01 * math.sqrt(25 / 256)  # paired: the common noise cancels
    fits = fit_rates(grid, summary)
    if reference.name == "successive":
        fit = fits["depth_decoupled"][0]
        assert fit["ci95"][0] < -1.0 < fit["ci95"][1] and fit["stderr"] < 0.01, fit
        assert fits["depth_limit"]["ci95"][0] < -1.0 < fits["depth_limit"]["ci95"][1]


def test_outputs_at_initialisation_only():
    """K = 0 with antithetic pairs: every pair's mean output is exactly 0, as is the limit's, so
    the bias is 0 and unresolved, one network's spread is positive, and the adaptive rule asks
    for no more seeds (they cannot change anything)."""
    rng = np.random.default_rng(5)
    f0 = rng.standard_normal((64, 1, EVAL, 1))
    interleaved = np.stack([f0, -f0], axis=1).reshape(128, 1, EVAL, 1)
    ensembles = {(m, 8, 2): members(interleaved) for m in ("decoupled", "standard")}
    limit = np.stack([f0[:4], -f0[:4]], axis=1).reshape(8, 1, EVAL, 1)
    grid = {"widths": [8], "depths": [2], "modes": ["decoupled", "standard"]}
    grid |= {"antithetic": True, "limit_depth_steps": [2]}
    limits = {2: members(limit)}
    summary = summarise(grid, limits, ensembles, scale=1.0, reference=SuccessiveDepths())
    bias = summary["bias"]["decoupled"][0][0]
    assert bias["raw"] == 0 and not bias["resolved"]
    cell = summary["fluctuation"]["decoupled"][0][0]
    assert abs(cell["value"] - math.sqrt(EVAL)) < 4 * cell["stderr"], cell
    assert summary["divergence"]["finite"][0]["diverged"] == 0
    rounds = compare._Rounds(limits, {2: 2}, {"value": 1.0}, True, None, 1000, 0.15)
    cells = {("decoupled", 2): members(interleaved), ("standard", 2): members(interleaved)}
    assert rounds(cells) is None


def test_debiased_distance_removes_its_noise_floor():
    """Two independent groups of 200 samples, 40 entries of s.d. 2: Sigma = (4 / 200 + 4 / 200) I,
    tr Sigma = 1.6, tr Sigma^2 = 0.064, over 200 repetitions.

    * floor^2 estimates tr Sigma without bias (its mean within 4 s.e. of 1.6);
    * true distance 0: debiased^2 = max(raw^2 - floor^2, 0) with raw^2 - floor^2 of mean 0 and
      variance 2 tr Sigma^2 + Var(floor^2) (0.128 + 0.0003), so E debiased^2 =
      sqrt(variance / (2 pi)) = 0.143 (within 4 s.e.); left undebiased it would be 1.6;
    * true distance 1.5: E debiased^2 = 2.25 (clipping at 0 is 3.2 s.d. away, a bias < 1e-3),
      within 4 s.e.; the stated s.e. of debiased^2 (2 debiased stderr) matches the spread of
      raw^2 - floor^2 over the repetitions: the ratio of s.d.s has s.d. 1 / sqrt(2 x 199) = 0.05,
      window [0.8, 1.25] (4 s.d.); the variance without its signal term 4 (E d)' Sigma (E d)
      (0.128 instead of 0.49) gives 0.51."""
    rng = np.random.default_rng(6)
    entries, count, reps = 40, 200, 200
    shift = np.zeros(entries)
    shift[0] = 1.5
    null, signal = [], []
    for _ in range(reps):
        x, y = 2 * rng.standard_normal((2, count, entries))
        null.append(mean_distance([(1.0, x), (-1.0, y)]))
        signal.append(mean_distance([(1.0, x + shift), (-1.0, y)]))

    def mean_and_se(values):
        values = np.asarray(values, float)
        return values.mean(), values.std(ddof=1) / math.sqrt(len(values))

    floor2, se = mean_and_se([d.floor**2 for d in null])
    assert abs(floor2 - 1.6) < 4 * se, (floor2, se)
    null_debiased2, se = mean_and_se([d.debiased**2 for d in null])
    # Var(floor^2): two groups x 40 entries, each variance estimate (4 / 200)^2 2 / (S - 1)
    floor_variance = 2 * entries * (4 / count) ** 2 * 2 / (count - 1)
    expected = math.sqrt((2 * 0.064 + floor_variance) / (2 * math.pi))
    assert abs(null_debiased2 - expected) < 4 * se, (null_debiased2, expected, se)
    debiased2, se = mean_and_se([d.debiased**2 for d in signal])
    assert abs(debiased2 - 2.25) < 4 * se, (debiased2, se)
    spread2 = np.std([d.raw**2 - d.floor**2 for d in signal], ddof=1)
    stated2 = math.sqrt(np.mean([(2 * d.debiased * d.stderr) ** 2 for d in signal]))
    assert 0.8 < stated2 / spread2 < 1.25, (stated2, spread2)


def test_fluctuation_and_its_stderr_on_known_spreads():
    """Ensembles of 64 networks whose outputs (25 entries) have sqrt(tr Var f) = 4 / sqrt(n), n =
    16, 64, 256, 200 repetitions each: the mean fluctuation is within 4 s.e. of 4 / sqrt(n) (the
    square root's bias is Var(q mean) / 8 = 2e-4 relative, negligible); its stated s.e. matches
    its spread over the repetitions within [0.8, 1.25] (4 s.d. of a 200-sample s.d.); and the
    fit over n recovers the slope -1/2 within its 95% interval."""
    rng = np.random.default_rng(7)
    widths, means, stderrs = [16, 64, 256], [], []
    for n in widths:
        sigma = 4 / math.sqrt(n)
        cells = [
            spread(plain_spread_samples(sigma / 5 * rng.standard_normal((64, 25))))
            for _ in range(200)
        ]
        values = np.array([c.value for c in cells])
        se = values.std(ddof=1) / math.sqrt(len(values))
        assert abs(values.mean() - sigma) < 4 * se, (n, values.mean(), sigma, se)
        stated = math.sqrt(np.mean([c.stderr**2 for c in cells]))
        assert 0.8 < stated / values.std(ddof=1) < 1.25, (n, stated, values.std(ddof=1))
        means.append(values.mean())
        stderrs.append(se)
    fit = fit_loglog(widths, means, stderrs=stderrs)
    assert fit.ci95[0] < -0.5 < fit.ci95[1], fit
