"""The finite depth-muP ResNet (spec section 1): init statistics, the first SGD step, gradients
(standard and decoupled), scan vs unrolled, compile time, two-layer blocks, the Result schema.

Tolerances say where they come from: "SE" is the Monte Carlo standard error over seeds,
discretisation terms are the exact finite-L closed forms of `_closed_forms`, round-off is
float32 (~1e-7 per op) or float64 (~1e-16 per op).
"""

import functools
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nfd_sde import Config, load_config, load_stream
from nfd_sde.finite import (
    gradient_paths,
    init_optimizer,
    make_network,
    mup_sgd_step,
    network_outputs,
    residual_stream,
    sgd_step,
    train_finite,
)
from nfd_sde.model import MSE, activation, lr_multipliers
from nfd_sde.validation import (
    backward_second_moment,
    first_layer_change_exponent,
    first_step_change,
    forward_second_moment,
)

# Monte Carlo assertions use 4 standard errors: a false failure has probability ~6e-5 per check.
Z = 4.0


def _sphere(count: int, dim: int, seed: int) -> np.ndarray:
    """Inputs with |x|^2 / d = 1 exactly."""
    x = np.random.default_rng(seed).standard_normal((count, dim))
    return x / np.linalg.norm(x, axis=-1, keepdims=True) * math.sqrt(dim)


