"""The NFD limit solver: N Monte Carlo particles through K SGD steps of the decoupled system.

Each particle is one neuron. It carries its input row U (dim,), readout V (outputs,), and, for
every training pair (step j, input b), the stored forward features phi(H^j_m) and loss-gradient
paths G^j_{m+1} on the depth grid. One SGD step k:
  1. forward sweep (t: 0 -> 1) of the minibatch and the eval inputs, conditioned on the history;
  2. outputs f^k = E[V phi(H_1)] / gamma0, loss derivatives chi;
  3. backward sweep (t: 1 -> 0) of the minibatch's loss-gradient paths;
  4. updates of U and V, and the minibatch's paths appended to the history.
Eval inputs are noise pairs conditioned on every stored training pair and on each other; nothing
is conditioned on them (no reported quantity depends on the joint law of eval inputs at different
steps), so they are not stored.
"""

import functools
import math
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int, PRNGKeyArray
from tqdm.auto import tqdm

from solvers import (
    AbstractMatrixSource,
    DepthGrid,
    KeyedGaussianMatrices,
    append_factor_rows,
    conditional_factor,
    particle_gram,
    sweep,
)

from ._activations import activation, activation_derivative
from ._config import Config
from ._data import DataStream
from ._limit_plan import LimitPlan, plan_limit
from ._limit_terms import FieldNoise, StepCoefficients, backward_terms, forward_terms
from ._losses import example_loss, loss_derivative
from ._result import Result, resolved_config, run_meta
from ._scales import effective_eta


class LimitState(eqx.Module):
    """Particles after k SGD steps: parameters and the stored training-pair history."""

    readin: Float[Array, "particles dim"]
    readout: Float[Array, "particles outputs"]
    features: Float[Array, "steps particles stored"]
    grads: Float[Array, "steps particles stored"]
    forward_noise: FieldNoise | None
    backward_noise: FieldNoise | None


class StepOutputs(eqx.Module):
    f_train: Float[Array, "batch outputs"]
    f_eval: Float[Array, "eval outputs"]
    feature_train: Float[Array, "depths batch batch"]
    feature_eval: Float[Array, "depths eval eval"]
    grad_train: Float[Array, "depths batch batch"]


