"""Training the finite ResNet with muP SGD: one step function, two drivers.

* `train_finite(config, stream, *, key)` runs the SGD steps one jitted call at a time (progress
  per step, compile time apart) and returns the shared `Result` schema: outputs, losses and
  kernels before every step and after the last.
* `train_scan(...)` runs the same steps under one `lax.scan` (the learning rate and the muP
  multipliers traced: one compilation per network shape serves every learning rate, exponent and
  seed) and records `recorder(model, x_eval, y_eval, loss)` at steps k = 0..K; it is what the
  sweeps (collapse, transfer, norms) and the vmapped seed ensembles use.

Both call `mup_step_record`, so they train the same network the same way.

Precision: `run.dtype = "float64"` runs `train_finite` (init included) inside
`jax.enable_x64(True)`, and `"float32"` inside `jax.enable_x64(False)`, so the dtype follows the
config whatever the global flag is. Callers of `train_scan` choose the precision themselves.
"""

import abc
import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree
from tqdm.auto import tqdm

from solvers import DepthGrid

from ..model import AbstractLoss, Config, DataStream, Result, loss_of, run_meta, to_dict
from ._optim import mup_multipliers, mup_sgd_from, trainable_parameters
from ._plan import plan_finite
from ._resnet import ResNet
from ._training import evaluate, evaluate_record, make_network, mup_sgd_step, mup_step_record


class AbstractRecorder(eqx.Module):
    """What `train_scan` records on the eval inputs at every step (static: pass equal recorders
    to share a compilation)."""

    @abc.abstractmethod
    def __call__(self, model: ResNet, x, y, loss: AbstractLoss) -> PyTree:
        """The record of `model` on the eval inputs."""


class EvalLoss(AbstractRecorder):
    """The mean eval loss."""

    def __call__(self, model, x, y, loss):
        return jnp.mean(loss(model(x), y))


class EvalKernels(AbstractRecorder):
    """Outputs, mean loss and feature kernels at `layers` (what `train_finite` records)."""

    layers: tuple[int, ...] = eqx.field(static=True)

    def __call__(self, model, x, y, loss):
        return evaluate_record(model, x, y, loss=loss, layers=self.layers)


@dataclasses.dataclass(frozen=True)
class LossCurves:
    """`loss_train` (K,): step k's minibatch loss before its update; `loss_eval` (K+1,)."""

    loss_train: np.ndarray
    loss_eval: np.ndarray


@eqx.filter_jit
@eqx.debug.assert_max_traces(max_traces=None)  # counts traces for `eqx.debug.get_num_traces`
def train_scan(
    model: ResNet,
    multipliers: PyTree,
    eta: Float[Array, ""],
    x_train: Float[Array, "steps batch dim"],
    y_train: Float[Array, "steps batch outputs"],
    x_eval: Float[Array, "eval dim"],
    y_eval: Float[Array, "eval outputs"],
    *,
    loss: AbstractLoss,
    recorder: AbstractRecorder,
    layers: tuple[int, ...] = (0,),
) -> tuple[ResNet, PyTree, PyTree]:
    """SGD steps over the minibatches under one scan. Returns the trained model, each step's
    `StepRecord` (before its update; kernels at `layers`) and `recorder`'s records at steps
    k = 0..K, stacked on a leading axis."""
    opt_state = mup_sgd_from(multipliers, eta).init(trainable_parameters(model))
    arrays, static = eqx.partition(model, eqx.is_array)

    def step(carry, batch):
        arrays, opt_state = carry
        model = eqx.combine(arrays, static)
        seen = recorder(model, x_eval, y_eval, loss)
        model, opt_state, record = mup_step_record(
            model, opt_state, *batch, multipliers, eta, loss=loss, layers=layers
        )
        return (eqx.filter(model, eqx.is_array), opt_state), (record, seen)

    (arrays, _), (steps, records) = jax.lax.scan(step, (arrays, opt_state), (x_train, y_train))
    model = eqx.combine(arrays, static)
    last = recorder(model, x_eval, y_eval, loss)
    records = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]]), records, last)
    return model, steps, records


def run_training(
    config: Config,
    stream: DataStream,
    *,
    key: PRNGKeyArray,
    steps: int | None = None,
    recorder: AbstractRecorder | None = None,
    depth_refinement: int = 1,
) -> tuple[ResNet, ResNet, PyTree, PyTree]:
    """Build the network of `config.network` from `key` and train it (`train_scan`) on the first
    `steps` minibatches of `stream` (all by default). Returns (initial model, trained model, step
    records, eval records) as NumPy arrays; `recorder` defaults to the mean eval loss. Call
    inside the precision context of `run.dtype`."""
    recorder = EvalLoss() if recorder is None else recorder
    dtype = jnp.result_type(float)
    steps = stream.steps if steps is None else steps
    plan_finite(
        config, batch=stream.batch, eval_size=len(stream.x_eval), depth_refinement=depth_refinement
    )
    model = make_network(config, key=key, depth_refinement=depth_refinement)
    trained, step_records, records = train_scan(
        model,
        mup_multipliers(config, model),
        jnp.asarray(config.training.eta, dtype),
        jnp.asarray(stream.x_train[:steps], dtype),
        jnp.asarray(stream.y_train[:steps], dtype),
        jnp.asarray(stream.x_eval, dtype),
        jnp.asarray(stream.y_eval, dtype),
        loss=loss_of(config),
        recorder=recorder,
    )
    return model, trained, jax.tree.map(np.asarray, step_records), jax.tree.map(np.asarray, records)


