"""The collapse of the first internal layer of two-layer blocks, and the muP coordinate check.

In a two-layer block `h_l = h_{l-1} + s_l W_{l,2} phi(u_l) / sqrt(n)`, `u_l = W_{l,1}
phi(h_{l-1}) / sqrt(n)`, with `s_l = beta / sqrt(L)`, the gradient of W_{l,1} carries the branch
factor s_l once while its muP learning rate has no depth factor, so its learned pre-activation
change is

    Delta u_l = Delta W_{l,1} phi(h_{l-1}) / sqrt(n) = O(L^{c - 1/2})

when W_{l,1} learns at `eta * L^c` (c = `training.first_layer_exponent`). The block's output
change `s_l Delta W_{l,2} phi(u_l) / sqrt(n)` is O(1/L) per layer, and the total feature change
`Delta h_l` is O(1) at c = 0. `collapse_diagnostic` measures all three per layer after a few SGD
steps and fits their exponents in L; it also records the muP coordinate check (mean |h_l|,
|u_l|, |f| at every step), and `feature_norms` the rms of h_l along depth for pre- and
post-activation blocks.

`train_scan` is the training loop these diagnostics (and the transfer sweep) share: the steps of
`mup_sgd_step` under one `lax.scan`, with the learning rate and the muP multipliers traced, so one
compilation per (width, depth) serves every learning rate, exponent and seed.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from solvers._fit import fit_loglog

from ._activations import activation
from ._config import Config
from ._data import DataStream
from ._finite_training import make_network, mup_sgd_step
from ._losses import example_loss
from ._optim import mup_multipliers, mup_sgd_from, trainable_parameters
from ._resnet import ResNet

CHANGES = ("first_layer", "block_output", "total")
BLOCK_ORDERS = ("pre", "post")


@dataclasses.dataclass(frozen=True)
class LossCurves:
    """`loss_train` (K,): step k's minibatch loss before its update; `loss_eval` (K+1,)."""

    loss_train: np.ndarray
    loss_eval: np.ndarray


def eval_loss(model: ResNet, x, y, loss: str) -> Float[Array, ""]:
    """Mean loss on the eval inputs (a `record` for `train_scan`)."""
    return jnp.mean(example_loss(loss, model(x), y))


