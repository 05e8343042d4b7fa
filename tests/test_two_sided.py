"""The field-space limit of standard backprop (two-sided conditioning, spec section 6).

* Exact: fed a standard network's own initial weights as its fresh noise (G = W(0)), at M = L and
  N = n the two-sided field-space solve is that network computed another way, one-layer and
  two-layer blocks (c = 0 and 1/2), U and v trained, minibatches: float64 round-off.
* Exact: without its reuse-coupling terms, on the same keys, it is the decoupled (one-sided)
  field space: the two store different things (products against standard increments) and must
  still give the same numbers.
* In law: the first SGD steps of spec sections 3 and 5 in closed form, and the standard
  weight-space solve at the same N and M.
"""

import dataclasses

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.finite import make_network, train_finite
from nfd_sde.limit import build_solver, coupling_gap, plan_for, solve_limit
from nfd_sde.validation import (
    field_limit_from_network,
    first_step_change,
    two_layer_first_step_change,
)
from solvers import (
    FieldNoise,
    FieldSpace,
    RevealedSide,
    StoredMatrices,
    TwoSidedFieldSpace,
    TwoSidedProduct,
    two_sided_product,
)
from tests._limit_helpers import (
    assert_limit_is_the_network,
    first_step_gain,
    first_step_problem,
    stream_from,
)


def _problem(width, depth, *, block="one_layer", exponent=0.0, extra=()):
    return load_config(
        None,
        [
            "solver.groups=1",
            "solver.levels=1",
            "solver.control_variates=false",
            f"model.block={block}",
            "model.activation=tanh",
            "model.dim=5",
            "model.outputs=2",
            "training.eta=0.7",
            "training.eta_U=0.5",
            "training.eta_v=1.5",
            f"training.first_layer_exponent={exponent}",
            "training.steps=3",
            "training.batch=2",
            "data.eval_size=3",
            f"network.width={width}",
            f"network.depth={depth}",
            "network.backward=standard",
            f"solver.particles={width}",
            f"solver.depth_steps={depth}",
            "solver.representation=field",
            "solver.backward=standard",
            "solver.jitter=0",
            "run.dtype=float64",
            "run.kernel_depths=[0.0, 0.5, 1.0]",
            *extra,
        ],
    )


@pytest.mark.parametrize(
    "block, exponent, extra",
    [
        ("one_layer", 0.0, ()),
        pytest.param(
            "one_layer",
            0.0,
            ("training.loss=cross_entropy", "model.outputs=3"),
            marks=pytest.mark.slow,
        ),
        pytest.param("two_layer", 0.0, (), marks=pytest.mark.slow),
        ("two_layer", 0.5, ()),
    ],
    ids=["one-layer", "one-layer-cross-entropy", "two-layer-c0", "two-layer-c0.5"],
)
def test_two_sided_field_space_fed_the_network_weights_is_the_network(block, exponent, extra):
    """W(0) = W* + P_B W(0) P_A holds exactly, so with G = W(0) every product is the network's
    own matmul: float64 agreement to 1e-9 relative (round-off of the p x p and q x q solves and
    ~10 layers of matmuls over 3 steps; no jitter). Training must have moved the outputs by far
    more than that."""
    config = _problem(40, 5, block=block, exponent=exponent, extra=extra)
    stream = load_stream(config)
    key = jax.random.key(3)
    finite = train_finite(config, stream, key=key)
    with jax.enable_x64(True):
        network = make_network(config, key=key)
        solver, state = field_limit_from_network(config, stream, network)
        assert isinstance(solver.representation, TwoSidedFieldSpace)
        limit = solve_limit(config, stream, key=jax.random.key(0), solver=solver, state=state)
    assert_limit_is_the_network(limit, finite, rtol=1e-9, moved=1e-3)


def _factor(x):
    return np.linalg.cholesky(x.T @ x / x.shape[0])


