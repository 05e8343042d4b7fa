"""One SGD step of the limit as a pure function of (solver, state, step k, minibatch, eval inputs).

  1. forward sweep (t: 0 -> 1) of the minibatch and the eval inputs, conditioned on the history;
  2. outputs f^k = E[V r(H_1)] / gamma0, loss derivatives chi;
  3. backward sweep (t: 1 -> 0) of the minibatch's loss-gradient paths G = sum_c chi_c G_c;
  4. updates of U and V, and the minibatch's stored quantities appended to the history.

Eval inputs are noise pairs conditioned on every stored training pair and on each other; nothing
is conditioned on them (no reported quantity depends on the joint law of eval inputs at different
steps), so they are not stored.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

from solvers import particle_gram, sweep

from ..model import LimitContext
from ._solver import LimitSolver, LimitState
from ._terms import BackwardTerm, ForwardTerm


class StepOutputs(eqx.Module):
    f_train: Float[Array, "batch outputs"]
    f_eval: Float[Array, "eval outputs"]
    feature_train: Float[Array, "depths batch batch"]
    feature_eval: Float[Array, "depths eval eval"]
    grad_train: Float[Array, "depths batch batch"]


def _context(solver: LimitSolver, state: LimitState, direction: str, white) -> LimitContext:
    products = solver.representation.products(
        direction, state.noise, state.history, solver.block.conditioning, white, solver.jitter
    )
    return LimitContext(
        phi=solver.activation,
        coefficients=solver.coefficients,
        history=state.history,
        forward=products if direction == "forward" else {},
        backward=products if direction == "backward" else {},
    )


def forward_paths(solver: LimitSolver, state: LimitState, k, inputs):
    """The forward sweep's path of `inputs` at SGD step k (pytree, leading axis: grid points),
    and the new pairs' standard increments (field space) or None."""
    h0 = state.readin @ inputs.T / math.sqrt(solver.dim)
    white = solver.representation.new_white("forward", k, inputs.shape[0], solver.dtype)
    term = ForwardTerm(solver.block, _context(solver, state, "forward", white), solver.grid)
    path = sweep(term, solver.scheme, solver.grid, solver.block.forward_state(h0), reverse=False)
    return path, white


def outputs_of(solver: LimitSolver, state: LimitState, h_end):
    """f = E[V r(H_1)] / gamma0, and the readout features r(H_1)."""
    feats = solver.readout_map.features(h_end)
    return particle_gram(feats, state.readout) / solver.gamma0, feats


def kernels(solver: LimitSolver, paths: Float[Array, "points particles pairs"]):
    return jnp.stack([particle_gram(paths[p], paths[p]) for p in solver.kernel_points])


def limit_evaluate(solver: LimitSolver, state: LimitState, k: Int[Array, ""], x_eval):
    """Outputs and feature kernels on the eval inputs at step k (no training)."""
    path, _ = forward_paths(solver, state, k, x_eval)
    stream = solver.block.stream(path)
    f_eval, _ = outputs_of(solver, state, stream[-1])
    return f_eval, kernels(solver, solver.activation(stream))


def limit_step(
    solver: LimitSolver,
    state: LimitState,
    k: Int[Array, ""],
    x_batch: Float[Array, "batch dim"],
    y_batch: Float[Array, "batch outputs"],
    x_eval: Float[Array, "eval dim"],
) -> tuple[LimitState, StepOutputs]:
    """One SGD step of the limit: forward, outputs, backward, updates, history."""
    block, phi, b = solver.block, solver.activation, solver.batch
    path, white = forward_paths(solver, state, k, jnp.concatenate([x_batch, x_eval]))
    stream = block.stream(path)
    f, readout_feats = outputs_of(solver, state, stream[-1])
    chi = solver.loss.derivative(f[:b], y_batch)
    train_path = jax.tree.map(lambda a: a[:, :, :b], path)
    h_train = block.stream(train_path)
    g_end = state.readout @ chi.T
    multiplier = solver.readout_map.multiplier(h_train[-1])
    if multiplier is not None:
        g_end = g_end * multiplier
    back_white = solver.representation.new_white("backward", k, b, solver.dtype)
    term = BackwardTerm(
        block, _context(solver, state, "backward", back_white), solver.grid, train_path
    )
    back_path = sweep(term, solver.scheme, solver.grid, block.backward_state(g_end), reverse=True)
    g_path = block.gradients(back_path)

    start = jnp.asarray(k * b, jnp.int32)
    zero = jnp.zeros_like(start)
    entries = block.history_entries(phi, train_path, back_path)
    history = {
        name: lax.dynamic_update_slice(state.history[name], entries[name], (zero, zero, start))
        for name in block.stored
    }
    noise = solver.representation.append(
        state.noise,
        state.history,
        entries,
        block.conditioning,
        {"forward": white, "backward": back_white},
        start,
        solver.jitter,
    )
    new_state = LimitState(
        readin=state.readin
        - solver.readin_rate / b * (g_path[0] @ x_batch) / math.sqrt(solver.dim),
        readout=state.readout - solver.readout_rate / b * (readout_feats[:, :b] @ chi),
        history=history,
        noise=noise,
    )
    feature_paths = phi(stream)
    outputs = StepOutputs(
        f_train=f[:b],
        f_eval=f[b:],
        feature_train=kernels(solver, feature_paths[:, :, :b]),
        feature_eval=kernels(solver, feature_paths[:, :, b:]),
        grad_train=kernels(solver, g_path),
    )
    return new_state, outputs
