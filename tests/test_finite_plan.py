"""The finite network's memory plan: it bounds what XLA measures for one SGD step, and a network
that does not fit in `solver.memory_limit_gb` is refused before any work, in one line that says
what it needs, the limit and what to reduce."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from nfd_sde import load_config, load_stream, train_finite
from nfd_sde.finite import (
    default_chunk,
    make_network,
    mup_multipliers,
    mup_sgd_from,
    network_bytes,
    plan_finite,
    trainable_parameters,
)
from nfd_sde.finite._training import mup_step_record
from nfd_sde.model import loss_of
from tests.test_cli import assert_one_line_error, run

# The example: 64 blocks of 200000^2 weights, about 5e4 GB.
HUGE = ["network.width=200000", "network.depth=64", "training.steps=1", "training.batch=1"]
HUGE += ["data.eval_size=1"]


def _measured_peak(config) -> int:
    """Arguments + outputs + temporaries of one compiled SGD step, from XLA's memory analysis."""
    stream = load_stream(config)
    model = make_network(config, key=jax.random.key(0))
    multipliers = mup_multipliers(config, model)
    eta = jnp.asarray(config.training.eta)
    opt_state = mup_sgd_from(multipliers, eta).init(trainable_parameters(model))
    arrays, static = eqx.partition((model, opt_state, multipliers), eqx.is_array)

    def step(arrays, x, y, eta):
        model, opt_state, multipliers = eqx.combine(arrays, static)
        out = mup_step_record(
            model, opt_state, x, y, multipliers, eta, loss=loss_of(config), layers=(0,)
        )
        return eqx.filter(out, eqx.is_array)

    x, y = jnp.asarray(stream.x_train[0]), jnp.asarray(stream.y_train[0])
    memory = jax.jit(step).lower(arrays, x, y, eta).compile().memory_analysis()
    if memory is None:
        pytest.skip("this backend gives no memory analysis")
    return (
        memory.argument_size_in_bytes
        + memory.output_size_in_bytes
        + memory.temp_size_in_bytes
        - memory.alias_size_in_bytes
    )


@pytest.mark.parametrize(
    "sizes",
    [
        # weights dominate (decoupled offsets, two matrices per block)
        ["network.width=256", "network.depth=8", "network.backward=decoupled",
         "model.block=two_layer", "training.batch=4"],
        # activations dominate (a large batch through a narrow network)
        ["network.width=64", "network.depth=4", "network.backward=standard",
         "training.batch=512"],
    ],
)  # fmt: skip
def test_the_plan_bounds_the_measured_step(sizes):
    """Measured on CPU: the plan is 1.5-2.4 times XLA's peak of one step (the step's buffers
    only; the plan also covers the weights kept across steps). A plan under the measurement, or
    over 3 times it, is a broken estimate."""
    config = load_config(None, [*sizes, "training.steps=1", "data.eval_size=4"])
    plan = plan_finite(config, batch=config.training.batch, eval_size=4)
    measured = _measured_peak(config)
    assert measured <= plan.bytes_needed <= 3 * measured, (measured, plan.bytes_needed)


def test_ensemble_chunks_and_the_plan_share_the_weights_estimate():
    config = load_config(None, ["network.width=1024", "network.depth=32"])
    per_key = network_bytes(config, antithetic=True)
    assert default_chunk(config, antithetic=True) == max(1, 2**29 // per_key)
    assert plan_finite(config, batch=1, eval_size=1, antithetic=True).bytes_needed > per_key


def test_a_network_that_does_not_fit_is_refused_before_any_work(tmp_path, capsys):
    config = load_config(None, HUGE)
    with pytest.raises(ValueError, match="solver.memory_limit_gb"):
        train_finite(config, load_stream(config), key=jax.random.key(0))
    # the limit is solver.memory_limit_gb, "auto" or a number: raising it lets the plan pass
    assert plan_finite(load_config(None, [*HUGE, "solver.memory_limit_gb=1e6"]), batch=1,
                       eval_size=1).gigabytes > 1e4  # fmt: skip
    argv = ["train", *(a for o in HUGE for a in ("--set", o)), "--out", tmp_path / "o"]
    status, _, err = run(argv, capsys)
    assert_one_line_error(
        status, err, "GB per device", "solver.memory_limit_gb=", "64 x 200000^2", "network.width"
    )
    assert not (tmp_path / "o").exists()
