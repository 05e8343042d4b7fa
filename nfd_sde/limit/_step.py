"""One SGD step of the limit as a pure function of (solver, state, step k, minibatch, eval inputs).

  1. forward sweep (t: 0 -> 1) of the minibatch and the eval inputs, conditioned on the history;
  2. outputs f^k = E[V r(H_1)] / gamma0, loss derivatives chi;
  3. backward sweep (t: 1 -> 0) of the minibatch's loss-gradient paths G = sum_c chi_c G_c;
  4. updates of U and V, and the minibatch's stored quantities appended to the history (and to
     the accumulated weight updates, where the solver keeps them dense).

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

from solvers import particle_gram, sweep, write_pairs

from ..model import LimitContext
from ._coupling_record import coupling_record, empty_record
from ._solver import LimitSolver, LimitState, constrain_state
from ._terms import BackwardTerm, ForwardTerm


class ControlStatistics(eqx.Module):
    """Sufficient statistics, over one particle system, of the outputs' per-particle terms
    y = V r(H_1) / gamma0 and of control features x with exactly zero expectation: their means
    and centred cross products, per output channel c (`nfd_sde.limit._controls` combines them
    across groups). The features x depend only on the initial readout V^0 and the step-0
    features, so `mean_x` and `xx` are the same at every step: a step leaves `xx` out (None) and
    `control_gram` computes it once."""

    mean_x: Float[Array, "controls outputs"]
    mean_y: Float[Array, "pairs outputs"]
    xx: Float[Array, "outputs controls controls"] | None
    xy: Float[Array, "outputs controls pairs"]


class StepOutputs(eqx.Module):
    """Step k's outputs (plain particle means and control-variate estimates), kernels, and the
    reuse coupling's record (`_coupling_record`; no depth steps unless the solver records it)."""

    f_train: Float[Array, "batch outputs"]
    f_eval: Float[Array, "eval outputs"]
    controls: ControlStatistics
    feature_train: Float[Array, "depths batch batch"]
    feature_eval: Float[Array, "depths eval eval"]
    grad_train: Float[Array, "depths batch batch"]
    coupling: Float[Array, "directions weights steps 3"]


