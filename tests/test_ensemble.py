"""Seed ensembles of the finite network (`train_ensemble`) and the common random numbers across
depths that `compare` builds them from.

* A member of a vmapped ensemble is the network `train_finite` trains from the same key: the same
  records to float64 round-off, in both backward modes, across chunk boundaries and padding.
* Its antithetic mirror (readout v -> -v) starts from the negated output.
* Initial weights built with `depth_refinement` r (each layer the normalised sum of r layers of a
  depth-rL draw) are again i.i.d. N(0, 1): mean, variance, kurtosis and correlations between
  layers, between the forward and backward copies and between seeds, each within 4 standard
  errors of its i.i.d. value; and they are exactly that sum of the deeper network's layers.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nfd_sde import load_config, load_stream, train_finite
from nfd_sde.finite import ensemble_networks, make_network, train_ensemble
from nfd_sde.model import DataStream

SMALL = [
    "run.dtype=float64",
    "training.steps=2",
    "training.batch=2",
    "data.eval_size=3",
    "network.width=10",
    "network.depth=3",
    "model.activation=tanh",
]


@pytest.mark.parametrize("backward", ["decoupled", "standard"])
def test_an_ensemble_member_is_the_network_train_finite_trains(backward):
    """Five keys in chunks of two (the last chunk padded), antithetic: member 2s is
    train_finite(keys[s]) to 1e-12 (float64 round-off of a few hundred operations, vmapped and
    not), member 2s + 1 starts from the negated output."""
    config = load_config(None, [*SMALL, f"network.backward={backward}"])
    stream = load_stream(config)
    keys = jax.random.split(jax.random.key(3), 5)
    ensemble = train_ensemble(config, stream, keys=keys, antithetic=True, chunk=2)
    assert ensemble.f_eval.shape == (10, 3, 3, 1)
    assert ensemble.producer["members"] == 10 and ensemble.producer["seeds"] == 5
    for seed in (0, 4):
        single = train_finite(config, stream, key=keys[seed])
        for name in ("f_eval", "f_train", "loss_eval", "loss_train"):
            got, want = getattr(ensemble, name)[2 * seed], np.asarray(getattr(single, name))
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)
        for name in ("feature_eval", "feature_train", "grad_train"):
            got, want = ensemble.kernels[name][2 * seed], single.kernels[name]
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-11, err_msg=name)
        np.testing.assert_allclose(
            ensemble.f_eval[2 * seed + 1, 0], -np.asarray(single.f_eval[0]), rtol=0, atol=1e-14
        )
        assert not np.allclose(ensemble.f_eval[2 * seed + 1, -1], -single.f_eval[-1])


def test_an_ensemble_without_training_steps_records_the_initial_outputs():
    """K = 0: the outputs and kernels at initialisation, no step records (float32: the initial
    outputs agree with the networks' own to float32 round-off)."""
    config = load_config(None, [*SMALL[1:]])
    stream = load_stream(config)
    empty = DataStream(
        x_train=stream.x_train[:0],
        y_train=stream.y_train[:0],
        x_eval=stream.x_eval,
        y_eval=stream.y_eval,
    )
    keys = jax.random.split(jax.random.key(1), 3)
    ensemble = train_ensemble(config, empty, keys=keys)
    assert ensemble.f_eval.shape == (3, 1, 3, 1) and ensemble.f_train.shape == (3, 0, 2, 1)
    assert ensemble.loss_train.shape == (3, 0) and ensemble.kernels["grad_train"].shape[1] == 0
    models = ensemble_networks(config, keys=keys)
    initial = eqx.filter_vmap(lambda model: model(jnp.asarray(stream.x_eval, jnp.float32)))(models)
    np.testing.assert_allclose(ensemble.f_eval[:, 0], initial, rtol=1e-5, atol=1e-6)


def _within(value, expected, stderr, what):
    assert abs(value - expected) < 4 * stderr, (what, value, expected, stderr)


def test_common_noise_weights_are_iid_standard_normal():
    """Width 64, depth 4 built from depth 16 (r = 4): the 4 x 64^2 hidden entries."""
    width, depth, refinement = 64, 4, 4
    config = load_config(None, [f"network.width={width}", "network.backward=decoupled"])
    key = jax.random.key(11)
    model = make_network(config, depth=depth, key=key, depth_refinement=refinement)
    weights = np.asarray(model.hidden["hidden"], dtype=float)
    entries = weights.size
    _within(weights.mean(), 0.0, 1 / math.sqrt(entries), "mean")
    _within(weights.var(), 1.0, math.sqrt(2 / entries), "variance")
    kurtosis = np.mean(weights**4) / weights.var() ** 2
    _within(kurtosis, 3.0, math.sqrt(24 / entries), "kurtosis")
    per_layer = weights.reshape(depth, -1)
    for layer in range(depth):  # every layer on its own is standard normal too
        _within(per_layer[layer].var(), 1.0, math.sqrt(2 / per_layer.shape[1]), "layer variance")
    correlations = np.corrcoef(per_layer)
    off = correlations[~np.eye(depth, dtype=bool)]
    assert np.all(np.abs(off) < 4 / math.sqrt(per_layer.shape[1])), correlations
    backward = weights + np.asarray(model.backward_offsets["hidden"], dtype=float)  # W~(0)
    _within(
        np.corrcoef(weights.ravel(), backward.ravel())[0, 1], 0.0, 1 / math.sqrt(entries), "W, W~"
    )

    # exactly the normalised sums of the depth-16 network's layers from the same key
    deep = make_network(config, depth=depth * refinement, key=key)
    blocks = np.asarray(deep.hidden["hidden"], dtype=float)
    blocks = blocks.reshape(depth, refinement, width, width)
    np.testing.assert_allclose(weights, blocks.sum(axis=1) / math.sqrt(refinement), atol=1e-5)
    _within(
        np.corrcoef(weights[0].ravel(), blocks[0, 0].ravel())[0, 1],
        1 / math.sqrt(refinement),
        1 / width,
        "shared noise",
    )


def test_ensemble_seeds_are_independent():
    """Two seeds of a vmapped ensemble with common noise: uncorrelated weights; mirrors share
    every weight but the readout."""
    config = load_config(None, ["network.width=32", "network.depth=2"])
    keys = jax.random.split(jax.random.key(2), 2)
    models = ensemble_networks(config, keys=keys, depth_refinement=2, antithetic=True)
    hidden = np.asarray(models.hidden["hidden"], dtype=float).reshape(4, -1)
    _within(np.corrcoef(hidden[0], hidden[2])[0, 1], 0.0, 1 / math.sqrt(hidden.shape[1]), "seeds")
    np.testing.assert_array_equal(hidden[0], hidden[1])
    np.testing.assert_array_equal(models.readout[1], -models.readout[0])
    assert jnp.all(models.readin[0] == models.readin[1])
