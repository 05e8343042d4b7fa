"""Seed ensembles of the finite network, trained at once.

`train_ensemble(config, stream, *, keys)` builds one network per key,
`make_network(config, key=keys[s], depth_refinement=r)`, and trains them together: `train_scan`
(one `lax.scan` over the SGD steps) vmapped over the members. It returns `train_finite`'s
records (outputs and losses before every step and after the last, kernels at the recorded
layers) as a `Result` whose every array has a leading member axis; member s is the run
`train_finite(config, stream, key=keys[s])` would give, to round-off.

* `antithetic=True` gives each key two members, 2s and 2s + 1: the network and its mirror with
  the readout v negated. v and -v have the same law (every weight is N(0, 1)), so each member is
  a draw of the network; the pair's mean has the same expectation, but the part of the outputs
  that is odd in v (the output at initialisation and what training carries of it, most of a
  network's fluctuation) cancels in it.
* `depth_refinement=r` builds each layer's initial weights from r layers of a depth-rL draw
  (`make_network`), so ensembles of depths L and rL from the same keys share their noise.
* Members are trained in chunks of `chunk` keys, the last one padded, so one compilation serves
  every chunk of the same shapes and memory stays bounded (default: about `MEMORY_BYTES`).
"""

import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from solvers import DepthGrid, shard_leading_axis

from ..model import AbstractLoss, Config, DataStream, Result, loss_of, run_meta
from ._optim import mup_multipliers
from ._plan import network_bytes, plan_finite
from ._resnet import ResNet
from ._trainer import (
    AbstractRecorder,
    EvalKernels,
    EvalLoss,
    LossCurves,
    records_result,
    train_scan,
)
from ._training import make_network

MEMORY_BYTES = 2**29  # the default chunk keeps the members' weights and gradients near 512 MiB
MAX_CHUNK = 256


def ensemble_networks(
    config: Config, *, keys: PRNGKeyArray, depth_refinement: int = 1, antithetic: bool = False
) -> ResNet:
    """The networks of `keys` (and their mirrors, interleaved, with `antithetic`), stacked along
    a leading member axis of every array."""
    models = jax.vmap(lambda k: make_network(config, key=k, depth_refinement=depth_refinement))(
        keys
    )
    if not antithetic:
        return models
    mirrors = eqx.tree_at(lambda m: m.readout, models, -models.readout)
    arrays, static = eqx.partition(models, eqx.is_array)
    mirrored = eqx.filter(mirrors, eqx.is_array)

    def interleave(a, b):
        return jnp.stack([a, b], axis=1).reshape(-1, *a.shape[1:])

    return eqx.combine(jax.tree.map(interleave, arrays, mirrored), static)


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces for `eqx.debug.get_num_traces`
def train_members(
    models: ResNet,
    multipliers: PyTree,
    eta: Float[Array, ""],
    x_train: Float[Array, "steps batch dim"],
    y_train: Float[Array, "steps batch outputs"],
    x_eval: Float[Array, "eval dim"],
    y_eval: Float[Array, "eval outputs"],
    *,
    loss: AbstractLoss,
    layers: tuple[int, ...],
    recorder: AbstractRecorder | None = None,
) -> tuple[PyTree, PyTree]:
    """`train_scan` vmapped over the leading member axis of `models`: (step records, eval
    records at steps k = 0..K), each with a leading member axis. `recorder` defaults to
    `EvalKernels(layers)`."""
    recorder = EvalKernels(layers) if recorder is None else recorder

    def one(model):
        inputs = (x_train, y_train, x_eval, y_eval)
        _, steps, evals = train_scan(
            model, multipliers, eta, *inputs, loss=loss, recorder=recorder, layers=layers
        )
        return steps, evals

    return eqx.filter_vmap(one)(models)


