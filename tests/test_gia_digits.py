"""`run_gia_digits`: standard against decoupled backprop on the digits, depth-muP and plain muP."""

import json
import math

import jax
import numpy as np
import pytest

from nfd_sde._cli import main
from nfd_sde.experiments import SCALINGS, digits_protocol, fit_gap, paired_gap, run_gia_digits
from nfd_sde.model import load_config, load_stream
from solvers import t95

# Tiny sizes: the point is the structure and the pairing, not the numbers.
STEPS, SEEDS, WIDTH, DEPTHS = 3, 3, 8, (1, 2)


@pytest.fixture(scope="module")
def tiny():
    config = digits_protocol(load_config(), steps=STEPS, batch=4, eval_size=8)
    stream = load_stream(config)
    data = run_gia_digits(
        config, stream, depths=DEPTHS, width=WIDTH, seeds=SEEDS, key=jax.random.key(0)
    )
    return data


def _run(data, scaling, depth, backward):
    (run,) = [
        r
        for r in data["runs"]
        if (r["scaling"], r["depth"], r["backward"]) == (scaling, depth, backward)
    ]
    return np.asarray(run["loss_eval"])


def test_structure(tiny):
    assert len(tiny["runs"]) == len(SCALINGS) * len(DEPTHS) * 2
    assert len(tiny["gaps"]) == len(SCALINGS) * len(DEPTHS)
    assert len(tiny["fits"]) == len(SCALINGS) * 4
    for run in tiny["runs"]:
        assert np.shape(run["loss_eval"]) == (SEEDS, STEPS + 1)
        assert np.shape(run["loss_train"]) == (SEEDS, STEPS)
        assert run["diverged"] == 0 and run["first_bad_step"] == [None] * SEEDS
    for gap in tiny["gaps"]:
        assert gap["seeds_used"] == SEEDS
        for name in ("final", "final_abs", "curve", "curve_abs"):
            assert math.isfinite(gap[name]["mean"]) and gap[name]["stderr"] >= 0
    for fit in tiny["fits"]:  # two depths: the slope's interval comes from the errors alone
        assert fit["slope"] is not None and math.isfinite(fit["slope"])
        assert fit["ci95"][0] < fit["slope"] < fit["ci95"][1]
    json.dumps(tiny["protocol"])


def test_modes_share_forward_weights(tiny):
    """Member s of both modes has the same forward weights: identical step-0 losses (the same
    float32 forward pass), and training then separates them."""
    for scaling in SCALINGS:
        for depth in DEPTHS:
            standard = _run(tiny, scaling.name, depth, "standard")
            decoupled = _run(tiny, scaling.name, depth, "decoupled")
            np.testing.assert_array_equal(standard[:, 0], decoupled[:, 0])
            assert np.max(np.abs(standard[:, 1:] - decoupled[:, 1:])) > 0
    for gap in tiny["gaps"]:
        assert gap["step0_max_abs"] == 0.0
    # distinct seeds are distinct networks
    assert len(set(_run(tiny, "depth_mup", 2, "standard")[:, 0].tolist())) == SEEDS


def test_plain_mup_differs_from_depth_mup_only_beyond_one_block(tiny):
    """beta sqrt(L) / sqrt(L) = beta at L = 1: the scalings coincide exactly there, and differ
    (already at initialisation) at L = 2."""
    for backward in ("standard", "decoupled"):
        np.testing.assert_array_equal(
            _run(tiny, "depth_mup", 1, backward), _run(tiny, "plain_mup", 1, backward)
        )
        depth_mup, plain = (
            _run(tiny, "depth_mup", 2, backward),
            _run(tiny, "plain_mup", 2, backward),
        )
        assert np.all(depth_mup[:, 0] != plain[:, 0])