def _context(
    solver: LimitSolver, state: LimitState, direction: str, white, revealed=None
) -> LimitContext:
    products = solver.representation.products(
        direction,
        state.noise,
        state.history,
        solver.block.conditioning,
        white,
        solver.jitter,
        revealed,
    )
    return LimitContext(
        phi=solver.activation,
        coefficients=solver.coefficients,
        updates=solver.accumulated_updates(state),
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


def control_features(state: LimitState, initial) -> Float[Array, "particles controls outputs"]:
    """Per particle and output channel c: {V^0_c, (V^0_c)^2 - 1} times {1, r(H^0_1(x_p)),
    r'(H^0_1(x_p))} over the eval inputs p. V^0 is independent of every step-0 forward path, so
    each has expectation exactly zero. `initial` = (r(H^0_1), r'(H^0_1)) of the eval inputs."""
    v = state.initial_readout
    v_features = jnp.stack([v, v * v - 1.0], axis=1)  # (N, 2, C)
    h_features = jnp.concatenate([jnp.ones_like(initial[0][:, :1]), *initial], axis=1)
    x = v_features[:, :, None, :] * h_features[:, None, :, None]
    return x.reshape(x.shape[0], -1, x.shape[-1])


def control_statistics(solver, state, feats, initial) -> ControlStatistics:
    """The statistics of one step's outputs, less `xx` (`control_gram`)."""
    y = feats[:, :, None] * state.readout[:, None, :] / solver.gamma0  # (N, pairs, C)
    x = control_features(state, initial) / solver.gamma0
    mean_x, mean_y = jnp.mean(x, axis=0), jnp.mean(y, axis=0)
    xc, yc = x - mean_x, y - mean_y
    return ControlStatistics(mean_x, mean_y, None, jnp.einsum("irc,iqc->crq", xc, yc))


def control_gram(solver, state: LimitState) -> tuple[Array, Array]:
    """(mean_x, xx) of the control features of `state` (its V^0 and step-0 features): the same
    for every step after step 0 (for a solve of no steps: of the initial state)."""
    x = control_features(state, state.initial_features) / solver.gamma0
    xc = x - jnp.mean(x, axis=0)
    return jnp.mean(x, axis=0), jnp.einsum("irc,isc->crs", xc, xc)


def initial_features(solver: LimitSolver, h_end) -> tuple[Array, Array]:
    """(r(H_1), r'(H_1)) of the given inputs (r' = 1 for a linear readout)."""
    multiplier = solver.readout_map.multiplier(h_end)
    multiplier = jnp.ones_like(h_end) if multiplier is None else multiplier
    return solver.readout_map.features(h_end), multiplier


def kernels(solver: LimitSolver, paths: Float[Array, "points particles pairs"]):
    return jnp.stack([particle_gram(paths[p], paths[p]) for p in solver.kernel_points])


def limit_evaluate(solver: LimitSolver, state: LimitState, k: Int[Array, ""], x_eval):
    """Outputs and feature kernels on the eval inputs at step k (no training)."""
    path, _ = forward_paths(solver, state, k, x_eval)
    stream = solver.block.stream(path)
    f_eval, feats = outputs_of(solver, state, stream[-1])
    controls = control_statistics(solver, state, feats, state.initial_features)
    return f_eval, controls, kernels(solver, solver.activation(stream))


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
    initial = jax.tree.map(
        lambda new, old: jnp.where(k == 0, new, old),
        initial_features(solver, stream[-1][:, b:]),
        state.initial_features,
    )
    controls = control_statistics(solver, state, readout_feats, initial)
    chi = solver.loss.derivative(f[:b], y_batch)
    train_path = jax.tree.map(lambda a: a[:, :, :b], path)
    h_train = block.stream(train_path)
    g_end = state.readout @ chi.T
    multiplier = solver.readout_map.multiplier(h_train[-1])
    if multiplier is not None:
        g_end = g_end * multiplier
    representation, conditioning = solver.representation, block.conditioning
    # the forward products of this step's pairs, where the representation stores them (the
    # backward sweep of a two-sided representation is conditioned on them)
    current_inputs = block.history_entries(phi, path, jax.tree.map(jnp.zeros_like, path))
    forward_values = representation.reveal(
        "forward", state.noise, state.history, conditioning, current_inputs, white, solver.jitter
    )
    revealed = None if forward_values is None else (current_inputs, forward_values)
    back_white = representation.new_white("backward", k, b, solver.dtype)
    term = BackwardTerm(
        block, _context(solver, state, "backward", back_white, revealed), solver.grid, train_path
    )
    back_path = sweep(term, solver.scheme, solver.grid, block.backward_state(g_end), reverse=True)
    g_path = block.gradients(back_path)
    entries = block.history_entries(phi, train_path, back_path)
    backward_values = representation.reveal(
        "backward",
        state.noise,
        state.history,
        conditioning,
        entries,
        back_white,
        solver.jitter,
        revealed,
    )
    if solver.record_coupling:
        coupling = coupling_record(
            solver, state, current_inputs, white, entries, back_white, revealed, b
        )
    else:
        coupling = empty_record(block, solver.dtype)
    # what the noise history stores per pair: the standard increments, or the products
    stored_forward = white if forward_values is None else forward_values
    stored_backward = back_white if backward_values is None else backward_values

    # slots: step 0's minibatch, then (with control variates) step 0's eval pairs, then the
    # minibatches of steps 1, 2, ...
    start = jnp.asarray(k * b + solver.anchors * (k > 0), jnp.int32)
    train_white = {
        "forward": None
        if stored_forward is None
        else {w: a[:, :, :b] for w, a in stored_forward.items()},
        "backward": stored_backward,
    }
    stored = (state.history, state.noise, state.updates)
    stored = _store(solver, stored, entries, train_white, start)
    if solver.anchors and solver.host is None:
        stored = lax.cond(
            k == 0,
            lambda stored: _store_eval(solver, stored, path, back_path, stored_forward, b, b),
            lambda stored: stored,
            stored,
        )
    elif solver.anchors:  # writes to host memory cannot sit in a vmapped cond: write at
        # slot b when k = 0 and at the end slot (nothing is written) otherwise
        nowhere = jnp.where(k == 0, b, solver.stored).astype(jnp.int32)
        new = _store_eval(solver, stored, path, back_path, stored_forward, b, nowhere)
        stored = jax.tree.map(lambda a, c: jnp.where(k == 0, a, c), new, stored)
    history, noise, updates = stored
    new_state = LimitState(  # laid out as the state came in (a mesh: particles split)
        readin=state.readin
        - solver.readin_rate / b * (g_path[0] @ x_batch) / math.sqrt(solver.dim),
        readout=state.readout - solver.readout_rate / b * (readout_feats[:, :b] @ chi),
        history=history,
        noise=noise,
        updates=updates,
        initial_readout=state.initial_readout,
        initial_features=initial,
    )
    new_state = constrain_state(new_state, solver.mesh)
    feature_paths = phi(stream)
    outputs = StepOutputs(
        f_train=f[:b],
        f_eval=f[b:],
        controls=controls,
        feature_train=kernels(solver, feature_paths[:, :, :b]),
        feature_eval=kernels(solver, feature_paths[:, :, b:]),
        grad_train=kernels(solver, g_path),
        coupling=coupling,
    )
    return new_state, outputs


def _store(solver: LimitSolver, stored, entries, white, start):
    """`entries` (steps, particles, pairs) written into the history at slots start..., and the
    representation's noise history and the kept accumulated updates extended by them;
    `stored` = (history, noise, updates)."""
    history, noise, updates = stored
    resident = solver.host is None  # (a history in host memory is written by its store)
    if resident:  # the sweeps and reveals, which read the stored noise, before its writes
        white = _after(white, entries, white)
    new_noise = solver.representation.append(
        noise, history, entries, solver.block.conditioning, white, start, solver.jitter
    )
    # the new pairs' kernels with the stored history before its writes
    written = _after(entries, new_noise) if resident else entries
    new_history = {
        name: write_pairs(history[name], written[name], start) for name in solver.block.stored
    }
    new_updates = solver.update_form.append(updates, entries, solver.block.update_pairs)
    return new_history, new_noise, new_updates


def _after(tree, *computed):
    """`tree` made to depend on `computed`, plus an exact zero (one entry of each array times
    zero; a NaN there makes the written values NaN, as the step's outputs then are), so that XLA
    orders what produced `computed` before any write of `tree` into the state. Without it the
    state's reads are unordered with its in-place writes, and XLA copies every history it
    writes, whole, at every step (`tests/test_in_place_history.py`; an optimisation barrier
    does not order them)."""
    leaves = [
        a for a in jax.tree.leaves(computed) if a.size and jnp.issubdtype(a.dtype, jnp.floating)
    ]
    if not leaves:
        return tree
    zero = 0 * sum(a.ravel()[0] for a in leaves)
    return jax.tree.map(lambda a: a + zero.astype(a.dtype), tree)


def _store_eval(solver: LimitSolver, stored, path, back_path, white, b, start):
    """Step 0's eval pairs stored after its minibatch: they teach the model nothing (zero
    loss-gradient paths, so they add no drift), but every later pair is drawn conditionally on
    them, as the network reuses W(0) for them; so an eval input's paths at step k keep the joint
    law they have with its step-0 paths, which the control variates use."""
    eval_path = jax.tree.map(lambda a: a[:, :, b:], path)
    zero_back = jax.tree.map(
        lambda a: jnp.zeros(a.shape[:2] + (solver.anchors,), a.dtype), back_path
    )
    entries = solver.block.history_entries(solver.activation, eval_path, zero_back)
    eval_white = {
        "forward": None if white is None else {w: a[:, :, b:] for w, a in white.items()},
        "backward": None,
    }
    return _store(solver, stored, entries, eval_white, jnp.asarray(start, jnp.int32))
