"""Weight space's accumulated weight updates kept dense (`solver.weight_updates="dense"`): an
(N, N) matrix per weight and depth step, extended as pairs are stored, instead of re-applying the
stored pairs (`"pairs"`). The two are the same arithmetic up to its association:

    Delta W x = (sum_j out_j in_j^T / N) x    (dense)    vs    out (in^T x / N)    (pairs),

so they agree to float64 round-off, and the weight space fed a finite network's own weights is
still that network after many steps.

Tolerances. Each entry of Delta W x is a sum of N S products (S stored pairs); the two
associations round it differently, by at most ~(N + S) eps of the sum of the products' magnitudes
(eps = 1.1e-16 in float64), ~1e-14 relative at N + S < 100. The solve composes M depth steps and
K SGD steps of such sums with O(1) Lipschitz constants (tanh, learning rates < 1), which amplify
the error by a factor well under 1e4 at M K <= 40: 1e-10 relative leaves a margin of 10 or more.
The network identity over 60 steps compares two different computations (the finite network's
matmuls and the limit's), as the 3-step identity tests do at 1e-9; over 20 times as many steps
its round-off grows at most that much more: 1e-8 relative.
"""

import re

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.finite import make_network, train_finite
from nfd_sde.limit import build_solver, plan_for, plan_limit, solve_limit
from nfd_sde.validation import limit_from_network
from solvers import (
    STORED_PAIRS,
    UPDATE_FORMS,
    DenseMatrices,
    KeyedGaussianMatrices,
    ProblemSizes,
    StoredMatrices,
    WeightSpace,
    particle_gram,
)
from tests._limit_helpers import assert_limit_is_the_network, compiled_step_text

DENSE = UPDATE_FORMS["dense"]


def _config(block, backward, *, steps=8, width=24, depth=4, updates="dense", extra=()):
    return load_config(
        None,
        [
            f"model.block={block}",
            "model.activation=tanh",
            "model.dim=5",
            "model.outputs=2",
            "training.eta=0.7",
            f"training.steps={steps}",
            "training.batch=3",
            "data.eval_size=3",
            f"network.width={width}",
            f"network.depth={depth}",
            f"network.backward={backward}",
            f"solver.particles={width}",
            f"solver.depth_steps={depth}",
            "solver.representation=weight",
            f"solver.weight_updates={updates}",
            f"solver.backward={backward}",
            "solver.groups=1",
            "solver.levels=1",
            "run.dtype=float64",
            *extra,
        ],
    )


def test_dense_and_pair_updates_apply_the_same_matrix():
    """On random pairs: DenseMatrices' kept matrices, built in two appends, apply out in^T / N
    forward and its transpose backward, as the stored pairs do."""
    keys = jax.random.split(jax.random.key(0), 4)
    with jax.enable_x64(True):
        history = {
            "a": jax.random.normal(keys[0], (3, 16, 5), "float64"),
            "g": jax.random.normal(keys[1], (3, 16, 5), "float64"),
        }
        x = jax.random.normal(keys[2], (16, 2), "float64")
        pairs = {"W": ("g", "a")}
        kept = DENSE.init(pairs, steps=3, particles=16, dtype="float64")
        first = {name: value[:, :, :2] for name, value in history.items()}
        rest = {name: value[:, :, 2:] for name, value in history.items()}
        kept = DENSE.append(DENSE.append(kept, first, pairs), rest, pairs)
        dense = DENSE.applied(history, kept, pairs)
        stored = STORED_PAIRS.applied(
            history, STORED_PAIRS.init(pairs, steps=3, particles=16, dtype="float64"), pairs
        )
        for m in range(3):
            expected = history["g"][m] @ particle_gram(history["a"][m], x)
            np.testing.assert_array_equal(stored.forward("W", m, x), expected)
            np.testing.assert_allclose(dense.forward("W", m, x), expected, rtol=1e-12)
            transposed = history["a"][m] @ particle_gram(history["g"][m], x)
            np.testing.assert_array_equal(stored.backward("W", m, x), transposed)
            np.testing.assert_allclose(dense.backward("W", m, x), transposed, rtol=1e-12)


@pytest.mark.parametrize("block", ["one_layer", "two_layer"])
@pytest.mark.parametrize("backward", ["decoupled", "standard"])
def test_dense_updates_are_the_stored_pairs(block, backward):
    """K = 8 SGD steps of B = 3 with 3 eval pairs (stored at step 0 for the control variates):
    the same weight-space solve with dense updates and with the stored pairs gives the same
    outputs and kernels to 1e-10 relative (module docstring), and training moved them far more."""
    dense = _config(block, backward, extra=("solver.control_variates=true",))
    pairs = dense.replace(solver={"weight_updates": "pairs"})
    stream = load_stream(dense)
    assert isinstance(plan_for(dense, stream).updates, DenseMatrices)
    assert plan_for(pairs, stream).updates is STORED_PAIRS
    a = solve_limit(dense, stream, key=jax.random.key(4))
    b = solve_limit(pairs, stream, key=jax.random.key(4))
    scale = np.abs(b.f_eval).max()
    for name in ("f_train", "f_eval"):
        np.testing.assert_allclose(
            getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-10 * scale
        )
    for name in ("feature_eval", "feature_train", "grad_train"):
        x, y = a.kernels[name], b.kernels[name]
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-10 * np.abs(y).max())
    assert np.abs(b.f_eval[-1] - b.f_eval[0]).max() > 1e-3 * scale


