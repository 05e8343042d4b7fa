"""Standard Gaussian increments of Brownian paths on a depth grid, shared by nested grids.

`keyed_white(key, shape, grid, refinement)` is the (steps, *shape) array of standardised
increments (dB_m / sqrt(dt)) of independent Brownian paths on `grid`. The paths are drawn on a grid
`refinement` times finer, and a coarse step's increment is the sum of its fine ones, so solves on
nested grids from the same key see the same Brownian paths. With refinement 1 it is one draw.
"""

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ._depth_grid import DepthGrid


def keyed_white(
    key: PRNGKeyArray, shape: tuple[int, ...], grid: DepthGrid, *, refinement: int = 1, dtype
) -> Float[Array, "steps ..."]:
    fine = jax.random.normal(key, (grid.steps * refinement, *shape), dtype)
    if refinement == 1:
        return fine
    fine = fine.reshape(grid.steps, refinement, *shape)
    return jnp.sum(fine, axis=1) / math.sqrt(refinement)
