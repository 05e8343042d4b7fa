"""A block's weight groups (`AbstractBlock.weight_groups`) are its one declaration of its hidden
matrices: the network's arrays and draws, the muP multipliers, the optimiser's groups, the limit's
gains and the memory plans all follow it. Test-local blocks change the declaration (an exponent on
the output layer, a third matrix) and nothing else, and everything downstream must follow."""

import equinox as eqx
import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.finite import make_network, mup_multipliers, network_bytes, train_finite
from nfd_sde.limit import plan_limit, solve_limit
from nfd_sde.model import (
    BLOCKS,
    OneLayer,
    TwoLayer,
    WeightGroup,
    block_of,
    limit_coefficients,
    lr_exponent,
    lr_multipliers,
)
from nfd_sde.validation import limit_from_network
from solvers import DepthGrid

WIDTH, DEPTH, EXPONENT = 8, 4, 0.5


def _config(block: str, backward: str = "decoupled"):
    return load_config(
        None,
        [
            f"model.block={block}",
            f"network.width={WIDTH}",
            f"network.depth={DEPTH}",
            f"network.backward={backward}",
            f"training.first_layer_exponent={EXPONENT}",
            "model.lr_profile=[[0, 1], [1, 2]]",
        ],
    )


class _CoherentOutput(TwoLayer):
    """Two-layer blocks whose output layer W2, not W1, learns at eta L^c."""

    weight_groups = (
        WeightGroup("W1", "hidden_first", ("features", "q")),
        WeightGroup("W2", "hidden", ("phi_u", "grads"), exponent="first_layer_exponent"),
    )


class _CoherentOneLayer(OneLayer):
    """One-layer blocks whose W learns at eta L^c."""

    weight_groups = (
        WeightGroup("W", "hidden", ("features", "grads"), exponent="first_layer_exponent"),
    )


class _ThreeMatrices(TwoLayer):
    """A third matrix declared before the two-layer block's two (its branch ignores it)."""

    weight_groups = (
        WeightGroup("W0", "hidden_zero", ("features", "q")),
        *TwoLayer.weight_groups,
    )


@pytest.mark.parametrize("block", sorted(BLOCKS))
def test_the_declared_groups_drive_the_multipliers_and_the_optimiser(block):
    """lr_multipliers' keys are U, the declared parameter names, v; each group's multiplier is
    the per-layer muP multiplier times L^c with c read from its declaration; the network holds
    exactly those arrays and the optimiser multiplies each by its own group's multiplier."""
    with jax.enable_x64(True):
        config = _config(block)
        groups = block_of(config).weight_groups
        multipliers = lr_multipliers(config, WIDTH, DEPTH)
        names = [g.parameter for g in groups]
        assert list(multipliers) == ["readin", *names, "readout"]
        train = config.training
        per_layer = train.eta_W * WIDTH * config.model.lr_profile(DepthGrid(DEPTH).step_times)
        for group in groups:
            c = EXPONENT if group.exponent == "first_layer_exponent" else 0.0
            assert lr_exponent(config, group) == c
            expected = per_layer[:, None, None] * DEPTH**c  # gamma0 = 1
            # the same float64 operations as `lr_multipliers`: equal to round-off
            np.testing.assert_allclose(multipliers[group.parameter], expected, rtol=1e-15)

        model = make_network(config, key=jax.random.key(0))
        assert sorted(model.hidden) == sorted(model.backward_offsets) == sorted(names)
        assert list(model.parameter_groups()) == list(multipliers)
        # the optimiser's multipliers, by name, after a round trip through a pytree (which
        # reorders dictionaries): each group carries its own multiplier
        tree = jax.tree.map(lambda a: a, mup_multipliers(config, model))
        for name, value in tree.parameter_groups().items():
            np.testing.assert_array_equal(value, multipliers[name])
        spec = model.trainable_filter()
        assert all(spec.parameter_groups().values())
        assert sum(jax.tree.leaves(spec)) == len(multipliers)  # offsets and scales are not

        gains = limit_coefficients(config, steps=8, batch=2, dtype=np.float64).gains
        assert list(gains) == [g.limit for g in groups]
        for group in groups:
            np.testing.assert_allclose(gains[group.limit], 8.0 ** lr_exponent(config, group))


