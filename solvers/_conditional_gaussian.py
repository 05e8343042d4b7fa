"""Conditional Gaussian increments by a growing lower-triangular factor.

Pairs (e.g. (training step, input)) are ordered as they appear. The Cholesky factor of their
kernel only grows by appended rows, so a new pair's increment is
    dZ_new = sum_p rows[new, p] dB_p + block dB_new,
with dB_p the stored standard increments of earlier pairs. Unused (padded) slots of the stored
factor hold identity rows and zero kernel entries, so their rows come out exactly zero.

On a CPU, a vmapped `conditional_factor` (particle groups, solver levels) loops over its batch
(`jax.custom_batching.sequential_vmap`) instead of handing LAPACK a batch: jaxlib 0.10's CPU
LAPACK kernels split a batch over XLA's intra-op thread pool and block until it is done, and when
the executable runs as many such calls at once as the pool has threads (2 on a 2-core machine),
every thread waits on work that no thread is left to run (observed: `solve_limit` with
cross-entropy on the digits, and eight virtual CPU devices, hanging with every thread parked in
`jax::ParallelBatchMap`). Unbatched calls run inline. The numbers are the same either way.
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import lax
from jaxtyping import Array, Float, Int


def guarded_cholesky(
    matrix: Float[Array, "new new"], *, jitter: float, scale: Float[Array, ""]
) -> Float[Array, "new new"]:
    """Cholesky factor of a symmetric positive semi-definite matrix, robust to round-off.

    The matrix is symmetrised, eigenvalues below zero (round-off of a PSD matrix) are clipped to
    zero, and `jitter * scale` is added to the diagonal, so an exactly singular kernel (repeated
    inputs, frozen input layer at t = 0) still factorises. The factor's error is O(sqrt(jitter)).
    """
    sym = 0.5 * (matrix + matrix.T)
    values, vectors = jnp.linalg.eigh(sym)
    clipped = (vectors * jnp.maximum(values, 0.0)) @ vectors.T
    eye = jnp.eye(matrix.shape[0], dtype=matrix.dtype)
    return jnp.linalg.cholesky(0.5 * (clipped + clipped.T) + jitter * scale * eye)


def conditional_factor(
    cross: Float[Array, "new old"],
    joint: Float[Array, "new new"],
    chol_old: Float[Array, "old old"],
    *,
    jitter: float,
) -> tuple[Float[Array, "new old"], Float[Array, "new new"]]:
    """Rows of the growing Cholesky factor for `new` pairs appended after `old` ones.

    `cross` is the kernel between new and old pairs, `joint` among the new ones, `chol_old` the
    stored lower-triangular factor of the old ones. Returns (rows, block): the new pairs'
    coefficients on the old pairs' standard increments, and their own lower-triangular block.
    """
    jitter = jnp.asarray(jitter, jnp.asarray(joint).dtype)
    if jax.default_backend() == "cpu":  # batches loop on a CPU (module docstring)
        return jax.custom_batching.sequential_vmap(_factor)(cross, joint, chol_old, jitter)
    return _factor(cross, joint, chol_old, jitter)


def _factor(cross, joint, chol_old, jitter):
    rows = jsl.solve_triangular(chol_old, cross.T, lower=True).T
    scale = jnp.maximum(jnp.mean(jnp.diagonal(joint)), jnp.finfo(joint.dtype).tiny)
    block = guarded_cholesky(joint - rows @ rows.T, jitter=jitter, scale=scale)
    return rows, block


def append_factor_rows(
    chol: Float[Array, "slots slots"],
    rows: Float[Array, "new slots"],
    block: Float[Array, "new new"],
    start: Int[Array, ""],
) -> Float[Array, "slots slots"]:
    """Write the new pairs' rows (old coefficients, then their block on the diagonal) into
    slots start..start+new of a padded factor. `rows` must be zero from column `start` on."""
    start = jnp.asarray(start, jnp.int32)
    zero = jnp.zeros_like(start)
    strip = lax.dynamic_update_slice(rows, block, (zero, start))
    return lax.dynamic_update_slice(chol, strip, (start, zero))