class LimitSolver(eqx.Module):
    """Everything fixed during a solve: sizes, options, coefficients and noise keys."""

    coefficients: StepCoefficients
    grid: DepthGrid
    forward_key: PRNGKeyArray
    backward_key: PRNGKeyArray
    forward_matrices: AbstractMatrixSource | None
    backward_matrices: AbstractMatrixSource | None
    activation: str = eqx.field(static=True)
    linear_readout: bool = eqx.field(static=True)
    loss: str = eqx.field(static=True)
    gamma0: float = eqx.field(static=True)
    readin_rate: float = eqx.field(static=True)
    readout_rate: float = eqx.field(static=True)
    particles: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    outputs: int = eqx.field(static=True)
    batch: int = eqx.field(static=True)
    stored: int = eqx.field(static=True)
    representation: str = eqx.field(static=True)
    driver: str = eqx.field(static=True)
    jitter: float = eqx.field(static=True)
    kernel_points: tuple[int, ...] = eqx.field(static=True)
    dtype: str = eqx.field(static=True)

    @property
    def field_space(self) -> bool:
        return self.representation == "field"

    def init_state(self, *, key: PRNGKeyArray) -> LimitState:
        """U^0 and V^0 i.i.d. N(0, 1) per particle; empty history (identity-padded factors)."""
        key_in, key_out = jax.random.split(key)
        n, m, s = self.particles, self.grid.steps, self.stored

        def zeros():  # a separate buffer per field, so the state can be donated
            return jnp.zeros((m, n, s), self.dtype)

        def empty_noise():
            return FieldNoise(zeros(), jnp.tile(jnp.eye(s, dtype=self.dtype), (m, 1, 1)))

        field = self.field_space
        forward_noise = empty_noise() if field else None
        backward_noise = empty_noise() if field else None
        return LimitState(
            readin=jax.random.normal(key_in, (n, self.dim), self.dtype),
            readout=jax.random.normal(key_out, (n, self.outputs), self.dtype),
            features=zeros(),
            grads=zeros(),
            forward_noise=forward_noise,
            backward_noise=backward_noise,
        )

    def forward(
        self, state: LimitState, k: Int[Array, ""], inputs: Float[Array, "new dim"]
    ) -> tuple[Float[Array, "points particles new"], Float[Array, "steps particles new"] | None]:
        """Forward paths H^k_m of `inputs` at step k (all grid points), and their white noise."""
        h0 = state.readin @ inputs.T / math.sqrt(self.dim)
        if self.field_space:
            white = self._white(self.forward_key, k, inputs.shape[0])
            noise = state.forward_noise
        else:
            white, noise = None, self.forward_matrices
        terms = forward_terms(
            phi=activation(self.activation),
            coefficients=self.coefficients,
            grid=self.grid,
            stored_features=state.features,
            stored_grads=state.grads,
            noise=noise,
            new_white=white,
            jitter=self.jitter,
        )
        return sweep(terms, h0, self.grid, reverse=False, driver=self.driver), white

    def outputs_of(self, state: LimitState, h_end: Float[Array, "particles new"]):
        """f = E[V phi(H_1)] / gamma0 (or E[V H_1] / gamma0 with a linear readout)."""
        feats = h_end if self.linear_readout else activation(self.activation)(h_end)
        return particle_gram(feats, state.readout) / self.gamma0, feats

    def evaluate(self, state: LimitState, k: Int[Array, ""], x_eval: Float[Array, "eval dim"]):
        """Outputs and feature kernels on the eval inputs at step k (no training)."""
        path, _ = self.forward(state, k, x_eval)
        f_eval, _ = self.outputs_of(state, path[-1])
        return f_eval, self._kernels(activation(self.activation)(path))

    def step(
        self,
        state: LimitState,
        k: Int[Array, ""],
        x_batch: Float[Array, "batch dim"],
        y_batch: Float[Array, "batch outputs"],
        x_eval: Float[Array, "eval dim"],
    ) -> tuple[LimitState, StepOutputs]:
        """One SGD step of the limit: forward, outputs, backward, updates, history."""
        phi = activation(self.activation)
        b = self.batch
        path, white = self.forward(state, k, jnp.concatenate([x_batch, x_eval]))
        f, readout_feats = self.outputs_of(state, path[-1])
        chi = loss_derivative(self.loss, f[:b], y_batch)
        h_train = path[:, :, :b]
        multiplier = activation_derivative(self.activation)(h_train)
        g_end = state.readout @ chi.T
        if not self.linear_readout:
            g_end = g_end * multiplier[-1]
        if self.field_space:
            back_white = self._white(self.backward_key, k, b)
            back_noise = state.backward_noise
        else:
            back_white, back_noise = None, self.backward_matrices
        terms = backward_terms(
            multiplier=multiplier,
            coefficients=self.coefficients,
            grid=self.grid,
            stored_features=state.features,
            stored_grads=state.grads,
            noise=back_noise,
            new_white=back_white,
            jitter=self.jitter,
        )
        g_path = sweep(terms, g_end, self.grid, reverse=True, driver=self.driver)

        start = jnp.asarray(k * b, jnp.int32)
        zero = jnp.zeros_like(start)
        new_features, new_grads = phi(h_train[:-1]), g_path[1:]
        new_state = LimitState(
            readin=state.readin
            - self.readin_rate / b * (g_path[0] @ x_batch) / math.sqrt(self.dim),
            readout=state.readout - self.readout_rate / b * (readout_feats[:, :b] @ chi),
            features=lax.dynamic_update_slice(state.features, new_features, (zero, zero, start)),
            grads=lax.dynamic_update_slice(state.grads, new_grads, (zero, zero, start)),
            forward_noise=self._append(
                state.forward_noise, state.features, new_features, white, start
            ),
            backward_noise=self._append(
                state.backward_noise, state.grads, new_grads, back_white, start
            ),
        )
        feature_paths = phi(path)
        outputs = StepOutputs(
            f_train=f[:b],
            f_eval=f[b:],
            feature_train=self._kernels(feature_paths[:, :, :b]),
            feature_eval=self._kernels(feature_paths[:, :, b:]),
            grad_train=self._kernels(g_path),
        )
        return new_state, outputs

    def _white(self, key, k, pairs):
        """Standard increments of step k's new pairs at every depth step, keyed by (key, k)."""
        shape = (self.grid.steps, self.particles, pairs)
        return jax.random.normal(jax.random.fold_in(key, k), shape, self.dtype)

    def _append(self, noise, stored, new, white, start):
        """Append the minibatch's white increments and factor rows to a field-space history."""
        if noise is None:
            return None
        b = self.batch

        def rows_at(stored_m, new_m, factor_m):
            return conditional_factor(
                particle_gram(new_m, stored_m),
                particle_gram(new_m, new_m),
                factor_m,
                jitter=self.jitter,
            )

        rows, block = jax.vmap(rows_at)(stored, new, noise.factor)
        factor = jax.vmap(append_factor_rows, in_axes=(0, 0, 0, None))(
            noise.factor, rows, block, start
        )
        return FieldNoise(
            white=lax.dynamic_update_slice(
                noise.white, white[:, :, :b], (jnp.zeros_like(start),) * 2 + (start,)
            ),
            factor=factor,
        )

    def _kernels(self, paths: Float[Array, "points particles pairs"]):
        return jnp.stack([particle_gram(paths[p], paths[p]) for p in self.kernel_points])


