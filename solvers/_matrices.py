"""Sources of per-step Gaussian matrices for weight-space particle systems."""

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


class AbstractMatrixSource(eqx.Module):
    """Gives the (size, size) matrix of depth step m; the same m always gives the same matrix."""

    @abc.abstractmethod
    def __call__(self, m: Int[Array, ""]) -> Float[Array, "particles particles"]:
        """The matrix of step `m`."""


class KeyedGaussianMatrices(AbstractMatrixSource):
    """Standard Gaussian matrices regenerated from `fold_in(key, m)`: never all held at once."""

    key: PRNGKeyArray
    size: int = eqx.field(static=True)
    dtype: jnp.dtype = eqx.field(static=True, default=jnp.float32)

    def __call__(self, m: Int[Array, ""]) -> Float[Array, "particles particles"]:
        return jax.random.normal(
            jax.random.fold_in(self.key, m), (self.size, self.size), self.dtype
        )


class StoredMatrices(AbstractMatrixSource):
    """Explicit matrices, e.g. the initial weights of a finite network, for exact cross-checks."""

    matrices: Float[Array, "steps particles particles"]

    def __call__(self, m: Int[Array, ""]) -> Float[Array, "particles particles"]:
        return self.matrices[m]