def coordinate_check(records: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The muP coordinate check from the streams recorded at steps k = 0..K: mean |h_l|
    (K+1, L+1), mean |u_l| (K+1, L; two-layer blocks) and mean |f| (K+1,) over the eval inputs
    and coordinates, and the same of the changes since step 0 (`dh`, `du`, `df`)."""
    out = {}
    for name, axes in (("h", (2, 3)), ("u", (2, 3)), ("f", (1, 2))):
        values = np.asarray(records[name])
        out[name] = np.mean(np.abs(values), axis=axes)
        out[f"d{name}"] = np.mean(np.abs(values - values[:1]), axis=axes)
    return out


def _streams(model: ResNet, x, y, loss: str) -> dict[str, Array]:
    """A `record`: outputs f, residual stream h_l and first pre-activations u_l (two-layer)."""
    del y, loss
    outputs, stream = model.residual_stream(x)
    u = _first_preactivations(model, stream)
    return {"f": outputs, "h": stream, "u": jnp.zeros((0,) + stream.shape[1:]) if u is None else u}


def _first_preactivations(model: ResNet, stream) -> Float[Array, "depth batch width"] | None:
    """u_l = W_{l,1} a_{l-1} / sqrt(n), with a_{l-1} the features the block reads."""
    if model.hidden_first is None:
        return None
    inputs = model.features(stream[:-1])
    return jnp.einsum("lij,lbj->lbi", model.hidden_first, inputs) * model.matmul_scale


@eqx.filter_jit
def train_scan(
    model: ResNet,
    multipliers: PyTree,
    eta: Float[Array, ""],
    x_train: Float[Array, "steps batch dim"],
    y_train: Float[Array, "steps batch outputs"],
    x_eval: Float[Array, "eval dim"],
    y_eval: Float[Array, "eval outputs"],
    *,
    loss: str,
    record: Callable[..., PyTree],
) -> tuple[ResNet, Float[Array, " steps"], PyTree]:
    """SGD steps (`mup_sgd_step`: multipliers and `eta` traced) over the minibatches.

    Returns the trained model, each step's minibatch loss before its update, and
    `record(model, x_eval, y_eval, loss)` at steps k = 0..K (stacked on a leading axis).
    `record` is static: pass a module-level function so that calls share one compilation.
    """
    opt_state = mup_sgd_from(multipliers, eta).init(trainable_parameters(model))
    arrays, static = eqx.partition(model, eqx.is_array)

    def step(carry, batch):
        arrays, opt_state = carry
        model = eqx.combine(arrays, static)
        seen = record(model, x_eval, y_eval, loss)
        model, opt_state, rec = mup_sgd_step(
            model, opt_state, *batch, multipliers, eta, loss=loss, layers=(0,)
        )
        return (eqx.filter(model, eqx.is_array), opt_state), (rec.loss, seen)

    (arrays, _), (loss_train, records) = jax.lax.scan(step, (arrays, opt_state), (x_train, y_train))
    model = eqx.combine(arrays, static)
    last = record(model, x_eval, y_eval, loss)
    records = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), records, last)
    return model, loss_train, records


def run_training(
    config: Config,
    stream: DataStream,
    *,
    key: PRNGKeyArray,
    steps: int | None = None,
    record: Callable[..., PyTree] = eval_loss,
) -> tuple[ResNet, ResNet, np.ndarray, PyTree]:
    """Build the network of `config.network` from `key` and train it on the first `steps`
    minibatches of `stream` (all by default). Returns (initial model, trained model, minibatch
    losses, records). Call inside the precision context of `config.run.dtype`."""
    dtype = jnp.result_type(float)
    steps = stream.steps if steps is None else steps
    model = make_network(config, key=key)
    multipliers = mup_multipliers(config, model)
    trained, loss_train, records = train_scan(
        model,
        multipliers,
        jnp.asarray(config.training.eta, dtype),
        jnp.asarray(stream.x_train[:steps], dtype),
        jnp.asarray(stream.y_train[:steps], dtype),
        jnp.asarray(stream.x_eval, dtype),
        jnp.asarray(stream.y_eval, dtype),
        loss=config.training.loss,
        record=record,
    )
    return model, trained, np.asarray(loss_train), jax.tree.map(np.asarray, records)


def train_losses(config: Config, stream: DataStream, *, key: PRNGKeyArray) -> LossCurves:
    """The loss curves `train_finite` records (same steps, same numbers), without kernels, and
    compiled once per network shape: the default trainer of the transfer sweep."""
    with jax.enable_x64(config.run.dtype == "float64"):
        _, _, loss_train, loss_eval = run_training(config, stream, key=key)
    return LossCurves(loss_train=loss_train, loss_eval=loss_eval)


def layer_changes(
    initial: ResNet,
    trained: ResNet,
    stream: Float[Array, "depth+1 eval width"],
    new_stream: Float[Array, "depth+1 eval width"],
) -> dict[str, np.ndarray]:
    """Per-layer rms (over inputs and coordinates) of the learned changes, features at init:

    `first_layer` (L,): Delta W_{l,1} a_{l-1} / sqrt(n); `block_output` (L,): s_l Delta W_{l,2}
    phi(u_l) / sqrt(n); `total` (L+1,): h_l(trained) - h_l(initial), l = 0..L; `stream` and
    `new_stream` are the residual streams of `initial` and `trained` on the same inputs. Plain
    array operations (no compilation per depth).
    """
    stream, new_stream = np.asarray(stream), np.asarray(new_stream)
    inputs = np.asarray(initial.features(stream[:-1]))
    first = np.asarray(initial.hidden_first)
    u = np.einsum("lij,lbj->lbi", first, inputs) * initial.matmul_scale
    phi_u = np.asarray(activation(initial.activation)(u))
    delta_first = np.asarray(trained.hidden_first) - first
    delta_u = np.einsum("lij,lbj->lbi", delta_first, inputs) * initial.matmul_scale
    delta_second = np.asarray(trained.hidden) - np.asarray(initial.hidden)
    block = np.einsum("lij,lbj->lbi", delta_second, phi_u) * initial.matmul_scale
    block = np.asarray(initial.branch_scales)[:, None, None] * block

    def rms(a):
        return np.sqrt(np.mean(a**2, axis=(1, 2)))

    return {
        "first_layer": rms(delta_u),
        "block_output": rms(block),
        "total": rms(new_stream - stream),
    }


def stream_rms(model: ResNet, x, y, loss: str) -> Float[Array, " depth+1"]:
    """rms over inputs and coordinates of h_l, l = 0..L (a `record` for `train_scan`)."""
    del y, loss
    _, stream = model.residual_stream(x)
    return jnp.sqrt(jnp.mean(stream**2, axis=(1, 2)))


def _norms_and_loss(model: ResNet, x, y, loss: str) -> dict[str, Array]:
    return {"rms": stream_rms(model, x, y, loss), "loss": eval_loss(model, x, y, loss)}


def collapse_diagnostic(
    config: Config,
    stream: DataStream,
    *,
    depths: Sequence[int],
    exponents: Sequence[float],
    widths: Sequence[int],
    seeds: int,
    steps: int,
    key: PRNGKeyArray,
) -> dict[str, Any]:
    """Train two-layer-block networks for `steps` SGD steps and measure the learned changes.

    For every width n, depth L, exponent c (`training.first_layer_exponent`) and seed (the same
    initial weights for every c), the per-layer rms of `first_layer`, `block_output` and `total`
    changes (`layer_changes`, on the eval inputs) and the coordinate check (`coordinate_check`,
    steps 0..K). Per seed they are aggregated over layers as

        first_layer:  rms_l Delta u_l                     (expected ~ L^{c - 1/2})
        block_output: L * rms_l s_l Delta W_{l,2} phi(u_l) / sqrt(n)   (expected ~ L^0)
        total:        rms Delta h_L                       (O(1) at c = 0)

    and `slopes` fits the seed mean of each against L (`fit_loglog`), with `seed_se` the
    standard error of the per-seed slopes (no slopes for a single depth). `model.block` is set
    to "two_layer".
    """
    depths, widths = _sizes("depths", depths), _sizes("widths", widths)
    exponents = _exponents(exponents)
    _count("seeds", seeds)
    _count("steps", steps)
    if steps > stream.steps:
        raise ValueError(f"steps={steps}: the data stream has only {stream.steps} minibatches")
    config = config.replace(model={"block": "two_layer"})
    seed_keys = jax.random.split(key, seeds)
    runs = []
    with jax.enable_x64(config.run.dtype == "float64"):
        for width in widths:
            for depth in depths:
                sized = config.replace(network={"width": width, "depth": depth})
                for c in exponents:
                    run_config = sized.replace(training={"first_layer_exponent": c})
                    per_seed = [
                        _collapse_run(run_config, stream, steps=steps, key=k) for k in seed_keys
                    ]
                    runs.append(_collect(per_seed, width=width, depth=depth, c=c))
    slopes = [
        _fit_changes([r for r in runs if r["width"] == n and r["c"] == c], depths, n, c)
        for n in widths
        for c in exponents
        if len(depths) > 1
    ]
    return {
        "depths": list(depths),
        "widths": list(widths),
        "exponents": list(exponents),
        "seeds": seeds,
        "steps": steps,
        "runs": runs,
        "slopes": [s for group in slopes for s in group],
    }


def _collapse_run(config: Config, stream: DataStream, *, steps: int, key) -> dict[str, Any]:
    initial, trained, _, records = run_training(
        config, stream, key=key, steps=steps, record=_streams
    )
    changes = layer_changes(initial, trained, records["h"][0], records["h"][-1])
    depth = config.network.depth
    aggregate = {
        "first_layer": _rms(changes["first_layer"]),
        "block_output": depth * _rms(changes["block_output"]),
        "total": float(changes["total"][-1]),
    }
    return {"layers": changes, "aggregate": aggregate, "coordinates": coordinate_check(records)}


def _collect(per_seed: list[dict], *, width: int, depth: int, c: float) -> dict[str, Any]:
    def mean(get):
        return np.mean([get(run) for run in per_seed], axis=0)

    return {
        "width": width,
        "depth": depth,
        "c": c,
        "layers": {name: mean(lambda r, n=name: r["layers"][n]) for name in CHANGES},
        "aggregate": {name: [run["aggregate"][name] for run in per_seed] for name in CHANGES},
        "coordinates": {
            name: mean(lambda r, n=name: r["coordinates"][n])
            for name in ("h", "u", "f", "dh", "du", "df")
        },
    }


def _fit_changes(runs: list[dict], depths, width: int, c: float) -> list[dict[str, Any]]:
    expected = {"first_layer": c - 0.5, "block_output": 0.0, "total": None}
    fits = []
    for name in CHANGES:
        values = np.array([r["aggregate"][name] for r in runs])  # (depths, seeds)
        fit = fit_loglog(depths, values.mean(axis=1))
        per_seed = [fit_loglog(depths, values[:, s]).slope for s in range(values.shape[1])]
        seed_se = (
            float(np.std(per_seed, ddof=1) / math.sqrt(len(per_seed)))
            if len(per_seed) > 1
            else math.inf
        )
        fits.append(
            {
                "width": width,
                "c": c,
                "quantity": name,
                "slope": fit.slope,
                "stderr": fit.slope_stderr,
                "ci95": list(fit.ci95),
                "seed_se": seed_se,
                "expected": expected[name],
                "prefactor": fit.prefactor,
            }
        )
    return fits


def feature_norms(
    config: Config,
    stream: DataStream,
    *,
    depths: Sequence[int],
    width: int,
    seeds: int,
    key: PRNGKeyArray,
    block_orders: Sequence[str] = BLOCK_ORDERS,
) -> dict[str, Any]:
    """rms of h_l along depth, l = 0..L, for each block order and depth, at init and after
    training on the whole stream at `training.eta` (mean over seeds; the same initial weights
    for both orders). The block type (one- or two-layer) is the config's."""
    depths = _sizes("depths", depths)
    _count("width", width)
    _count("seeds", seeds)
    for order in block_orders:
        if order not in BLOCK_ORDERS:
            raise ValueError(f"block_orders: {order!r} is not one of {BLOCK_ORDERS}")
    seed_keys = jax.random.split(key, seeds)
    runs = []
    with jax.enable_x64(config.run.dtype == "float64"):
        for order in block_orders:
            for depth in depths:
                sized = config.replace(
                    model={"block_order": order}, network={"width": width, "depth": depth}
                )
                norms, losses = [], []
                for seed_key in seed_keys:
                    _, _, _, records = run_training(
                        sized, stream, key=seed_key, record=_norms_and_loss
                    )
                    norms.append(records["rms"])
                    losses.append(records["loss"][-1])
                norms = np.mean(norms, axis=0)
                runs.append(
                    {
                        "block_order": order,
                        "depth": depth,
                        "init": norms[0],
                        "trained": norms[-1],
                        "final_eval_loss": float(np.mean(losses)),
                    }
                )
    return {"depths": list(depths), "width": width, "seeds": seeds, "runs": runs}


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))


def _sizes(name: str, values: Sequence[int], *, minimum: int = 1) -> tuple[int, ...]:
    values = tuple(values)
    if len(values) < minimum:
        raise ValueError(f"{name}: need at least {minimum} value(s), got {list(values)}")
    for v in values:
        _count(name, v)
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: values must be distinct, got {list(values)}")
    return tuple(sorted(values))


def _exponents(values: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(f"exponents: need finite numbers, got {list(values)}")
    if len(set(values)) != len(values):
        raise ValueError(f"exponents: values must be distinct, got {list(values)}")
    return values


def _count(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}={value!r}: must be an integer >= 1")