def build_solver(
    config: Config, stream: DataStream, *, key: PRNGKeyArray, plan: LimitPlan | None = None
) -> LimitSolver:
    """The limit solver for `config` on `stream`'s sizes; `key` draws the noise keys."""
    if config.model.block != "one_layer":
        raise ValueError(
            "the NFD limit solver covers one-layer residual blocks (model.block='one_layer'); "
            "two-layer blocks are studied with the finite network"
        )
    if config.model.block_order != "pre":
        raise ValueError(
            "the NFD limit solver covers pre-activation blocks (model.block_order='pre')"
        )
    if plan is None:
        plan = plan_limit(
            config,
            dim=stream.dim,
            steps=stream.steps,
            batch=stream.batch,
            eval_size=stream.x_eval.shape[0],
        )
    solver_cfg = config.solver
    grid = DepthGrid(solver_cfg.depth_steps)
    dtype = config.run.dtype
    t = grid.step_times
    beta = config.model.beta_profile(t).astype(dtype)
    lr = config.model.lr_profile(t).astype(dtype)
    eta = effective_eta(config)
    drift = eta * config.training.eta_W * lr * beta**2 / stream.batch
    key_fwd, key_bwd, key_fmat, key_bmat = jax.random.split(key, 4)
    if plan.representation == "weight":
        forward_matrices = KeyedGaussianMatrices(key_fmat, solver_cfg.particles, jnp.dtype(dtype))
        backward_matrices = (
            forward_matrices
            if solver_cfg.backward == "standard"
            else KeyedGaussianMatrices(key_bmat, solver_cfg.particles, jnp.dtype(dtype))
        )
    else:
        forward_matrices = backward_matrices = None
    return LimitSolver(
        coefficients=StepCoefficients(beta=beta, drift=drift),
        grid=grid,
        forward_key=key_fwd,
        backward_key=key_bwd,
        forward_matrices=forward_matrices,
        backward_matrices=backward_matrices,
        activation=config.model.activation,
        linear_readout=config.model.readout == "linear",
        loss=config.training.loss,
        gamma0=config.model.gamma0,
        readin_rate=eta * config.training.eta_U,
        readout_rate=eta * config.training.eta_v,
        particles=solver_cfg.particles,
        dim=stream.dim,
        outputs=stream.outputs,
        batch=stream.batch,
        stored=stream.steps * stream.batch,
        representation=plan.representation,
        driver=solver_cfg.driver,
        jitter=solver_cfg.jitter,
        kernel_points=tuple(grid.nearest_point(t) for t in config.run.kernel_depths),
        dtype=dtype,
    )