def test_an_exponent_declared_on_the_output_layer_reaches_every_reader(monkeypatch):
    """Only the declaration moves the exponent from W1 to W2: the multipliers, the limit's gains
    and the refusal of depth extrapolation follow it."""
    config = _config("two_layer")
    before = lr_multipliers(config, WIDTH, DEPTH)
    monkeypatch.setitem(BLOCKS, "two_layer", _CoherentOutput)
    after = lr_multipliers(config, WIDTH, DEPTH)
    # L^c = 4^0.5 = 2 exactly, so the factors are exact in float32
    np.testing.assert_array_equal(after["hidden"], before["hidden"] * DEPTH**EXPONENT)
    np.testing.assert_array_equal(after["hidden_first"] * DEPTH**EXPONENT, before["hidden_first"])
    gains = limit_coefficients(config, steps=DEPTH, batch=2, dtype=np.float32).gains
    assert gains["W2"] == DEPTH**EXPONENT
    assert gains["W1"] == 1.0
    monkeypatch.setitem(BLOCKS, "two_layer", TwoLayer)
    refused = config.replace(training={"first_layer_exponent": 0.0})
    plan_limit(refused.replace(solver={"levels": 2}), dim=2, steps=1, batch=1, eval_size=1)
    monkeypatch.setitem(BLOCKS, "two_layer", _CoherentOutput)
    with pytest.raises(ValueError, match="W2"):
        plan_limit(config.replace(solver={"levels": 2}), dim=2, steps=1, batch=1, eval_size=1)


def test_a_third_matrix_is_drawn_trained_and_planned_from_its_declaration(monkeypatch):
    """A block declaring three matrices: the network draws, offsets and trains three, the
    optimiser and both memory plans count three, and nothing but the declaration names them."""
    config = _config("two_layer")
    two = make_network(config, key=jax.random.key(1))
    two_bytes = network_bytes(config)
    two_plan = plan_limit(
        config.replace(solver={"levels": 1}), dim=2, steps=1, batch=1, eval_size=1
    )
    monkeypatch.setitem(BLOCKS, "two_layer", _ThreeMatrices)
    three = make_network(config, key=jax.random.key(1))
    names = ["hidden", "hidden_first", "hidden_zero"]
    assert sorted(three.hidden) == sorted(three.backward_offsets) == names
    draws = [np.asarray(three.hidden[n]).ravel() for n in names]
    for i in range(3):  # three independent draws: |correlation| within 5 standard errors
        for j in range(i):
            assert abs(np.corrcoef(draws[i], draws[j])[0, 1]) < 5 / np.sqrt(draws[i].size)
    assert list(mup_multipliers(config, three).parameter_groups()) == [
        "readin",
        "hidden_zero",
        "hidden_first",
        "hidden",
        "readout",
    ]
    assert network_bytes(config) * 2 == two_bytes * 3
    plan = plan_limit(config.replace(solver={"levels": 1}), dim=2, steps=1, batch=1, eval_size=1)
    assert plan.sizes.weights == two_plan.sizes.weights + 1
    # its outputs are the two-layer block's on the shared matrices (the branch ignores W0)
    x = np.ones((2, config.model.dim))
    mixed = eqx.tree_at(lambda m: (m.hidden["hidden"], m.hidden["hidden_first"]), three,
                        (two.hidden["hidden"], two.hidden["hidden_first"]))  # fmt: skip
    mixed = eqx.tree_at(lambda m: m.readin, mixed, two.readin)
    mixed = eqx.tree_at(lambda m: m.readout, mixed, two.readout)
    mixed = eqx.tree_at(lambda m: m.backward_offsets, mixed, None)
    plain = eqx.tree_at(lambda m: m.backward_offsets, two, None)
    np.testing.assert_array_equal(mixed(x), plain(x))


@pytest.mark.parametrize(
    "block, declared", [("one_layer", _CoherentOneLayer), ("two_layer", _CoherentOutput)]
)
def test_the_limit_follows_a_declared_exponent_exactly(monkeypatch, block, declared):
    """With the exponent declared on a block's output layer, the weight-space limit fed the
    network's weights at M = L, N = n is still the network (float64 round-off, as in
    tests/test_limit_vs_finite.py), and the declaration moved the network's outputs."""
    config = load_config(
        None,
        [
            f"model.block={block}",
            "model.activation=tanh",
            "model.dim=5",
            "model.outputs=2",
            "training.eta=0.7",
            "training.steps=3",
            "training.batch=2",
            f"training.first_layer_exponent={EXPONENT}",
            "data.eval_size=3",
            "network.width=24",
            "network.depth=4",
            "network.backward=decoupled",
            "solver.particles=24",
            "solver.depth_steps=4",
            "solver.representation=weight",
            "solver.backward=decoupled",
            "solver.groups=1",
            "solver.levels=1",
            "solver.control_variates=false",
            "run.dtype=float64",
        ],
    )
    stream, key = load_stream(config), jax.random.key(3)
    undeclared = train_finite(config, stream, key=key).f_eval
    monkeypatch.setitem(BLOCKS, block, declared)
    finite = train_finite(config, stream, key=key)
    with jax.enable_x64(True):
        solver, state = limit_from_network(config, stream, make_network(config, key=key))
        limit = solve_limit(config, stream, key=jax.random.key(0), solver=solver, state=state)
    scale = np.abs(finite.f_eval).max()
    np.testing.assert_allclose(limit.f_eval, finite.f_eval, rtol=1e-9, atol=1e-9 * scale)
    assert np.abs(finite.f_eval - undeclared).max() > 1e-3 * scale