@pytest.mark.parametrize("transpose", [False, True], ids=["forward", "backward"])
@pytest.mark.parametrize("n, p, q", [(12, 4, 3), (300, 140, 10)], ids=["small", "blocked"])
def test_two_sided_product_is_the_conditioned_matrix(transpose, n, p, q):
    """The product against spec section 6 written with explicit N x N matrices: reveal a random
    W on both sides (W A / sqrt(N) = C, W^T B / sqrt(N) = D), form W' = W* + P_B G P_A with an
    independent G, and check (a) W' satisfies both constraints, (b) the product of new inputs
    equals W' a / sqrt(N) (or W'^T b for the backward direction), and (c) its coupling part is
    B^{+T} D^T P_A a. float64, N = 12 with 4 + 3 stored pairs, and N = 300 with 140 + 10 (a
    factor solved by blocks of matrix products, `solvers._triangular`): round-off (1e-10, the
    factors' condition numbers are below 1e3)."""
    rng = np.random.default_rng(0)
    r = 2
    w, g = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a, b, x = rng.standard_normal((n, p)), rng.standard_normal((n, q)), rng.standard_normal((n, r))
    c, d = w @ a / np.sqrt(n), w.T @ b / np.sqrt(n)
    pinv_a, pinv_bt = np.linalg.pinv(a), np.linalg.pinv(b.T)
    proj_a, proj_b = np.eye(n) - a @ pinv_a, np.eye(n) - b @ np.linalg.pinv(b)
    star = np.sqrt(n) * (c @ pinv_a + pinv_bt @ d.T - pinv_bt @ b.T @ c @ pinv_a)
    conditioned = star + proj_b @ g @ proj_a
    np.testing.assert_allclose(conditioned @ a / np.sqrt(n), c, atol=1e-10)
    np.testing.assert_allclose(conditioned.T @ b / np.sqrt(n), d, atol=1e-10)
    with jax.enable_x64(True):
        forward = RevealedSide(a, c, _factor(a))
        backward = RevealedSide(b, d, _factor(b))
        same, other = (backward, forward) if transpose else (forward, backward)
        matrix = g.T if transpose else g
        value, coupling = two_sided_product(
            x, same, other, None, matrix, jitter=np.float64(0.0), coupling=True
        )
    expected = (conditioned.T if transpose else conditioned) @ x / np.sqrt(n)
    np.testing.assert_allclose(np.asarray(value), expected, atol=1e-10)
    if transpose:  # A^{+T} C^T P_B b, the mirror image
        reuse = np.linalg.pinv(a.T) @ c.T @ proj_b @ x
    else:
        reuse = pinv_bt @ d.T @ proj_a @ x
    np.testing.assert_allclose(np.asarray(coupling), reuse, atol=1e-10)


@pytest.mark.parametrize("block", ["one_layer", pytest.param("two_layer", marks=pytest.mark.slow)])
def test_without_coupling_the_two_sided_solve_is_the_decoupled_field_space(block):
    """Same keys, coupling terms off: C alpha with stored products C equals the one-sided field
    space's stored increments times the factor rows, so the two solves agree to float64
    round-off (1e-9; jitter 1e-12 enters both identically), including the control variates'
    stored eval pairs; the coupled solve on the same keys differs by far more."""
    config = _problem(64, 4, block=block, extra=("solver.jitter=1e-12",))
    config = config.replace(solver={"control_variates": True})
    decoupled_config = config.replace(solver={"backward": "decoupled"})
    stream = load_stream(config)
    results = {}
    with jax.enable_x64(True):
        for name, cfg, coupling in [
            ("decoupled", decoupled_config, None),
            ("uncoupled", config, False),
            ("standard", config, True),
        ]:
            solver = build_solver(cfg, stream, key=jax.random.key(5), plan=plan_for(cfg, stream))
            if coupling is not None:
                assert isinstance(solver.representation, TwoSidedFieldSpace)
                representation = dataclasses.replace(solver.representation, coupling=coupling)
                solver = dataclasses.replace(solver, representation=representation)
            else:
                assert isinstance(solver.representation, FieldSpace)
            state = solver.init_state(key=jax.random.key(6))
            results[name] = solve_limit(
                cfg, stream, key=jax.random.key(0), solver=solver, state=state
            )
    decoupled, uncoupled = results["decoupled"], results["uncoupled"]
    scale = np.abs(decoupled.f_eval).max()
    np.testing.assert_allclose(uncoupled.f_eval, decoupled.f_eval, rtol=1e-9, atol=1e-9 * scale)
    for name in ("feature_eval", "grad_train"):
        a, b = uncoupled.kernels[name], decoupled.kernels[name]
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9 * np.abs(b).max())
    assert np.abs(results["standard"].f_eval[1:] - decoupled.f_eval[1:]).max() > 1e-3 * scale


