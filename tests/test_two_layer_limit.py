"""Two-layer residual blocks in the limit (docs/two_layer.md, "The limit"): the closed forms of
spec section 5, the exact identity with the finite network, field against weight space, finite
networks converging to the limit, and the refusal of exponents without an infinite-depth limit.

Tolerances: Monte Carlo over independent particle groups (4 of their standard errors, a false
failure ~6e-5), float64 round-off for the identity.
"""

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.finite import make_network, train_finite
from nfd_sde.limit import solve_limit
from nfd_sde.validation import (
    first_step_change,
    limit_from_network,
    two_layer_first_step_change,
)
from solvers import fit_loglog
from tests._limit_helpers import assert_limit_is_the_network, first_step_gain, first_step_problem


@pytest.mark.parametrize(
    "representation, backward, particles",
    [("field", "decoupled", 4096), ("weight", "decoupled", 512), ("weight", "standard", 512)],
)
@pytest.mark.parametrize("exponent", [0.0, 0.5])
def test_first_step_closed_forms(representation, backward, particles, exponent):
    """f^1 = eta y ((1 + 1/M)^M - 1) decoupled (every c), eta y (1 + 1/M)^(M-1) (1 + M^c)
    standard, at M = 16: the first layer moves the output only through real backprop."""
    steps = 16
    config, stream = first_step_problem(
        particles=particles,
        depth_steps=steps,
        representation=representation,
        backward=backward,
        block="two_layer",
    )
    config = config.replace(training={"first_layer_exponent": exponent})
    gain, se = first_step_gain(config, stream, 8)
    target = two_layer_first_step_change(backward, eta=1.0, depth=steps, exponent=exponent)
    assert abs(gain - target) < 4 * se, (gain, target, se)


@pytest.mark.slow
def test_extrapolated_decoupled_first_step_is_e_minus_one():
    """The decoupled two-layer limit at c = 0, extrapolated over M = 16, 8, 4, is eta y (e - 1),
    like the one-layer block's."""
    config, stream = first_step_problem(
        particles=4096,
        depth_steps=16,
        representation="field",
        backward="decoupled",
        block="two_layer",
        solver=["solver.groups=8", "solver.levels=3"],
    )
    result = solve_limit(config, stream, key=jax.random.key(0))
    eta = config.training.eta
    sigma = np.hypot(result.stderr["f_eval"][1, 0, 0], result.syserr["f_eval"][1, 0, 0]) / eta
    value = result.f_eval[1, 0, 0] / eta
    assert abs(value - first_step_change("decoupled", eta=1.0)) < 4 * sigma, (value, sigma)


def _problem(width, depth, *, backward, representation, exponent=0.0, extra=()):
    return load_config(
        None,
        [
            "model.block=two_layer",
            f"training.first_layer_exponent={exponent}",
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
            f"solver.particles={width}",
            f"solver.depth_steps={depth}",
            f"solver.representation={representation}",
            f"solver.backward={backward}",
            "solver.groups=1",
            "solver.levels=1",
            "solver.control_variates=false",
            *extra,
        ],
    )


@pytest.mark.parametrize("backward", ["decoupled", "standard"])
@pytest.mark.parametrize("exponent", [0.0, 0.5])
def test_weight_space_with_network_weights_is_the_two_layer_network(backward, exponent):
    """At M = L and N = n, the weight-space limit fed the network's W_{l,1}(0), W_{l,2}(0) (and
    its backward weights) is the two-layer network computed another way: float64 round-off."""
    config = _problem(40, 5, backward=backward, representation="weight", exponent=exponent)
    config = config.replace(run={"dtype": "float64"})
    stream = load_stream(config)
    key = jax.random.key(3)
    finite = train_finite(config, stream, key=key)
    with jax.enable_x64(True):
        network = make_network(config, key=key)
        solver, state = limit_from_network(config, stream, network)
        limit = solve_limit(config, stream, key=jax.random.key(0), solver=solver, state=state)
    assert_limit_is_the_network(limit, finite, rtol=1e-9, moved=1e-3)


