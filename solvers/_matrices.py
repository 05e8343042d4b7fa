"""Sources of per-step Gaussian matrices for weight-space particle systems.

A matrix source is a path in matrix space on a depth grid: step m's matrix is standard Gaussian,
and matrices of different steps are independent. `KeyedGaussianMatrices` with `refinement = r`
builds step m's matrix as the normalised sum of the r matrices of a grid r times finer,
(Omega_{rm} + ... + Omega_{rm + r - 1}) / sqrt(r), which is again standard Gaussian: a coarse grid
and a fine grid then share their noise (nested grids, common random numbers across depths).
"""

import abc
import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._sharding import AxisMesh


class AbstractMatrixSource(eqx.Module):
    """Gives the (size, size) matrix of depth step m; the same m always gives the same matrix."""

    @abc.abstractmethod
    def __call__(self, m: Int[Array, ""]) -> Float[Array, "particles particles"]:
        """The matrix of step `m`."""


class KeyedGaussianMatrices(AbstractMatrixSource):
    """Standard Gaussian matrices regenerated from `fold_in(key, m)`: never all held at once.
    With a `mesh`, each is drawn with its rows (particles) split over the mesh's devices: every
    device draws only its own rows (the draw does not depend on the split)."""

    key: PRNGKeyArray
    size: int = eqx.field(static=True)
    dtype: jnp.dtype = eqx.field(static=True, default=jnp.float32)
    refinement: int = eqx.field(static=True, default=1)
    mesh: AxisMesh | None = eqx.field(static=True, default=None)

    def __call__(self, m: Int[Array, ""]) -> Float[Array, "particles particles"]:
        if self.refinement == 1:
            return self._fine(m)
        fine = jax.vmap(self._fine)(m * self.refinement + jnp.arange(self.refinement))
        return jnp.sum(fine, axis=0) / math.sqrt(self.refinement)

    def _fine(self, m):
        shape = (self.size, self.size)
        matrix = jax.random.normal(jax.random.fold_in(self.key, m), shape, self.dtype)
        return matrix if self.mesh is None else self.mesh.constrain(matrix, 0)


class StoredMatrices(AbstractMatrixSource):
    """Explicit matrices, e.g. the initial weights of a finite network, for exact cross-checks."""

    matrices: Float[Array, "steps particles particles"]

    def __call__(self, m: Int[Array, ""]) -> Float[Array, "particles particles"]:
        return self.matrices[m]


def matrix_times(
    matrix: Float[Array, "rows cols"], x: Float[Array, "n k"], *, transpose: bool = False
) -> Float[Array, "m k"]:
    """`matrix @ x`, or `matrix.T @ x` as `(x.T @ matrix).T`: for the latter XLA's CPU dot
    otherwise writes the (N, N) transpose out (a transpose and a copy per product, measured in
    the weight-space step's HLO); this form transposes only the skinny operands."""
    if transpose:
        return (x.T @ matrix).T
    return matrix @ x


def drawn_once(source: AbstractMatrixSource, steps: int) -> StoredMatrices:
    """Every step's matrix of `source` drawn now and kept (steps, size, size): the same
    matrices, with no draw per use. A source drawn with its rows split over a mesh keeps them
    split."""
    return StoredMatrices(_draw_all(source, jnp.arange(steps)))


@eqx.filter_jit
def _draw_all(source: AbstractMatrixSource, steps: Int[Array, " steps"]):
    """One compilation per kind of source (its static fields), reused by every group and level:
    the key is an argument, not a constant of the program."""
    return jax.vmap(source)(steps)