@pytest.mark.parametrize("block", ["one_layer", pytest.param("two_layer", marks=pytest.mark.slow)])
def test_standard_first_step_matches_the_closed_form(block):
    """Spec sections 3 and 5 at depth L = 4 (n -> infinity, the M = L scheme): one-layer
    eta y (1 + 1/L)^(L-1), two-layer eta y (1 + 1/L)^(L-1) (1 + L^c) at c = 0, within 4 standard
    errors of 16 groups of 1024 particles (the error of f^1 - f^0 bounded by the sum of the two
    outputs' standard errors); the decoupled value is more than 2 errors away."""
    config, stream = first_step_problem(
        particles=1024, depth_steps=4, representation="field", backward="standard", block=block
    )
    gain, se = first_step_gain(config, stream, 16)
    if block == "one_layer":
        expected = first_step_change("standard", eta=1.0, depth=4)
    else:
        expected = two_layer_first_step_change("standard", eta=1.0, depth=4, exponent=0.0)
    decoupled = first_step_change("decoupled", eta=1.0, depth=4)
    assert abs(gain - expected) < 4 * se, (gain, se, expected)
    assert abs(gain - decoupled) > 2 * se, (gain, se, decoupled)


@pytest.mark.slow
@pytest.mark.parametrize("block", ["one_layer", "two_layer"])
def test_two_sided_field_space_agrees_with_standard_weight_space(block):
    """In law: tanh, U and v trained, minibatches with a repeated input and an eval input equal
    to a training input (exactly singular kernels, handled by the jitter guard), 3 steps,
    control variates. Standard field space (8 groups of 512) and standard weight space (8 groups
    of 256; its own O(1/N) bias is below the errors here) agree within 4 combined standard
    errors on every eval output after step 0; training moved the outputs by far more."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 4))
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * 2.0
    x_train = np.stack([x[[0, 1, 0]], x[[2, 3, 2]], x[[1, 4, 4]]])
    y_train = np.tanh(x_train.sum(-1, keepdims=True))
    x_eval = x[[0, 3]]
    stream = stream_from(x_train, y_train, x_eval, np.tanh(x_eval.sum(-1, keepdims=True)))
    config = load_config(
        None,
        [
            f"model.block={block}",
            "model.activation=tanh",
            "model.dim=4",
            "training.eta=1.0",
            "training.steps=3",
            "training.batch=3",
            "data.eval_size=2",
            "solver.backward=standard",
            "solver.groups=8",
            "solver.levels=1",
            "solver.depth_steps=4",
        ],
    )
    field = solve_limit(
        config.replace(solver={"representation": "field", "particles": 512}),
        stream,
        key=jax.random.key(0),
    )
    weight = solve_limit(
        config.replace(solver={"representation": "weight", "particles": 256}),
        stream,
        key=jax.random.key(1),
    )
    se = np.hypot(field.stderr["f_eval"], weight.stderr["f_eval"])[1:]
    z = np.abs(field.f_eval - weight.f_eval)[1:] / se
    assert z.max() < 4.0, z
    assert np.abs(field.f_eval[-1] - field.f_eval[0]).max() > 10 * se.max()


def test_coupling_gap_matches_the_first_step_closed_form():
    """Spec section 3 at L = 4: the limit's outputs are f^0 = 0 and f^1 = eta y gain, so the
    relative gap is |gain_standard - gain_decoupled| / |gain_decoupled| (0.355), within 4 of its
    standard errors over 8 paired groups of 1024 particles. The forward products of the first
    step have nothing stored to be coupled to (share exactly 0); the backward ones are coupled to
    the step's own forward products (share about N^-1/2 = 0.03 here: with a linear activation
    the step-0 gradients do not depend on the forward products, so only the conditioning's
    fluctuation remains; > 0.01)."""
    config, stream = first_step_problem(
        particles=1024, depth_steps=4, representation="field", backward="standard"
    )
    out = coupling_gap(config.replace(solver={"groups": 8}), stream, key=jax.random.key(2))
    standard = first_step_change("standard", eta=1.0, depth=4)
    decoupled = first_step_change("decoupled", eta=1.0, depth=4)
    expected = abs(standard - decoupled) / decoupled
    gap = out["gap"]
    assert gap["resolved"]
    assert abs(gap["debiased"] - expected) < 4 * gap["stderr"], (gap, expected)
    coupling = out["coupling"]["W.forward"], out["coupling"]["W.backward"]
    assert np.max(coupling[0]["layer_share"]) == 0.0
    assert np.min(coupling[1]["layer_share"]) > 0.01


def test_backward_products_are_conditioned_on_the_steps_own_forward_products():
    """Within an SGD step the forward sweep reveals W a for the step's new inputs before the
    backward sweep multiplies by W^T: the backward product of the representation (one depth
    step, fed an explicit independent G as its fresh noise) equals the explicit W'^T b / sqrt(N)
    with W' = W* + P_B G P_A conditioned on the stored pairs *and* the step's forward pairs;
    float64 round-off (1e-10). Conditioned on the stored pairs only, it would differ by O(1)."""
    rng = np.random.default_rng(1)
    n, p, q, r, s = 16, 3, 2, 2, 1  # stored forward, stored backward, step's forward, new backward
    w, g = rng.standard_normal((n, n)), rng.standard_normal((n, n))
    a, b = rng.standard_normal((n, p)), rng.standard_normal((n, q))
    a_now, x = rng.standard_normal((n, r)), rng.standard_normal((n, s))
    c, d, c_now = w @ a / np.sqrt(n), w.T @ b / np.sqrt(n), w @ a_now / np.sqrt(n)

    def conditioned(a_all, c_all):
        pinv_a, pinv_bt = np.linalg.pinv(a_all), np.linalg.pinv(b.T)
        proj_a = np.eye(n) - a_all @ pinv_a
        proj_b = np.eye(n) - b @ np.linalg.pinv(b)
        star = np.sqrt(n) * (c_all @ pinv_a + pinv_bt @ d.T - pinv_bt @ b.T @ c_all @ pinv_a)
        return (star + proj_b @ g @ proj_a).T @ x / np.sqrt(n)

    expected = conditioned(np.hstack([a, a_now]), np.hstack([c, c_now]))
    stored_only = conditioned(a, c)
    with jax.enable_x64(True):
        product = TwoSidedProduct(
            same=FieldNoise(d[None], _factor(b)[None]),
            same_inputs=b[None],
            other=FieldNoise(c[None], _factor(a)[None]),
            other_inputs=a[None],
            new_white=np.zeros((1, n, s)),
            jitter=np.float64(0.0),
            current=(a_now[None], c_now[None]),
            matrices=StoredMatrices(g[None]),
            transpose=True,
        )
        value = np.asarray(product(0, x))
    np.testing.assert_allclose(value, expected, atol=1e-10)
    assert np.abs(stored_only - expected).max() > 1e-2