def test_field_and_weight_space_agree_on_two_layer_training():
    """ReLU two-layer blocks, U and v trained, K = 3: the two exact representations give the
    same eval outputs within 4 combined standard errors (8 groups each), and training moved the
    outputs far beyond that error."""
    extra = ("model.activation=relu", "solver.groups=8", "solver.control_variates=true")
    field = _problem(1024, 8, backward="decoupled", representation="field", extra=extra)
    weight = _problem(512, 8, backward="decoupled", representation="weight", extra=extra)
    stream = load_stream(field)
    a = solve_limit(field, stream, key=jax.random.key(0))
    b = solve_limit(weight, stream, key=jax.random.key(1))
    se = np.hypot(a.stderr["f_eval"], b.stderr["f_eval"])[1:]
    z = np.abs(a.f_eval - b.f_eval)[1:] / se
    assert z.max() < 4.0, z
    assert np.abs(a.f_eval[-1] - a.f_eval[0]).max() > 10 * se.max()


@pytest.mark.slow
def test_decoupled_two_layer_networks_approach_the_limit_as_width_grows():
    """Per-seed RMS distance of finite decoupled two-layer networks (L = 4) to the field-space
    limit at M = 4 (their exact n -> infinity limit) falls like n^-1/2: the window (-0.75, -0.35)
    allows the limit's own error and the 6-seed spread of the fit."""
    config = _problem(64, 4, backward="decoupled", representation="field")
    limit_config = config.replace(solver={"particles": 8192, "groups": 8, "control_variates": True})
    stream = load_stream(config)
    reference = solve_limit(limit_config, stream, key=jax.random.key(100)).f_eval
    widths = [32, 128, 512]
    errors = []
    for width in widths:
        cfg = config.replace(network={"width": width})
        runs = [train_finite(cfg, stream, key=jax.random.key(s)).f_eval for s in range(6)]
        errors.append(float(np.sqrt(np.mean((np.stack(runs) - reference) ** 2))))
    fit = fit_loglog(widths, errors)
    assert -0.75 < fit.slope < -0.35, (fit, errors)


def test_exponents_without_an_infinite_depth_limit_are_refused_for_extrapolation():
    """c > 0: the first layer's update enters the backward pass coherently and grows like L^c,
    so there is no infinite-depth limit to extrapolate to; one level (the depth-M network's
    n -> infinity limit) is still solved."""
    config = _problem(64, 8, backward="decoupled", representation="field", exponent=0.5)
    stream = load_stream(config)
    with pytest.raises(ValueError, match="no infinite-depth limit"):
        solve_limit(config.replace(solver={"levels": 2}), stream, key=jax.random.key(0))
    result = solve_limit(config, stream, key=jax.random.key(0))
    assert result.producer["target"] == "depth 8"


@pytest.mark.slow
def test_collapse_in_the_limit_and_finite_networks_approach_it():
    """The first layer's learned change along depth: in the limit at M = L it falls like
    L^-1/2 at c = 0 (slope within 0.1 of -1/2 over L = 4, 8, 16, whose prefactors still bend the
    line by up to ~0.05) and is flat at c = 1/2; finite decoupled networks approach it as n
    grows. The finite layer rms is biased upwards (the rms of a noisy change): measured 5-18%
    above the limit at n = 512 and 10-37% at n = 32 (at L = 16 the excess falls 4x from n = 32
    to 512, the n^-1/2 of the fluctuation), with the limit's own Monte Carlo error ~5% per layer
    (4 groups) and 3 finite seeds. So: summed over the rows, n = 512 is closer than n = 32, and
    every n = 512 row lies within 25% of the limit."""
    from nfd_sde import load_config, load_stream
    from nfd_sde.experiments import run_collapse_limit

    config = load_config(None, ["model.dim=8", "training.batch=8", "data.eval_size=8"])
    data = run_collapse_limit(
        config,
        load_stream(config),
        depths=(4, 8, 16),
        exponents=(0.0, 0.5),
        widths=(32, 512),
        seeds=3,
        steps=1,
        particles=1024,
        groups=4,
        key=jax.random.key(0),
    )
    fits = {fit["c"]: fit["slope"] for fit in data["fits"]}
    assert abs(fits[0.0] + 0.5) < 0.1 and abs(fits[0.5]) < 0.1, fits
    near = [
        abs(row["finite_rms"]["512"] - row["limit_rms"]) / row["limit_rms"] for row in data["rows"]
    ]
    far = [
        abs(row["finite_rms"]["32"] - row["limit_rms"]) / row["limit_rms"] for row in data["rows"]
    ]
    assert sum(near) < sum(far), (near, far)
    assert max(near) < 0.25, near