def _mean_se(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return samples.mean(0), samples.std(0, ddof=1) / math.sqrt(samples.shape[0])


def _slope(depths, values) -> float:
    return float(np.polyfit(np.log(depths), np.log(values), 1)[0])


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


# ---------------------------------------------------------------------------------------------
# 1. Init: E[h_t^2] = prod_l (1 + c/L) -> e^{c t}, c = 1 (linear) and 1/2 (ReLU)


@pytest.mark.parametrize("activation", ["linear", "relu"])
def test_init_second_moment_along_depth(activation):
    width, depth, seeds = 512, 64, 8
    config = Config().replace(model={"activation": activation, "dim": 8})
    x = jnp.asarray(_sphere(4, 8, seed=0), jnp.float32)

    @jax.jit
    def moments(key):
        model = make_network(config, width=width, depth=depth, key=key)
        _, stream = model.residual_stream(x)
        # Normalised by this network's own q_0 = |U x|^2 / (d n): E[q_l | h_0] = q_0 r^l exactly
        # for linear phi, and the fluctuation of q_0 itself (~sqrt(2/n)) drops out.
        q = jnp.mean(stream**2, axis=2)
        return jnp.mean(q / q[0], axis=1)

    per_seed = np.stack([moments(jax.random.key(s)) for s in range(seeds)])
    mean, se = _mean_se(per_seed)
    layers = np.arange(depth // 4, depth + 1, depth // 4)  # t = 1/4 .. 1 (t = 0 is 1 exactly)
    discrete = forward_second_moment(layers / depth, activation=activation, depth=depth)
    limit = forward_second_moment(layers / depth, activation=activation)
    # Linear phi: E<h_l, h_l>_n = (1 + 1/L)^l exactly at every width (W_l is independent of
    # h_{l-1}), so only Monte Carlo error. ReLU: the recursion's factor 1 + 1/(2L) holds as
    # n -> infinity; at width n the kernel fluctuates and biases it by O(1/n) relative per unit
    # depth time: allowance 2/n (stated constant; measured: within 1.2 SE with 12 seeds).
    bias = 0.0 if activation == "linear" else 2.0 / width
    np.testing.assert_array_less(np.abs(mean[layers] - discrete), Z * se[layers] + bias * discrete)
    # The discrete product differs from e^{ct} by c^2 t / (2L) + O(1/L^2) relative.
    assert np.all(np.abs(discrete / limit - 1) <= 1.0 / (2 * depth))
    # The two closed forms are several tolerances apart at t = 1 (e vs e^{1/2}).
    other = forward_second_moment(1.0, activation="relu" if activation == "linear" else "linear")
    assert abs(mean[-1] - other) > 3 * (Z * se[-1] + bias * discrete[-1])


def test_backward_second_moment_closed_form_at_init():
    """Decoupled linear network, linear readout: E<g_l, g_l>_n = (1 + 1/L)^{L - l} (exact at
    every width, so only Monte Carlo error)."""
    width, depth, seeds = 256, 32, 6
    config = Config().replace(
        model={"activation": "linear", "readout": "linear", "dim": 4}, training={"loss": "mse"}
    )
    x = jnp.asarray(_sphere(2, 4, seed=0), jnp.float32)

    @jax.jit
    def moments(key):
        model = make_network(config, width=width, depth=depth, backward="decoupled", key=key)
        # MSE with y = f(x) - 1 makes chi = 1, so the loss-gradient path is gamma0 n df/dh_l.
        paths = gradient_paths(model, x, model(x) - 1.0, loss=MSE())
        return jnp.mean(paths**2, axis=(1, 2))

    mean, se = _mean_se(np.stack([moments(jax.random.key(s)) for s in range(seeds)]))
    layers = np.arange(0, depth + 1, depth // 4)
    expected = backward_second_moment(layers / depth, depth=depth)
    np.testing.assert_array_less(np.abs(mean[layers] - expected), Z * se[layers])


# ---------------------------------------------------------------------------------------------
# 2. First SGD step: f^1 - f^0 -> eta e (standard), eta (e - 1) (decoupled)

ETA = 0.5
FIRST_STEP_WIDTHS = (128, 256, 512)
FIRST_STEP_DEPTHS = (8, 32)
FIRST_STEP_SEEDS = 16
BACKWARDS = ("standard", "decoupled")


def _first_step_bias(width: int) -> float:
    """Allowance for the finite-width bias of E[f^1 - f^0]. The first-order change is exact in
    expectation (W_l is independent of g_l and of h_{l-1}; f^0 enters oddly in v); second-order
    terms in the update carry f^0 <h, g>_n, a bias C eta^2 / n. C = 8 is the largest value
    measured with 4000 seeds at n = 32, 64, L = 8, 32 (standard: C ~ 5-8, decoupled ~ 2-4)."""
    return 8.0 * ETA**2 / width


@functools.cache
def _first_step_changes(width: int, depth: int, seeds: int = FIRST_STEP_SEEDS) -> np.ndarray:
    """Per-seed f^1 - f^0, shape (seeds, 2) for (standard, decoupled) sharing W(0)."""
    config = Config().replace(
        model={"activation": "linear", "readout": "linear", "dim": 4},
        training={"eta": ETA, "eta_U": 0.0, "eta_v": 0.0, "batch": 1, "steps": 1},
    )
    x, y = jnp.ones((1, 4)), jnp.ones((1, 1))  # |x|^2 / d = 1, y = 1

    @jax.jit
    def changes(key):
        decoupled = make_network(config, width=width, depth=depth, backward="decoupled", key=key)
        standard = eqx.tree_at(lambda m: m.backward_offsets, decoupled, None)
        out = []
        for model in (standard, decoupled):
            optimizer, opt_state = init_optimizer(config, model)
            new, _, record = sgd_step(
                model, opt_state, x, y, optimizer=optimizer, loss=MSE(), layers=(depth,)
            )
            out.append((new(x) - record.outputs)[0, 0])
        return jnp.stack(out)

    return np.stack([changes(jax.random.key(1000 + s)) for s in range(seeds)])


@pytest.mark.parametrize("depth", FIRST_STEP_DEPTHS)
@pytest.mark.parametrize("width", FIRST_STEP_WIDTHS)
def test_first_step_change_matches_closed_form(width, depth):
    changes = _first_step_changes(width, depth)
    mean, se = _mean_se(changes)
    discrete = np.array([first_step_change(b, eta=ETA, depth=depth) for b in BACKWARDS])
    limit = np.array([first_step_change(b, eta=ETA) for b in BACKWARDS])
    bias = _first_step_bias(width)
    np.testing.assert_array_less(np.abs(mean - discrete), Z * se + bias)
    # Against the continuum values eta e, eta (e - 1), the derived O(1/L) gap adds on.
    np.testing.assert_array_less(np.abs(mean - limit), Z * se + bias + np.abs(limit - discrete))
    # Paired on the same W(0): standard - decoupled, the reused-weight coupling (-> eta).
    paired_mean, paired_se = _mean_se(changes[:, 0] - changes[:, 1])
    assert abs(paired_mean - (discrete[0] - discrete[1])) <= Z * paired_se + 2 * bias


def test_first_step_scatter_shrinks_with_width():
    """The seed-to-seed rms deviation from the limit falls like n^{-1/2} (measured with 64
    seeds at L = 8: sqrt(n) * std = 3.0, 3.3 at n = 128, 512, standard), so from n = 128 to 512
    by a factor ~0.56. Pooling both depths gives 32 seeds per rms, ~12.5% relative error each,
    ~18% on the ratio: require < 0.56 * (1 + 2 * 0.18) ~ 0.76 -> 0.8."""

    def rms(width):
        deviations = [
            _first_step_changes(width, depth)
            - np.array([first_step_change(b, eta=ETA, depth=depth) for b in BACKWARDS])
            for depth in FIRST_STEP_DEPTHS
        ]
        return np.sqrt(np.mean(np.concatenate(deviations) ** 2, axis=0))

    ratio = rms(FIRST_STEP_WIDTHS[-1]) / rms(FIRST_STEP_WIDTHS[0])
    np.testing.assert_array_less(ratio, 0.8)


def test_first_step_closed_forms_discretisation_order():
    """The discrete-to-continuum gap is O(1/L): e - (1+1/L)^{L-1} ~ 3e/(2L) (standard) and
    (e - 1) - ((1+1/L)^L - 1) ~ e/(2L) (decoupled); the product L * gap converges at O(1/L)."""
    for backward, constant in (("standard", 1.5 * math.e), ("decoupled", 0.5 * math.e)):
        limit = first_step_change(backward, eta=1.0)
        for depth in (64, 256, 1024):
            gap = limit - first_step_change(backward, eta=1.0, depth=depth)
            # The next term of the expansion is O(1/L) relative; its constant is below 3.
            assert abs(depth * gap / constant - 1) < 3.0 / depth
    assert first_step_change("standard", eta=1.0) == pytest.approx(math.e)
    assert first_step_change("decoupled", eta=1.0) == pytest.approx(math.e - 1)
    assert first_layer_change_exponent(0.0) == -0.5


@pytest.mark.slow
def test_first_step_change_large_width_and_depth():
    width, depth = 1024, 128
    changes = _first_step_changes(width, depth, seeds=8)
    mean, se = _mean_se(changes)
    discrete = np.array([first_step_change(b, eta=ETA, depth=depth) for b in BACKWARDS])
    np.testing.assert_array_less(np.abs(mean - discrete), Z * se + _first_step_bias(width))


# ---------------------------------------------------------------------------------------------
# 3. Gradients: standard = jax.grad of a plain forward; decoupled with D = 0 = standard.


def _grad_config(block: str, block_order: str) -> Config:
    return Config().replace(
        model={
            "activation": "tanh",
            "block": block,
            "block_order": block_order,
            "dim": 5,
            "outputs": 2,
            "gamma0": 1.5,
            "beta_profile": [[0.0, 1.0], [1.0, 0.5]],
            "lr_profile": [[0.0, 1.0], [1.0, 2.0]],
        },
        training={"eta": 0.3, "eta_U": 0.7, "eta_v": 0.0, "first_layer_exponent": 0.5},
    )


def _trainable_grads(model, x, y, forward):
    def loss(m):
        return jnp.mean(MSE()(forward(m, x), y))

    return eqx.filter(eqx.filter_grad(loss)(model), model.trainable_filter())


def _groups(model):
    return list(model.parameter_groups())


def _group(model, name):
    return model.parameter_groups()[name]


@pytest.mark.parametrize("block", ["one_layer", "two_layer"])
@pytest.mark.parametrize("block_order", ["pre", "post"])
def test_standard_gradients_and_sgd_update(block, block_order):
    with jax.enable_x64(True):
        config = _grad_config(block, block_order)
        model = make_network(config, width=24, depth=6, key=jax.random.key(0))
        x = jnp.asarray(_sphere(3, 5, seed=1))
        y = jnp.asarray(np.random.default_rng(2).standard_normal((3, 2)))
        scanned = _trainable_grads(model, x, y, lambda m, x: m(x))
        plain = _trainable_grads(model, x, y, lambda m, x: m.unrolled_outputs(x))
        for group in _groups(model):
            # float64 round-off through ~20 ops in a different order: 1e-10 relative.
            assert _rel(_group(scanned, group), _group(plain, group)) < 1e-10, group

        # One sgd_step moves every group by -eta * m_P * grad_P (m_P from `_scales`).
        optimizer, opt_state = init_optimizer(config, model)
        new, _, _ = sgd_step(model, opt_state, x, y, optimizer=optimizer, loss=MSE(), layers=(0,))
        multipliers = lr_multipliers(config, 24, 6)
        for group in _groups(model):
            expected = -config.training.eta * multipliers[group] * _group(plain, group)
            moved = _group(new, group) - _group(model, group)
            if group == "readout":  # eta_v = 0 freezes v exactly
                assert np.all(moved == 0)
            else:
                assert _rel(moved, expected) < 1e-10, group
        assert np.all(new.branch_scales == model.branch_scales)


@pytest.mark.parametrize("block", ["one_layer", "two_layer"])
def test_decoupled_gradients(block):
    with jax.enable_x64(True):
        config = _grad_config(block, "pre")
        key = jax.random.key(3)
        standard = make_network(config, width=24, depth=6, backward="standard", key=key)
        decoupled = make_network(config, width=24, depth=6, backward="decoupled", key=key)
        x = jnp.asarray(_sphere(3, 5, seed=4))
        y = jnp.asarray(np.random.default_rng(5).standard_normal((3, 2)))

        def forward(m, x):
            return m(x)

        # Same key, same forward weights: the forward pass is identical.
        np.testing.assert_array_equal(standard(x), decoupled(x))
        reference = _trainable_grads(standard, x, y, forward)

        zero_offsets = eqx.tree_at(
            lambda m: m.backward_offsets,
            decoupled,
            jax.tree.map(jnp.zeros_like, decoupled.backward_offsets),
        )
        zero = _trainable_grads(zero_offsets, x, y, forward)
        for group in _groups(standard):
            # W + 0 = W exactly, so the same floating-point operations run.
            np.testing.assert_array_equal(_group(zero, group), _group(reference, group))

        other = _trainable_grads(decoupled, x, y, forward)
        # v's gradient and the top block's never see a backward weight: identical.
        np.testing.assert_array_equal(other.readout, reference.readout)
        top, top_reference = other.hidden["hidden"][-1], reference.hidden["hidden"][-1]
        np.testing.assert_allclose(top, top_reference, rtol=1e-12)
        # Below the top, independent backward noise changes the gradient at O(1).
        assert _rel(other.hidden["hidden"][0], reference.hidden["hidden"][0]) > 0.1
        assert _rel(other.readin, reference.readin) > 0.1


@pytest.mark.parametrize("backward", ["standard", "decoupled"])
def test_gradient_paths_follow_the_backward_recursion(backward):
    """g_L = sum_c chi_c v_c phi'(h_L); g_{l-1} = g_l + s_l phi'(h_{l-1}) (B_l^T g_l)/sqrt(n),
    B_l = W_l (standard) or W_l + D_l (decoupled): the spec's backward pass, float64."""
    with jax.enable_x64(True):
        config = _grad_config("one_layer", "pre")
        model = make_network(config, width=24, depth=6, backward=backward, key=jax.random.key(6))
        x = jnp.asarray(_sphere(3, 5, seed=7))
        y = jnp.asarray(np.random.default_rng(8).standard_normal((3, 2)))
        paths = gradient_paths(model, x, y, loss=MSE())
        outputs, stream = residual_stream(model, x)
        dphi = activation("tanh").derivative
        chi = MSE().derivative(outputs, y)
        expected = (chi @ model.readout) * dphi(stream[-1])
        weights, offsets = model.hidden["hidden"], model.backward_offsets
        backward_weights = weights if offsets is None else weights + offsets["hidden"]
        expected_paths = [expected]
        for layer in range(model.depth, 0, -1):
            g = expected_paths[-1]
            b = backward_weights[layer - 1]
            step = model.branch_scales[layer - 1] * (g @ b) * model.matmul_scale
            expected_paths.append(g + dphi(stream[layer - 1]) * step)
        expected_paths = jnp.stack(expected_paths[::-1])
        assert _rel(paths, expected_paths) < 1e-10


# ---------------------------------------------------------------------------------------------
# 4. scan vs unrolled; no retracing


@pytest.mark.parametrize("block", ["one_layer", "two_layer"])
@pytest.mark.parametrize("block_order", ["pre", "post"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_scan_forward_matches_unrolled(block, block_order, activation):
    config = Config().replace(
        model={"activation": activation, "block": block, "block_order": block_order}
    )
    model = make_network(config, width=64, depth=16, key=jax.random.key(9))
    x = jnp.asarray(_sphere(5, 8, seed=10), jnp.float32)
    scanned = network_outputs(model, x)
    unrolled = jax.jit(lambda m, x: m.unrolled_outputs(x))(model, x)
    # float32 round-off (~1e-7 per op) accumulated over 16 layers of width 64: 1e-5 relative.
    assert _rel(scanned, unrolled) < 1e-5
    outputs, stream = residual_stream(model, x)
    assert stream.shape == (17, 5, 64)
    assert _rel(outputs, scanned) < 1e-6


def test_sgd_step_does_not_retrace():
    config = Config().replace(training={"steps": 3, "batch": 4}, network={"width": 32, "depth": 8})
    stream = load_stream(config)
    model = make_network(config, key=jax.random.key(11))
    optimizer, opt_state = init_optimizer(config, model)
    before = eqx.debug.get_num_traces(sgd_step)
    for k in range(3):
        x, y = (
            jnp.asarray(stream.x_train[k], jnp.float32),
            jnp.asarray(stream.y_train[k], jnp.float32),
        )
        model, opt_state, _ = sgd_step(
            model, opt_state, x, y, optimizer=optimizer, loss=MSE(), layers=(0, 4, 8)
        )
    assert eqx.debug.get_num_traces(sgd_step) - before == 1


# ---------------------------------------------------------------------------------------------
# 5. Compile time does not grow with depth


def test_compile_time_independent_of_depth():
    config = Config().replace(model={"dim": 4}, training={"batch": 2})
    x, y = jnp.ones((2, 4)), jnp.ones((2, 1))
    models = {
        depth: make_network(config, width=16, depth=depth, key=jax.random.key(12))
        for depth in (8, 512)
    }

    def compile_time(depth):
        # A fresh optimizer closure is a new static argument: a full trace, lowering and
        # compile every time.
        optimizer, opt_state = init_optimizer(config, models[depth])
        start = time.perf_counter()
        sgd_step.lower(
            models[depth], opt_state, x, y, optimizer=optimizer, loss=MSE(), layers=(0, depth)
        ).compile()
        return time.perf_counter() - start

    # Interleaved rounds share any load from other processes; keep each depth's fastest.
    times = np.array([[compile_time(8), compile_time(512)] for _ in range(2)]).min(axis=0)
    # An unrolled loop would compile ~64x longer at L = 512 than at L = 8; a scan is
    # depth-independent up to timing noise: allow 2x.
    assert times[1] < 2.0 * times[0], times


# ---------------------------------------------------------------------------------------------
# 6. Two-layer blocks: first internal layer's change ~ L^{c - 1/2}


TWO_LAYER_DEPTHS = (4, 8, 16, 32, 64)


@functools.cache
def _two_layer_changes() -> dict[float, np.ndarray]:
    """rms over coordinates, layers, inputs and 3 seeds (averaged) of one step's
    (Delta u, L * second-layer block change, Delta h_L), for c in {0, 1/2}."""
    width, seeds, exponents = 256, 3, (0.0, 0.5)
    config = Config().replace(
        model={"activation": "relu", "block": "two_layer", "dim": 4},
        training={"eta": 0.5, "batch": 2, "steps": 1},
    )
    x = jnp.asarray(_sphere(2, 4, seed=13), jnp.float32)
    y = jnp.ones((2, 1))

    def rms(a):
        return jnp.sqrt(jnp.mean(a**2))

    def per_depth(depth):
        @jax.jit
        def run(key):
            model = make_network(config, width=width, depth=depth, key=key)
            _, stream = model.residual_stream(x)
            phi_h = model.features(stream[:-1])
            u = jnp.einsum("lij,lbj->lbi", model.hidden["hidden_first"], phi_h) * model.matmul_scale
            out = []
            for c in exponents:
                optimizer, opt_state = init_optimizer(
                    config.replace(training={"first_layer_exponent": c}), model
                )
                new, _, _ = sgd_step(
                    model, opt_state, x, y, optimizer=optimizer, loss=MSE(), layers=(0,)
                )
                delta_first = new.hidden["hidden_first"] - model.hidden["hidden_first"]
                delta_u = jnp.einsum("lij,lbj->lbi", delta_first, phi_h) * model.matmul_scale
                delta_second = new.hidden["hidden"] - model.hidden["hidden"]
                block_change = (
                    model.branch_scales[:, None, None]
                    * jnp.einsum("lij,lbj->lbi", delta_second, jax.nn.relu(u))
                    * model.matmul_scale
                )
                _, new_stream = new.residual_stream(x)
                out.append(
                    [rms(delta_u), depth * rms(block_change), rms(new_stream[-1] - stream[-1])]
                )
            return jnp.array(out)

        # rbg keys: XLA compiles threefry slowly on CPU (~2 s per program), and the measured
        # scaling does not depend on which generator drew the N(0, 1) weights.
        return np.mean([run(jax.random.key(s, impl="rbg")) for s in range(seeds)], axis=0)

    values = np.stack([per_depth(depth) for depth in TWO_LAYER_DEPTHS])  # (depths, c, 3)
    return {c: values[:, i] for i, c in enumerate(exponents)}


# Window for fitted slopes: the layer-averaged O(1) prefactors (products like (1 + c/L)^l
# averaged over l) converge like 1 + a/L with |a| <= 1, which over L = 4..64 bends the log-log
# line by at most (1/4) / log(16) ~ 0.09; seed noise on the slope is ~0.02 per seed (measured)
# ~0.012 for 3 seeds. Window 0.1.
SLOPE_WINDOW = 0.1


def test_two_layer_first_layer_change_shrinks_under_depth_mup():
    changes = _two_layer_changes()
    for c in (0.0, 0.5):
        slope = _slope(TWO_LAYER_DEPTHS, changes[c][:, 0])
        assert abs(slope - first_layer_change_exponent(c)) < SLOPE_WINDOW, (c, slope)


def test_two_layer_second_layer_and_total_change_depth_independent():
    changes = _two_layer_changes()[0.0]
    # L x (s_l Delta W_{l,2} phi(u_l) / sqrt(n)): each block's second-layer contribution to the
    # residual stream is O(1/L), so L times it is depth-independent (slope 0).
    assert abs(_slope(TWO_LAYER_DEPTHS, changes[:, 1])) < SLOPE_WINDOW
    # The total feature change h_L^1 - h_L^0 is O(1) under depth-muP (slope 0).
    assert abs(_slope(TWO_LAYER_DEPTHS, changes[:, 2])) < SLOPE_WINDOW


def test_two_layer_correction_grows_total_change():
    """With c = 1/2 the first layers' coherent contribution to h_L, sum_l s_l W_{l,2}
    phi'(u_l) Delta u_l / sqrt(n) ~ L * L^{-1/2} * L^{c - 1/2} = L^c, grows like sqrt(L) on top
    of the O(1) second-layer part: the fitted slope lies strictly between 0 and 1/2."""
    changes = _two_layer_changes()[0.5]
    slope = _slope(TWO_LAYER_DEPTHS, changes[:, 2])
    assert SLOPE_WINDOW < slope < 0.5, slope


# ---------------------------------------------------------------------------------------------
# 7. The Result of train_finite


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_finite_result_schema(dtype):
    steps, batch, eval_size, outputs = 3, 2, 5, 2
    config = Config().replace(
        model={"outputs": outputs, "dim": 6},
        training={"steps": steps, "batch": batch},
        data={"eval_size": eval_size},
        network={"width": 16, "depth": 4},
        run={"dtype": dtype, "kernel_depths": [0.0, 0.5, 1.0]},
    )
    stream = load_stream(config)
    key = jax.random.key(14)
    result = train_finite(config, stream, key=key)
    depths = 3
    assert result.f_train.shape == (steps, batch, outputs)
    assert result.f_eval.shape == (steps + 1, eval_size, outputs)
    assert result.loss_train.shape == (steps,)
    assert result.loss_eval.shape == (steps + 1,)
    kernels = result.kernels
    assert kernels["t"] == [0.0, 0.5, 1.0] and kernels["layers"] == [0, 2, 4]
    assert kernels["feature_eval"].shape == (steps + 1, depths, eval_size, eval_size)
    assert kernels["feature_train"].shape == (steps, depths, batch, batch)
    assert kernels["grad_train"].shape == (steps, depths, batch, batch)
    arrays = [result.f_train, result.f_eval, result.loss_train, result.loss_eval]
    arrays += [kernels[k] for k in ("feature_eval", "feature_train", "grad_train")]
    for array in arrays:
        assert array.dtype == np.dtype(dtype) and np.all(np.isfinite(array))
    assert result.producer["kind"] == "finite" and result.producer["width"] == 16
    assert result.config["network"]["depth"] == 4
    assert result.meta["compile_time_s"] > 0 and result.meta["seed"] == config.run.seed

    # Step 0 is the init network: recompute it independently (the same maths, so round-off).
    rtol = 1e-5 if dtype == "float32" else 1e-12
    with jax.enable_x64(dtype == "float64"):
        model = make_network(config, key=key)
        x_eval, y_eval = jnp.asarray(stream.x_eval, dtype), jnp.asarray(stream.y_eval, dtype)
        x0, y0 = jnp.asarray(stream.x_train[0], dtype), jnp.asarray(stream.y_train[0], dtype)
        f_eval = model(x_eval)
        loss_eval = float(jnp.mean(MSE()(f_eval, y_eval)))
        assert result.loss_eval[0] == pytest.approx(loss_eval, rel=rtol)
        np.testing.assert_allclose(result.f_eval[0], f_eval, rtol=rtol)
        if dtype == "float64":
            return
        np.testing.assert_allclose(result.f_train[0], model(x0), rtol=rtol)
        _, h = residual_stream(model, x_eval)
        phi = jax.nn.relu(h[jnp.array([0, 2, 4])])
        assert _rel(kernels["feature_eval"][0], jnp.einsum("dbi,dci->dbc", phi, phi) / 16) < rtol
        g = gradient_paths(model, x0, y0, loss=MSE())[jnp.array([0, 2, 4])]
        assert _rel(kernels["grad_train"][0], jnp.einsum("dbi,dci->dbc", g, g) / 16) < rtol
        # Step 1 is the network after one sgd_step on minibatch 0.
        optimizer, opt_state = init_optimizer(config, model)
        model, _, _ = sgd_step(
            model, opt_state, x0, y0, optimizer=optimizer, loss=MSE(), layers=(0,)
        )
        np.testing.assert_allclose(result.f_eval[1], model(x_eval), rtol=rtol)


def test_training_runs_of_one_shape_share_one_compilation():
    """`train_finite` traces its step once per network shape: new seeds and learning rates reuse
    it (the optimizer is built inside the step from traced multipliers and eta)."""
    config = load_config(
        None,
        [
            "network.width=12",
            "network.depth=3",
            "training.steps=2",
            "training.batch=2",
            "data.eval_size=2",
            "model.dim=3",
        ],
    )
    stream = load_stream(config)
    train_finite(config, stream, key=jax.random.key(0))
    before = eqx.debug.get_num_traces(mup_sgd_step)
    train_finite(config.replace(training={"eta": 0.1}), stream, key=jax.random.key(1))
    train_finite(config.replace(training={"eta": 2.0}), stream, key=jax.random.key(2))
    assert eqx.debug.get_num_traces(mup_sgd_step) == before
