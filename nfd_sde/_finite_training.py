"""Training the finite ResNet with muP SGD, and the jit-friendly pieces it is made of.

Low-level API (all jitted at this boundary; pass the same static arguments and the step does
not retrace):

* `make_network(config, *, key)`: the ResNet of `config.network` (width, depth, backward may be
  overridden).
* `network_outputs(model, x)`: f(x) for a batch.
* `gradient_paths(model, x, y, *, loss)`: g_l(x) = gamma0 n d ell(f(x), y) / d h_l, l = 0..L,
  along the network's own backward pass (decoupled for a decoupled network).
* `sgd_step(model, opt_state, x, y, *, optimizer, loss, layers)`: one muP SGD step on the
  minibatch mean loss, with the outputs and kernels of the network *before* the update.
* `mup_sgd_step(model, opt_state, x, y, multipliers, eta, *, loss, layers)`: the same step with
  the muP SGD transformation built inside from traced multipliers and learning rate, so repeated
  runs of the same shapes share one compilation (what `train_finite` uses).
* `evaluate(model, x, y, *, loss, layers)`: outputs, mean loss and feature kernels.

`train_finite(config, stream, *, key)` drives these over a `DataStream` and returns a `Result`.

Precision: `run.dtype = "float64"` runs the whole of `train_finite` (init included) inside
`jax.enable_x64(True)`, and `"float32"` inside `jax.enable_x64(False)`, so the dtype follows the
config whatever the global `jax_enable_x64` flag is. Callers of the low-level API choose the
precision themselves (the model's dtype is the default float dtype at construction).
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree
from tqdm.auto import tqdm

from ._config import Config
from ._data import DataStream
from ._losses import example_loss
from ._optim import mup_multipliers, mup_sgd, mup_sgd_from, trainable_parameters
from ._resnet import ResNet, layer_indices
from ._result import Result, resolved_config, run_meta


class StepRecord(eqx.Module):
    """What a training step saw on its minibatch, before its update."""

    outputs: Float[Array, "batch outputs"]
    loss: Float[Array, ""]
    feature_kernel: Float[Array, "layers batch batch"]
    grad_kernel: Float[Array, "layers batch batch"]


class EvalRecord(eqx.Module):
    """Outputs, mean loss and feature kernels on a fixed set of inputs."""

    outputs: Float[Array, "eval outputs"]
    loss: Float[Array, ""]
    feature_kernel: Float[Array, "layers eval eval"]


def make_network(
    config: Config,
    *,
    width: int | None = None,
    depth: int | None = None,
    backward: str | None = None,
    key: PRNGKeyArray,
) -> ResNet:
    """The ResNet that `config` describes; `width`, `depth`, `backward` default to
    `config.network`'s."""
    network = config.network
    return ResNet(
        config,
        width=network.width if width is None else width,
        depth=network.depth if depth is None else depth,
        backward=network.backward if backward is None else backward,
        key=key,
    )


def _gram(a: Float[Array, "*layers batch width"]) -> Float[Array, "*layers batch batch"]:
    """<a(x), a(x')>_n over the last axis."""
    return jnp.einsum("...bi,...ci->...bc", a, a) / a.shape[-1]


def _summed_loss(differentiable, rest, x, y, loss):
    params, probes = differentiable
    model = eqx.combine(params, rest)
    outputs, stream = model.residual_stream(x, probes)
    per_example = example_loss(loss, outputs, y)
    return jnp.sum(per_example), (outputs, stream, per_example)


def _backward_pass(model: ResNet, x, y, loss):
    """Summed-loss gradients for the trainable parameters and for zero probes on every h_l.

    Each example's loss depends only on its own stream, so the probe gradient of the summed
    loss is the per-example d ell_b / d h_l(x_b).
    """
    params, rest = eqx.partition(model, model.trainable_filter())
    probes = jnp.zeros((model.depth + 1, x.shape[0], model.width), model.hidden.dtype)
    grads, (outputs, stream, per_example) = jax.grad(_summed_loss, has_aux=True)(
        (params, probes), rest, x, y, loss
    )
    param_grads, probe_grads = grads
    # d ell / d h_l times gamma0 n, where readout_scale = 1 / (gamma0 n).
    paths = probe_grads / model.readout_scale
    return param_grads, paths, outputs, stream, per_example


@eqx.filter_jit
def network_outputs(model: ResNet, x: Float[Array, "batch dim"]) -> Float[Array, "batch outputs"]:
    """f(x) for a batch of inputs."""
    return model(x)


@eqx.filter_jit
def gradient_paths(
    model: ResNet, x: Float[Array, "batch dim"], y: Float[Array, "batch outputs"], *, loss: str
) -> Float[Array, "depth+1 batch width"]:
    """g_l(x) = gamma0 n d ell(f(x), y) / d h_l(x) for l = 0..L, per example."""
    return _backward_pass(model, x, y, loss)[1]


@eqx.filter_jit
def residual_stream(
    model: ResNet, x: Float[Array, "batch dim"]
) -> tuple[Float[Array, "batch outputs"], Float[Array, "depth+1 batch width"]]:
    """Outputs and the residual stream h_l(x), l = 0..L."""
    return model.residual_stream(x)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces for `eqx.debug.get_num_traces`
