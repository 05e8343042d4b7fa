"""Conditional Gaussian increments by a growing lower-triangular factor.

Pairs (e.g. (training step, input)) are ordered as they appear. The Cholesky factor of their
kernel only grows by appended rows, so a new pair's increment is
    dZ_new = sum_p rows[new, p] dB_p + block dB_new,
with dB_p the stored standard increments of earlier pairs. Unused (padded) slots of the stored
factor hold identity rows and zero kernel entries, so their rows come out exactly zero.

On a CPU, the LAPACK calls of a vmapped `conditional_factor` (particle groups, solver levels,
depth steps) loop over their batch (`jax.custom_batching.sequential_vmap`) instead of handing
LAPACK a batch: jaxlib 0.10's CPU LAPACK kernels split a batch over XLA's intra-op thread pool and
block until it is done, and when the executable runs as many such calls at once as the pool has
threads (2 on a 2-core machine), every thread waits on work that no thread is left to run
(observed: `solve_limit` with cross-entropy on the digits, and eight virtual CPU devices, hanging
with every thread parked in `jax::ParallelBatchMap`). Unbatched calls run inline. Only the small
calls loop: the new pairs' (new x new) block, and the triangular solve of a factor of at most
`solvers._triangular.BLOCK` slots. A larger factor is solved by blocks of matrix products
(`lower_solve`), with no LAPACK call, batched as any product is; looping over it would copy the
whole factor per batch entry. The numbers are the same either way.
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import lax
from jaxtyping import Array, Float, Int

from ._triangular import BLOCK, lower_solve


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
    cross: Float[Array, "*batch new old"],
    joint: Float[Array, "*batch new new"],
    chol_old: Float[Array, "*batch old old"],
    *,
    jitter: float,
    filled: Int[Array, ""] | None = None,
) -> tuple[Float[Array, "*batch new old"], Float[Array, "*batch new new"]]:
    """Rows of the growing Cholesky factor for `new` pairs appended after `old` ones.

    `cross` is the kernel between new and old pairs, `joint` among the new ones, `chol_old` the
    stored lower-triangular factor of the old ones. Returns (rows, block): the new pairs'
    coefficients on the old pairs' standard increments, and their own lower-triangular block.
    Leading batch axes (e.g. depth steps) are solved together. `filled`: where only the first
    `filled` slots are used (zero `cross` and identity factor rows from there on), the solve
    skips the rest; the result is the same.
    """
    dtype = jnp.asarray(joint).dtype
    jitter = jnp.asarray(jitter, dtype)
    if chol_old.shape[-1] > BLOCK:
        rows = _transpose(lower_solve(chol_old, _transpose(cross), rows_used=filled))
    else:
        solve = jnp.vectorize(_lapack(_small_solve), signature="(s,s),(s,n)->(s,n)")
        rows = _transpose(solve(chol_old, _transpose(cross)))
    diagonal = jnp.diagonal(joint, axis1=-2, axis2=-1)
    scale = jnp.maximum(jnp.mean(diagonal, axis=-1), jnp.finfo(dtype).tiny)
    guarded = jnp.vectorize(_lapack(_guarded_block), signature="(n,n),(),()->(n,n)")
    block = guarded(joint - rows @ _transpose(rows), jitter, scale)
    return rows, block


def _transpose(a):
    return jnp.swapaxes(a, -1, -2)


def _lapack(function):
    """`function` (which calls LAPACK) with its batches looping on a CPU (module docstring)."""
    if jax.default_backend() == "cpu":
        return jax.custom_batching.sequential_vmap(function)
    return function


def _small_solve(lower, rhs):
    return jsl.solve_triangular(lower, rhs, lower=True)


def _guarded_block(schur, jitter, scale):
    return guarded_cholesky(schur, jitter=jitter, scale=scale)


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
