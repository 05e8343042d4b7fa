"""The reuse coupling of a standard-backprop solve, measured inside its SGD step.

In the two-sided field space every new product of an initial matrix splits into the one-sided
(decoupled) conditional part and the reuse-coupling part B K_B^{-1} <D, P_A a> (its mirror for
W^T b; `solvers.TwoSidedFieldSpace`). For the step's training pairs, per direction, weight and
depth step m, the record holds mean squares over particles and pairs of

    0: the coupling part c_m,
    1: the whole product,
    2: the coupling accumulated along the sweep, sum of c_m' sqrt(dt) over the steps m' swept
       so far (forward: m' <= m; backward: m' >= m): what the coupling alone adds to a path
       whose noise enters as a Brownian increment (branch multipliers aside).
"""

import jax.numpy as jnp
from jaxtyping import Array, Float

from solvers import DIRECTIONS

from ..model import AbstractBlock


def empty_record(block: AbstractBlock, dtype) -> Float[Array, "directions weights 0 3"]:
    """The record of a solve that does not measure the coupling: no depth steps."""
    return jnp.zeros((2, len(block.weights), 0, 3), dtype)


def coupling_record(
    solver, state, current_inputs, white, entries, back_white, revealed, batch
) -> Float[Array, "directions weights steps 3"]:
    """The record of the module docstring for one SGD step (`batch` training pairs first)."""
    representation, conditioning = solver.representation, solver.block.conditioning
    dt = 1.0 / solver.grid.steps
    parts = {
        "forward": representation.coupling_parts(
            "forward", state.noise, state.history, conditioning, current_inputs, white,
            solver.jitter,
        ),
        "backward": representation.coupling_parts(
            "backward", state.noise, state.history, conditioning, entries, back_white,
            solver.jitter, revealed,
        ),
    }  # fmt: skip
    rows = []
    for direction in DIRECTIONS:
        per_weight = []
        for w in solver.block.weights:
            value, coupling = (a[:, :, :batch] for a in parts[direction][w])
            along = coupling if direction == "forward" else coupling[::-1]
            accumulated = jnp.cumsum(along, axis=0) * jnp.sqrt(dt)
            if direction == "backward":
                accumulated = accumulated[::-1]
            per_weight.append(
                jnp.stack(
                    [
                        jnp.mean(coupling**2, axis=(1, 2)),
                        jnp.mean(value**2, axis=(1, 2)),
                        jnp.mean(accumulated**2, axis=(1, 2)),
                    ],
                    axis=-1,
                )
            )
        rows.append(jnp.stack(per_weight))
    return jnp.stack(rows)
