"""One muP SGD step of the finite ResNet, and the jit-friendly pieces it is made of.

* `make_network(config, *, key)`: the ResNet of `config.network` (width, depth, backward may be
  overridden).
* `network_outputs(model, x)`: f(x) for a batch.
* `gradient_paths(model, x, y, *, loss)`: g_l(x) = gamma0 n d ell(f(x), y) / d h_l, l = 0..L,
  along the network's own backward pass (decoupled for a decoupled network).
* `sgd_step(model, opt_state, x, y, *, optimizer, loss, layers)`: one muP SGD step on the
  minibatch mean loss, with the outputs and kernels of the network *before* the update.
* `mup_sgd_step(model, opt_state, x, y, multipliers, eta, *, loss, layers)`: the same step with
  the muP SGD transformation built inside from traced multipliers and learning rate, so repeated
  runs of the same shapes share one compilation.
* `evaluate(model, x, y, *, loss, layers)`: outputs, mean loss and feature kernels.

`loss` is an `AbstractLoss` and `layers` a tuple of layer indices (both static).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..model import AbstractBackwardMode, AbstractLoss, Config
from ._optim import mup_sgd, mup_sgd_from, trainable_parameters
from ._resnet import ResNet


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
    backward: "str | AbstractBackwardMode | None" = None,
    key: PRNGKeyArray,
    depth_refinement: int = 1,
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
        depth_refinement=depth_refinement,
    )


def _gram(a: Float[Array, "*layers batch width"]) -> Float[Array, "*layers batch batch"]:
    """<a(x), a(x')>_n over the last axis."""
    return jnp.einsum("...bi,...ci->...bc", a, a) / a.shape[-1]


def _summed_loss(differentiable, rest, x, y, loss):
    params, probes = differentiable
    model = eqx.combine(params, rest)
    outputs, stream = model.residual_stream(x, probes)
    per_example = loss(outputs, y)
    return jnp.sum(per_example), (outputs, stream, per_example)


def _backward_pass(model: ResNet, x, y, loss: AbstractLoss):
    """Summed-loss gradients for the trainable parameters and for zero probes on every h_l.

    Each example's loss depends only on its own stream, so the probe gradient of the summed
    loss is the per-example d ell_b / d h_l(x_b).
    """
    params, rest = eqx.partition(model, model.trainable_filter())
    probes = jnp.zeros((model.depth + 1, x.shape[0], model.width), model.readin.dtype)
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
    model: ResNet, x: Float[Array, "batch dim"], y: Float[Array, "batch outputs"], *, loss
) -> Float[Array, "depth+1 batch width"]:
    """g_l(x) = gamma0 n d ell(f(x), y) / d h_l(x) for l = 0..L, per example."""
    return _backward_pass(model, x, y, loss)[1]


@eqx.filter_jit
def residual_stream(
    model: ResNet, x: Float[Array, "batch dim"]
) -> tuple[Float[Array, "batch outputs"], Float[Array, "depth+1 batch width"]]:
    """Outputs and the residual stream h_l(x), l = 0..L."""
    return model.residual_stream(x)


def sgd_step_record(model, opt_state, x, y, *, optimizer, loss, layers):
    """`sgd_step` without the jit boundary (for use inside other traced functions)."""
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
def sgd_step(
    model: ResNet,
    opt_state: optax.OptState,
    x: Float[Array, "batch dim"],
    y: Float[Array, "batch outputs"],
    *,
    optimizer: optax.GradientTransformation,
    loss: AbstractLoss,
    layers: tuple[int, ...],
) -> tuple[ResNet, optax.OptState, StepRecord]:
    """One SGD step on the minibatch mean of ell; the record is taken before the update.

    `layers` are the layer indices at which the feature kernel <phi(h_l), phi(h_l)>_n and the
    gradient kernel <g_l, g_l>_n are recorded.
    """
    return sgd_step_record(model, opt_state, x, y, optimizer=optimizer, loss=loss, layers=layers)


def mup_step_record(model, opt_state, x, y, multipliers, eta, *, loss, layers):
    """`mup_sgd_step` without the jit boundary."""
    optimizer = mup_sgd_from(multipliers, eta)
    return sgd_step_record(model, opt_state, x, y, optimizer=optimizer, loss=loss, layers=layers)


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
    loss: AbstractLoss,
    layers: tuple[int, ...],
) -> tuple[ResNet, optax.OptState, StepRecord]:
    """`sgd_step` with `mup_sgd_from(multipliers, eta)`; every argument but `loss` and `layers`
    is traced, so one compilation serves all runs of the same shapes."""
    return mup_step_record(model, opt_state, x, y, multipliers, eta, loss=loss, layers=layers)


def evaluate_record(model: ResNet, x, y, *, loss: AbstractLoss, layers) -> EvalRecord:
    outputs, stream = model.residual_stream(x)
    return EvalRecord(
        outputs=outputs,
        loss=jnp.mean(loss(outputs, y)),
        feature_kernel=_gram(model.features(stream[jnp.asarray(layers)])),
    )


@eqx.filter_jit
def evaluate(
    model: ResNet,
    x: Float[Array, "eval dim"],
    y: Float[Array, "eval outputs"],
    *,
    loss: AbstractLoss,
    layers: tuple[int, ...],
) -> EvalRecord:
    """Outputs, mean loss and the feature kernels at `layers` on a fixed set of inputs."""
    return evaluate_record(model, x, y, loss=loss, layers=layers)


def init_optimizer(
    config: Config, model: ResNet
) -> tuple[optax.GradientTransformation, optax.OptState]:
    """The muP SGD transformation for `model` and its initial state."""
    optimizer = mup_sgd(config, model)
    return optimizer, optimizer.init(trainable_parameters(model))