def test_paired_gap_interval_covers():
    """The gap's 95% interval (Student t, sample standard error) covers the true mean gap in
    95% of 4000 synthetic ensembles of 5 seeds; the binomial standard error of the coverage is
    sqrt(0.95 * 0.05 / 4000) = 0.0034, so a window of +-0.015 is over 4 of them. An error bar
    that forgot the 1/sqrt(seeds) or used the normal quantile at 4 degrees of freedom (coverage
    0.88) fails."""
    rng = np.random.default_rng(0)
    seeds, steps, truth = 5, 4, 0.3
    covered = []
    for _ in range(4000):
        decoupled = rng.normal(size=(seeds, steps + 1))
        standard = decoupled + truth + rng.normal(scale=0.5, size=(seeds, 1))
        standard[:, 0] = decoupled[:, 0]
        gap = paired_gap(standard, decoupled)
        low, high = gap["final"]["ci95"]
        covered.append(low <= truth <= high)
        assert gap["step0_max_abs"] == 0.0
    assert abs(np.mean(covered) - 0.95) < 0.015
    assert t95(seeds - 1) > 2.7  # the Student quantile, not 1.96


def _gaps(means, stderrs, depths=(2, 4, 8, 16)):
    return [
        {"scaling": "s", "depth": d, "curve": {"mean": m, "stderr": e}}
        for d, m, e in zip(depths, means, stderrs)
    ]


def test_fit_gap_reads_the_rate_and_the_verdict():
    """Exact power laws give their slope; the verdict follows the interval's side of 0, and a
    change of sign (no power law) gives none."""
    depths = np.array([2, 4, 8, 16])
    shrinking = fit_gap(_gaps(-0.3 * depths**-1.0, 0.01 * depths**-1.0), "s", "curve")
    np.testing.assert_allclose(shrinking["slope"], -1.0, rtol=1e-9)  # exact data: round-off
    assert shrinking["merge"] is True and shrinking["signs"] == [-1] * 4
    growing = fit_gap(_gaps(0.1 * depths**0.5, 0.001 * depths**0.5), "s", "curve")
    assert growing["merge"] is False
    flat = fit_gap(_gaps([0.1, 0.1, 0.1, 0.1], [0.01] * 4), "s", "curve")
    assert flat["merge"] is None and flat["ci95"][0] < 0 < flat["ci95"][1]
    flipped = fit_gap(_gaps(0.3 * depths**-1.0 * [1, 1, -1, -1], [0.001] * 4), "s", "curve")
    assert flipped["merge"] is None and flipped["signs"] == [1, 1, -1, -1]


def test_paired_gap_leaves_out_diverged_seeds():
    standard = np.array([[1.0, 0.5, 0.4], [1.0, np.nan, np.nan], [2.0, 1.5, 1.0]])
    decoupled = np.array([[1.0, 0.7, 0.6], [1.0, 0.9, 0.8], [2.0, 1.2, 1.2]])
    gap = paired_gap(standard, decoupled)
    assert gap["seeds_used"] == 2
    np.testing.assert_allclose(gap["final"]["mean"], (-0.2 + -0.2) / 2)
    np.testing.assert_allclose(gap["curve_abs"]["mean"], ((0.2 + 0.2) / 2 + (0.3 + 0.2) / 2) / 2)


def test_command_writes_json_and_figure(tmp_path, tiny):
    """The command line on the fixture's sizes (so its compilations are the fixture's): the same
    curves, written to JSON with the config, and the figure."""
    out = tmp_path / "gia"
    sizes = ["--depths", ",".join(map(str, DEPTHS)), "--width", str(WIDTH), "--seeds", str(SEEDS)]
    argv = ["gia-digits", "--out", str(out), *sizes, "--steps", str(STEPS), "--batch", "4"]
    assert main([*argv, "--eval", "8"]) == 0
    data = json.loads((out / "gia_digits.json").read_text())
    assert (
        data["protocol"]["width"] == WIDTH and data["config"]["training"]["loss"] == "cross_entropy"
    )
    np.testing.assert_allclose(
        np.asarray(data["runs"][-1]["loss_eval"], float), np.asarray(tiny["runs"][-1]["loss_eval"])
    )
    assert (out / "gia_digits.png").stat().st_size > 0