@pytest.mark.parametrize("block", ["one_layer", "two_layer"])
@pytest.mark.parametrize("backward", ["decoupled", "standard"])
def test_dense_weight_space_is_the_network_after_many_steps(block, backward):
    """M = L = 4, N = n = 16, K = 60 steps of B = 3: weight space with dense updates, fed the
    network's own initial weights, is the finite network to 1e-8 relative (module docstring)."""
    config = _config(block, backward, steps=60, width=16, extra=("training.eta=0.3",))
    stream = load_stream(config)
    key = jax.random.key(3)
    finite = train_finite(config, stream, key=key)
    with jax.enable_x64(True):
        network = make_network(config, key=key)
        solver, state = limit_from_network(config, stream, network)
        assert isinstance(solver.update_form, DenseMatrices)
        limit = solve_limit(config, stream, key=jax.random.key(0), solver=solver, state=state)
    assert_limit_is_the_network(limit, finite, rtol=1e-8, moved=1e-2)


def test_dense_cost_does_not_grow_with_the_stored_pairs():
    """The plan's cost of dense weight space is the same at 10 and 10^4 stored pairs, the stored
    pairs' grows with them; the dense matrices count in its memory."""
    sizes = ProblemSizes(512, 4, 10, 32, 16, updates=DENSE)
    more = ProblemSizes(512, 4, 10_000, 32, 16, updates=DENSE)
    assert WeightSpace.cost(sizes) == WeightSpace.cost(more)
    pairs = ProblemSizes(512, 4, 10, 32, 16)
    assert WeightSpace.cost(ProblemSizes(512, 4, 10_000, 32, 16)) > WeightSpace.cost(pairs)
    extra = WeightSpace.memory(sizes).working - WeightSpace.memory(pairs).working
    # the dense updates of the 4 depth steps, and both directions' matrices of all 4 kept
    # instead of two drawn at a time
    assert extra == 4 * 512**2 + 2 * (4 - 1) * 512**2
    # kept matrices are drawn once per solve: no drawing cost per step
    drawn = 2 * 4 * 512**2 * sizes.rng_cost
    assert WeightSpace.cost(pairs) - STORED_PAIRS.cost(pairs) == 4 * 512**2 * 48 + drawn
    assert WeightSpace.cost(sizes) - DENSE.cost(sizes) == 4 * 512**2 * 48


@pytest.mark.parametrize("backward", ["standard", "decoupled"])
def test_dense_weight_space_keeps_its_matrices_drawn_once(backward):
    """With dense updates the solver holds every depth step's initial matrices (the same draws
    as the keyed ones, which `test_dense_updates_are_the_stored_pairs` compares through whole runs); standard
    backprop keeps one set for both directions."""
    config = _config("one_layer", backward).replace(run={"dtype": "float32"})
    stream = load_stream(config)
    plan = plan_for(config, stream)
    solver = build_solver(config, stream, key=jax.random.key(0), plan=plan)
    forward = solver.representation.forward_matrices["W"]
    assert isinstance(forward, StoredMatrices) and forward.matrices.shape == (4, 24, 24)
    keyed = build_solver(config.replace(solver={"weight_updates": "pairs"}), stream,
                         key=jax.random.key(0), plan=plan_for(config.replace(
                             solver={"weight_updates": "pairs"}), stream))  # fmt: skip
    source = keyed.representation.forward_matrices["W"]
    assert isinstance(source, KeyedGaussianMatrices)
    np.testing.assert_array_equal(forward.matrices[2], source(2))
    backward_matrices = solver.representation.backward_matrices
    assert (backward_matrices is solver.representation.forward_matrices) == (backward == "standard")


def test_dense_updates_that_do_not_fit_fall_back_to_the_stored_pairs():
    """N = 2048, M = 16 in float32: the dense matrices (2 x 0.27 GB) do not fit in 0.3 GB, the
    stored pairs do; the plan applies the pairs and says why. With a history that must be
    streamed from host memory (K = 1000), the pairs are streamed with it."""
    config = _config(
        "one_layer",
        "decoupled",
        width=2048,
        depth=16,
        extra=("run.dtype=float32", "solver.memory_limit_gb=0.3", "solver.devices=1"),
    )
    sizes = {"dim": 5, "steps": 8, "batch": 3, "eval_size": 3}
    plan = plan_limit(config, **sizes)
    assert plan.kind is WeightSpace and plan.mode == "resident"
    assert plan.updates is STORED_PAIRS
    assert "solver.weight_updates" in plan.reason
    roomy = plan_limit(config.replace(solver={"memory_limit_gb": 2.0}), **sizes)
    assert isinstance(roomy.updates, DenseMatrices)
    streamed = plan_limit(config, **{**sizes, "steps": 1000})
    assert streamed.mode == "streamed" and streamed.updates is STORED_PAIRS
    assert "solver.weight_updates" in streamed.reason


@pytest.mark.parametrize("updates", ["dense", "pairs"])
def test_weight_space_never_writes_a_matrix_transpose_out(updates):
    """The backward sweep multiplies by transposed (N, N) matrices; written as `W.T @ x`, XLA's
    CPU dot wrote each transpose out (a transpose and a copy of N^2 numbers per product and
    depth step; at N = 4096 the step took 2.8x as long). `solvers.matrix_times` transposes only
    the skinny operand: no (N, N) transpose is left in the compiled step."""
    width = 48  # no other axis of the step is 48 long
    config = _config("one_layer", "standard", width=width, updates=updates)
    config = config.replace(run={"dtype": "float32"})
    text = compiled_step_text(config, load_stream(config))
    square = re.compile(rf"= f32\[(1,)?{width},{width}\]\{{[0-9,]+\}} (transpose|copy)\(")
    assert any(f"{width},{width}]" in line for line in text.splitlines())  # the matrices
    assert not [line for line in text.splitlines() if square.search(line)]