@functools.partial(eqx.filter_jit, donate="all-except-first")
def _jit_step(inputs, state):
    """One step, `inputs = (solver, k, x_batch, y_batch, x_eval)`; the state (the history) is
    donated, so its buffers are reused for the new state instead of copied."""
    solver, k, x_batch, y_batch, x_eval = inputs
    return solver.step(state, k, x_batch, y_batch, x_eval)


@eqx.filter_jit
def _jit_evaluate(solver, state, k, x_eval):
    return solver.evaluate(state, k, x_eval)


def solve_limit(
    config: Config,
    stream: DataStream,
    *,
    key: PRNGKeyArray,
    progress: bool = False,
    solver: LimitSolver | None = None,
    state: LimitState | None = None,
) -> Result:
    """Solve the NFD limit through all of `stream`'s SGD steps; returns the shared Result schema.

    `solver` and `state` may be given to inject noise or initial particles (cross-checks); a
    given `state` is consumed (its buffers are donated to the solve).
    """
    plan = plan_limit(
        config,
        dim=stream.dim,
        steps=stream.steps,
        batch=stream.batch,
        eval_size=stream.x_eval.shape[0],
    )
    with jax.enable_x64(config.run.dtype == "float64"):
        return _solve(config, stream, key, progress, plan, solver, state)


def _solve(config, stream, key, progress, plan, solver, state):
    dtype = config.run.dtype
    key_solver, key_state = jax.random.split(key)
    if solver is None:
        solver = build_solver(config, stream, key=key_solver, plan=plan)
    if state is None:
        state = solver.init_state(key=key_state)
    x_train = jnp.asarray(stream.x_train, dtype)
    y_train = jnp.asarray(stream.y_train, dtype)
    x_eval = jnp.asarray(stream.x_eval, dtype)
    steps = stream.steps
    outputs, step_times = [], []
    start = time.perf_counter()
    for k in tqdm(range(steps), desc="NFD limit", unit="step", disable=not progress):
        tick = time.perf_counter()
        state, out = _jit_step((solver, jnp.int32(k), x_train[k], y_train[k], x_eval), state)
        jax.block_until_ready(out)
        step_times.append(time.perf_counter() - tick)
        outputs.append(jax.device_get(out))
    f_final, feature_final = jax.device_get(_jit_evaluate(solver, state, jnp.int32(steps), x_eval))
    wall = time.perf_counter() - start

    f_train = np.stack([o.f_train for o in outputs])
    f_eval = np.concatenate([np.stack([o.f_eval for o in outputs]), f_final[None]])
    loss_name = config.training.loss
    y_eval = np.asarray(stream.y_eval)
    loss_train = np.asarray(example_loss(loss_name, f_train, stream.y_train)).mean(axis=-1)
    loss_eval = np.asarray(example_loss(loss_name, f_eval, y_eval[None])).mean(axis=-1)
    kernels = {
        "t": list(config.run.kernel_depths),
        "layers": list(solver.kernel_points),
        "feature_eval": np.concatenate(
            [np.stack([o.feature_eval for o in outputs]), feature_final[None]]
        ),
        "feature_train": np.stack([o.feature_train for o in outputs]),
        "grad_train": np.stack([o.grad_train for o in outputs]),
    }
    later = step_times[1:] or step_times
    producer = {
        "kind": "limit",
        "particles": solver.particles,
        "depth_steps": solver.grid.steps,
        "representation": solver.representation,
        "backward": config.solver.backward,
        "driver": solver.driver,
        "jitter": solver.jitter,
        "estimated_gb": plan.gigabytes,
    }
    meta = run_meta(
        config,
        wall_time=wall,
        first_step_s=step_times[0],
        step_s=float(np.median(later)),
        compile_time_s=max(step_times[0] - float(np.median(later)), 0.0),
    )
    return Result(
        f_train=f_train,
        f_eval=f_eval,
        loss_train=loss_train,
        loss_eval=loss_eval,
        kernels=kernels,
        config=resolved_config(config),
        producer=producer,
        meta=meta,
    )