def sgd_step(
    model: ResNet,
    opt_state: optax.OptState,
    x: Float[Array, "batch dim"],
    y: Float[Array, "batch outputs"],
    *,
    optimizer: optax.GradientTransformation,
    loss: str,
    layers: tuple[int, ...],
) -> tuple[ResNet, optax.OptState, StepRecord]:
    """One SGD step on the minibatch mean of ell; the record is taken before the update.

    `layers` are the layer indices at which the feature kernel <phi(h_l), phi(h_l)>_n and the
    gradient kernel <g_l, g_l>_n are recorded.
    """
    param_grads, paths, outputs, stream, per_example = _backward_pass(model, x, y, loss)
    batch = x.shape[0]
    mean_grads = jax.tree.map(lambda g: g / batch, param_grads)
    updates, opt_state = optimizer.update(mean_grads, opt_state, trainable_parameters(model))
    index = jnp.asarray(layers)
    record = StepRecord(
        outputs=outputs,
        loss=jnp.mean(per_example),
        feature_kernel=_gram(model.features(stream[index])),
        grad_kernel=_gram(paths[index]),
    )
    return eqx.apply_updates(model, updates), opt_state, record


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces for `eqx.debug.get_num_traces`
def mup_sgd_step(
    model: ResNet,
    opt_state: optax.OptState,
    x: Float[Array, "batch dim"],
    y: Float[Array, "batch outputs"],
    multipliers: PyTree,
    eta: Float[Array, ""],
    *,
    loss: str,
    layers: tuple[int, ...],
) -> tuple[ResNet, optax.OptState, StepRecord]:
    """`sgd_step` with `mup_sgd_from(multipliers, eta)`; every argument but `loss` and `layers`
    is traced, so one compilation serves all runs of the same shapes."""
    optimizer = mup_sgd_from(multipliers, eta)
    return sgd_step(model, opt_state, x, y, optimizer=optimizer, loss=loss, layers=layers)


@eqx.filter_jit
def evaluate(
    model: ResNet,
    x: Float[Array, "eval dim"],
    y: Float[Array, "eval outputs"],
    *,
    loss: str,
    layers: tuple[int, ...],
) -> EvalRecord:
    """Outputs, mean loss and the feature kernels at `layers` on a fixed set of inputs."""
    outputs, stream = model.residual_stream(x)
    return EvalRecord(
        outputs=outputs,
        loss=jnp.mean(example_loss(loss, outputs, y)),
        feature_kernel=_gram(model.features(stream[jnp.asarray(layers)])),
    )


def init_optimizer(
    config: Config, model: ResNet
) -> tuple[optax.GradientTransformation, optax.OptState]:
    """The muP SGD transformation for `model` and its initial state."""
    optimizer = mup_sgd(config, model)
    return optimizer, optimizer.init(trainable_parameters(model))


def _stack(records: list[PyTree]) -> PyTree:
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(a) for a in leaves]), *records)


def train_finite(
    config: Config, stream: DataStream, *, key: PRNGKeyArray, progress: bool = False
) -> Result:
    """Train the finite network of `config.network` on `stream` and record the run (spec
    section 1; schema in `_result`).

    `key` initialises the network, `make_network(config, key=key)`; training itself is
    deterministic. The kernels are recorded at layers l = round(t L) for t in
    `run.kernel_depths` (listed under `kernels["layers"]`).
    """
    with jax.enable_x64(config.run.dtype == "float64"):
        return _train(config, stream, key=key, progress=progress)


def _train(config: Config, stream: DataStream, *, key: PRNGKeyArray, progress: bool) -> Result:
    start = time.perf_counter()
    dtype = jnp.result_type(float)
    model = make_network(config, key=key)
    x_train = jnp.asarray(stream.x_train, dtype)
    y_train = jnp.asarray(stream.y_train, dtype)
    x_eval = jnp.asarray(stream.x_eval, dtype)
    y_eval = jnp.asarray(stream.y_eval, dtype)
    layers = layer_indices(config.run.kernel_depths, model.depth)
    loss = config.training.loss
    static = dict(loss=loss, layers=layers)

    multipliers = mup_multipliers(config, model)
    eta = jnp.asarray(config.training.eta, dtype)
    opt_state = mup_sgd_from(multipliers, eta).init(trainable_parameters(model))

    def train_step(model, opt_state, k):
        return mup_sgd_step(model, opt_state, x_train[k], y_train[k], multipliers, eta, **static)

    # the first step and eval compile (or reuse an earlier run's compilation of these shapes)
    compile_start = time.perf_counter()
    jax.block_until_ready(evaluate(model, x_eval, y_eval, **static))
    jax.block_until_ready(train_step(model, opt_state, 0))
    compile_time = time.perf_counter() - compile_start

    steps, evals = [], []
    for k in tqdm(range(stream.steps), disable=not progress, desc="finite SGD"):
        evals.append(evaluate(model, x_eval, y_eval, **static))
        model, opt_state, record = train_step(model, opt_state, k)
        steps.append(record)
    evals.append(evaluate(model, x_eval, y_eval, **static))
    steps, evals = _stack(steps), _stack(evals)
    wall_time = time.perf_counter() - start

    network = config.network
    return Result(
        f_train=steps.outputs,
        f_eval=evals.outputs,
        loss_train=steps.loss,
        loss_eval=evals.loss,
        kernels={
            "t": list(config.run.kernel_depths),
            "layers": list(layers),
            "feature_eval": evals.feature_kernel,
            "feature_train": steps.feature_kernel,
            "grad_train": steps.grad_kernel,
        },
        config=resolved_config(config),
        producer={
            "kind": "finite",
            "width": network.width,
            "depth": network.depth,
            "backward": network.backward,
            "block": config.model.block,
            "block_order": config.model.block_order,
            "dtype": str(np.dtype(dtype)),
        },
        meta=run_meta(config, wall_time=wall_time, compile_time_s=compile_time),
    )
