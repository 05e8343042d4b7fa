"""The shared evidence rule (`nfd_sde.experiments.common._evidence`) as compare, demo and audit
apply it: a rate or an optimum from fewer than three resolved sizes never holds, and an interval
that excludes the expected value is said so in words."""

from nfd_sde.experiments.audit._transfer import TransferClaim
from nfd_sde.experiments.audit._verdicts import rate_verdict
from nfd_sde.experiments.common._evidence import FAILS, HOLDS, INCONCLUSIVE, rate_caveats
from nfd_sde.experiments.compare._report import describe_fit
from nfd_sde.experiments.single_runs._demo import row_text


def _fit(sizes, slope, ci95, expected=-1.0):
    return {"sizes": sizes, "values": [1.0] * len(sizes), "slope": slope, "stderr": 0.05,
            "ci95": ci95, "expected": expected, "prefactor": 1.0, "excluded": []}  # fmt: skip


def test_two_sizes_never_hold_and_three_can():
    two, three = _fit([8, 16], -1.0, [-1.1, -0.9]), _fit([8, 16, 32], -1.0, [-1.1, -0.9])
    assert rate_verdict(two, -1.0, "bias")["verdict"] == INCONCLUSIVE
    assert "fewer than 3" in rate_verdict(two, -1.0, "bias")["reason"]
    assert rate_verdict(three, -1.0, "bias")["verdict"] == HOLDS
    assert "fewer than 3" in describe_fit(two, quantity="bias", symbol="n")
    assert "fewer than 3" not in describe_fit(three, quantity="bias", symbol="n")


def test_an_interval_excluding_the_expected_value_is_flagged_in_words():
    # the limit's depth-error slope of the example: L^-0.79 [-0.85, -0.74], expected L^-1
    fit = _fit([2, 4, 8], -0.79, [-0.85, -0.74])
    assert rate_caveats(fit, "L") == ["the interval [-0.85, -0.74] excludes the expected L^-1"]
    assert "excludes the expected L^-1" in describe_fit(fit, quantity="depth error", symbol="L")
    assert rate_verdict(fit, -1.0, "depth error")["verdict"] == FAILS
    assert rate_caveats(_fit([2, 4, 8], -0.95, [-1.1, -0.8]), "L") == []


def _transfer(depths):
    panel = {"c": 0.5, "optimum": [0.0] * len(depths), "spread": 0.0, "spread_ci95": [0.0, 0.0]}
    return {"log2_lrs": [-2.0, -1.0, 0.0, 1.0, 2.0], "depths": list(depths), "panels": [panel]}


def test_transfer_from_two_depths_cannot_hold():
    few = TransferClaim().verdict(_transfer((2, 4)))
    assert few["verdict"] == INCONCLUSIVE and "fewer than 3" in few["reason"]
    assert TransferClaim().verdict(_transfer((2, 4, 8)))["verdict"] == HOLDS


def test_demo_prints_an_unresolved_distance_as_a_bound_never_as_zero():
    row = {"mode": "decoupled", "width": 64, "diverged": False, "seeds": 128, "distance": 0.02,
           "noise_floor": 0.024, "debiased": 0.0, "stderr": 0.01, "low": 0.0, "high": 0.031,
           "resolved": False}  # fmt: skip
    text = row_text(row)
    assert "not resolved, below 3.1 %" in text and " 0 %" not in text
    resolved = row_text(row | {"debiased": 0.05, "low": 0.03, "high": 0.06, "resolved": True})
    assert "5 % [3, 6] from the limit" in resolved