def default_chunk(config: Config, *, depth_refinement: int = 1, antithetic: bool = False) -> int:
    """Keys per vmapped call: the members' weights, backward offsets, gradients and initial draws
    within about `MEMORY_BYTES` (at least 1, at most `MAX_CHUNK`; `network_bytes`)."""
    per_key = network_bytes(config, depth_refinement=depth_refinement, antithetic=antithetic)
    return int(np.clip(MEMORY_BYTES // max(per_key, 1), 1, MAX_CHUNK))


def train_ensemble(
    config: Config,
    stream: DataStream,
    *,
    keys: PRNGKeyArray,
    depth_refinement: int = 1,
    antithetic: bool = False,
    chunk: int | None = None,
) -> Result:
    """Train the networks of `config.network`, one per key (two with `antithetic`), on `stream`;
    returns `train_finite`'s `Result` with a leading member axis on every array (module
    docstring). `chunk` keys are trained per vmapped call."""
    with jax.enable_x64(config.run.dtype == "float64"):
        return _train(config, stream, keys, depth_refinement, antithetic, chunk)


def _train(config, stream, keys, refinement, antithetic, chunk) -> Result:
    start = time.perf_counter()
    dtype = jnp.result_type(float)
    seeds = int(keys.shape[0])
    if seeds < 1:
        raise ValueError("train_ensemble needs at least one key")
    chunk = chunk or default_chunk(config, depth_refinement=refinement, antithetic=antithetic)
    chunk = min(chunk, seeds)
    plan_finite(config, batch=stream.batch, eval_size=stream.x_eval.shape[0], members=chunk,
                depth_refinement=refinement, antithetic=antithetic)  # fmt: skip
    layers = DepthGrid(config.network.depth).point_indices(config.run.kernel_depths)
    multipliers, eta, data = _shared_inputs(config, stream, keys[0])
    parts, compile_time = [], None
    for first in range(0, seeds, chunk):
        batch = keys[first : first + chunk]
        used = batch.shape[0]
        if used < chunk:  # pad with repeats: every call has the same shapes (one compilation)
            batch = jnp.concatenate([batch, jnp.repeat(batch[:1], chunk - used, axis=0)])
        models = ensemble_networks(
            config, keys=batch, depth_refinement=refinement, antithetic=antithetic
        )
        models = shard_leading_axis(models)
        tick = time.perf_counter()
        out = train_members(models, multipliers, eta, *data, loss=loss_of(config), layers=layers)
        out = jax.tree.map(np.asarray, out)
        if compile_time is None:
            compile_time = time.perf_counter() - tick
        members = used * (2 if antithetic else 1)
        parts.append(jax.tree.map(lambda a, m=members: a[:m], out))
    steps, evals = jax.tree.map(lambda *a: np.concatenate(a), *parts)
    meta = run_meta(config, wall_time=time.perf_counter() - start, compile_time_s=compile_time)
    return records_result(
        config,
        steps,
        evals,
        layers,
        dtype,
        meta=meta,
        kind="finite_ensemble",
        seeds=seeds,
        members=seeds * (2 if antithetic else 1),
        antithetic=antithetic,
        depth_refinement=refinement,
        chunk=chunk,
    )


def train_losses_ensemble(config: Config, stream: DataStream, *, keys: PRNGKeyArray) -> LossCurves:
    """`train_losses` for every key of `keys` in one vmapped scan, the members split over the
    visible devices (`solvers.shard_leading_axis`): loss curves with a leading key axis, the
    same numbers as one `train_losses` call per key up to float round-off."""
    plan_finite(config, batch=stream.batch, eval_size=stream.x_eval.shape[0], members=len(keys))
    with jax.enable_x64(config.run.dtype == "float64"):
        models = shard_leading_axis(ensemble_networks(config, keys=keys))
        multipliers, eta, data = _shared_inputs(config, stream, keys[0])
        steps, loss_eval = train_members(
            models, multipliers, eta, *data, loss=loss_of(config), layers=(0,), recorder=EvalLoss()
        )
    return LossCurves(loss_train=np.asarray(steps.loss), loss_eval=np.asarray(loss_eval))


def _shared_inputs(config: Config, stream: DataStream, key: PRNGKeyArray):
    """What every member shares, in the working precision: the muP multipliers (of the network
    `key` builds; they depend on its shapes only), the learning rate, and the data arrays."""
    dtype = jnp.result_type(float)
    data = [
        jnp.asarray(a, dtype)
        for a in (stream.x_train, stream.y_train, stream.x_eval, stream.y_eval)
    ]
    multipliers = mup_multipliers(config, make_network(config, key=key))
    return multipliers, jnp.asarray(config.training.eta, dtype), data
