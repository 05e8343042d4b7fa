"""Lower-triangular solves by blocks of rows, as matrix products.

A growing Cholesky factor of S stored pairs is solved against a few new pairs (S x r right-hand
sides, r ~ a minibatch) at every depth step. A LAPACK `trsm` with few right-hand sides runs far
below the machine's matrix-product rate (measured on 2 CPU cores, S = 3216, r = 24: 120-180 ms,
where the product of the same S x S matrix with the right-hand sides takes 3-6 ms; even a
128 x 128 `trsm` took 12 ms). Forward substitution by blocks of `block` rows does the same solve
as one (block x S) @ (S x r) product per block and the inverse of its (block x block) diagonal
tile, built by doubling from matrix products (`lower_inverse`):

    x_i = L_ii^{-1} (c_i - L_{i,<i} x_{<i}),

where the product runs over the full row of L against a solution that is still zero from block i
on, so every block has the same shapes (one `fori_loop` body). Results agree with `solve_triangular` to rounding
amplified by at most the condition number of a diagonal tile (the explicit tile inverse).

The last block is shifted back to end at row S (when `block` does not divide S), and the rows it
overlaps are zeroed before its product, so it recomputes them exactly. With `rows_used` (a traced
count), blocks from the first one wholly past `rows_used` on are skipped: valid when every row of
the right-hand side from `rows_used` on is zero and L is the identity there (a padded factor's
empty slots), whose solution rows are then exactly zero.
"""

import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

BLOCK = 128  # rows per block: products of (128 x S) @ (S x r) run near the matmul rate on a CPU


def lower_solve(
    lower: Float[Array, "*batch stored stored"],
    rhs: Float[Array, "*batch stored new"],
    *,
    block: int = BLOCK,
    rows_used: Int[Array, ""] | None = None,
) -> Float[Array, "*batch stored new"]:
    """`L^{-1} rhs` for lower-triangular `L` (leading axes: a batch), by blocks of rows (module
    docstring). No LAPACK call; the loop over blocks is one loop for the whole batch."""
    size = lower.shape[-1]
    if block & (block - 1):
        raise ValueError(f"block {block} is not a power of two")
    if size <= block:
        raise ValueError(f"a factor of {size} <= {block} slots is one block: solve it directly")
    blocks = -(-size // block)
    if rows_used is not None:
        blocks = jnp.minimum(blocks, -(-jnp.asarray(rows_used, jnp.int32) // block))
    row_axis = lower.ndim - 2
    index = jnp.arange(size)[:, None]
    inverse = jnp.vectorize(lower_inverse, signature="(b,b)->(b,b)")

    def body(i, solution):
        start = jnp.minimum(i * block, size - block)
        earlier = jnp.where(index < start, solution, 0)
        rows = lax.dynamic_slice_in_dim(lower, start, block, axis=row_axis)
        diagonal = lax.dynamic_slice_in_dim(rows, start, block, axis=row_axis + 1)
        target = lax.dynamic_slice_in_dim(rhs, start, block, axis=row_axis) - rows @ earlier
        part = inverse(diagonal) @ target
        return lax.dynamic_update_slice_in_dim(earlier, part, start, axis=row_axis)

    return lax.fori_loop(0, blocks, body, jnp.zeros_like(rhs))


def lower_inverse(lower: Float[Array, "block block"]) -> Float[Array, "block block"]:
    """The inverse of a lower-triangular matrix whose size is a power of two, by doubling:
    the inverses of the diagonal blocks of size s give those of size 2s,
        [[A, 0], [C, D]]^{-1} = [[A^{-1}, 0], [-D^{-1} C A^{-1}, D^{-1}]],
    so it is log2(size) batched products (no LAPACK call)."""
    size = lower.shape[0]
    inverse = (1 / jnp.diagonal(lower)).reshape(size, 1, 1)
    half = 1
    while half < size:
        count, width = size // (2 * half), 2 * half
        tiles = lower.reshape(count, width, count, width)
        diagonal = tiles[jnp.arange(count), :, jnp.arange(count), :]  # (count, width, width)
        first, second = inverse[0::2], inverse[1::2]
        corner = -second @ diagonal[:, half:, :half] @ first
        top = jnp.concatenate([first, jnp.zeros_like(first)], axis=2)
        bottom = jnp.concatenate([corner, second], axis=2)
        inverse = jnp.concatenate([top, bottom], axis=1)
        half = width
    return inverse[0]