def train_losses(config: Config, stream: DataStream, *, key: PRNGKeyArray) -> LossCurves:
    """The loss curves `train_finite` records (same steps, same numbers), without kernels, and
    compiled once per network shape: the default trainer of the transfer sweep."""
    with jax.enable_x64(config.run.dtype == "float64"):
        _, _, step_records, loss_eval = run_training(config, stream, key=key)
    return LossCurves(loss_train=step_records.loss, loss_eval=loss_eval)


def _stack(records: list[PyTree]) -> PyTree:
    return jax.tree.map(lambda *leaves: np.stack([np.asarray(a) for a in leaves]), *records)


def _no_records(shapes: PyTree) -> PyTree:
    """Records of zero steps: empty arrays with a leading axis of length 0, shaped as `shapes`
    (a pytree of `jax.ShapeDtypeStruct`)."""
    return jax.tree.map(lambda leaf: np.zeros((0, *leaf.shape), leaf.dtype), shapes)


def train_finite(
    config: Config, stream: DataStream, *, key: PRNGKeyArray, progress: bool = False
) -> Result:
    """Train the finite network of `config.network` on `stream` and record the run (spec
    section 1; schema in `nfd_sde.model.Result`).

    `key` initialises the network, `make_network(config, key=key)`; training itself is
    deterministic. The kernels are recorded at layers l = round(t L) for t in
    `run.kernel_depths` (listed under `kernels["layers"]`). With `training.steps = 0` the result
    holds the outputs at initialisation (`f_eval` (1, P, C), `f_train` (0, B, C)). A run whose
    outputs stop being finite is a result too: `Result.status` names its first bad step. A
    network too large for `solver.memory_limit_gb` is refused first (`plan_finite`).
    """
    with jax.enable_x64(config.run.dtype == "float64"):
        return _train(config, stream, key=key, progress=progress)


def _train(config: Config, stream: DataStream, *, key: PRNGKeyArray, progress: bool) -> Result:
    plan_finite(config, batch=stream.batch, eval_size=stream.x_eval.shape[0])
    start = time.perf_counter()
    dtype = jnp.result_type(float)
    model = make_network(config, key=key)
    x_train = jnp.asarray(stream.x_train, dtype)
    y_train = jnp.asarray(stream.y_train, dtype)
    x_eval = jnp.asarray(stream.x_eval, dtype)
    y_eval = jnp.asarray(stream.y_eval, dtype)
    layers = DepthGrid(model.depth).point_indices(config.run.kernel_depths)
    static = dict(loss=loss_of(config), layers=layers)

    multipliers = mup_multipliers(config, model)
    eta = jnp.asarray(config.training.eta, dtype)
    opt_state = mup_sgd_from(multipliers, eta).init(trainable_parameters(model))

    def train_step(model, opt_state, k):
        return mup_sgd_step(model, opt_state, x_train[k], y_train[k], multipliers, eta, **static)

    # the first step and eval compile (or reuse an earlier run's compilation of these shapes)
    compile_start = time.perf_counter()
    jax.block_until_ready(evaluate(model, x_eval, y_eval, **static))
    if stream.steps:
        jax.block_until_ready(train_step(model, opt_state, 0))
    compile_time = time.perf_counter() - compile_start

    steps, evals = [], []
    for k in tqdm(range(stream.steps), disable=not progress, desc="finite SGD"):
        evals.append(evaluate(model, x_eval, y_eval, **static))
        model, opt_state, record = train_step(model, opt_state, k)
        steps.append(record)
    evals.append(evaluate(model, x_eval, y_eval, **static))
    if steps:
        steps = _stack(steps)
    else:  # no SGD step: the records' shapes are those a step would have
        x, y = (jax.ShapeDtypeStruct(a.shape[1:], dtype) for a in (x_train, y_train))

        def record(x, y):
            return mup_step_record(model, opt_state, x, y, multipliers, eta, **static)[2]

        steps = _no_records(jax.eval_shape(record, x, y))
    evals = _stack(evals)
    wall_time = time.perf_counter() - start

    meta = run_meta(config, wall_time=wall_time, compile_time_s=compile_time, data=stream.origin)
    return records_result(config, steps, evals, layers, dtype, meta=meta, kind="finite")


def records_result(config, steps, evals, layers, dtype, *, meta, kind, **producer) -> Result:
    """The `Result` of a finite run's step and eval records (single runs and ensembles alike);
    `producer` adds to the producer's record."""
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
        config=to_dict(config),
        producer={
            "kind": kind,
            "width": network.width,
            "depth": network.depth,
            "backward": network.backward,
            "block": config.model.block,
            "block_order": config.model.block_order,
            "dtype": str(np.dtype(dtype)),
            **producer,
        },
        meta=meta,
    )
