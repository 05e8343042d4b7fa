"""The action of an initial Gaussian matrix on new inputs, given what it did to stored ones.

A width-n network multiplies by the same initial matrix W(0) at every training step. In the
n -> infinity limit, W(0) a / sqrt(n) over a sequence of inputs a is a centred Gaussian process
whose covariance is the kernel of the inputs, so new values must be drawn conditionally on the
stored ones. A product gives, at depth step m, the standard (unit-scale) values for the new pairs'
inputs (particles, new), jointly with the stored pairs':

* `ConditionalGaussianProduct` (field space): the growing Cholesky factor of the particle kernel
  over pairs applied to each pair's standard increments (`solvers._conditional_gaussian`);
* `MatrixProduct` (weight space): `Omega_m a / sqrt(N)` with an (N, N) standard Gaussian matrix
  (or its transpose, for a backward pass that reuses the forward weights).

A Brownian increment is the standard value times sqrt(dt); an O(1) field (the internal layer of a
two-layer block) is the standard value itself.
"""

import abc

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int

from ._conditional_gaussian import conditional_factor
from ._matrices import AbstractMatrixSource, matrix_times
from ._particles import particle_gram


class AbstractGaussianProduct(eqx.Module):
    @abc.abstractmethod
    def __call__(
        self, m: Int[Array, ""], inputs: Float[Array, "particles new"]
    ) -> Float[Array, "particles new"]:
        """Standard Gaussian values of W(0) a / sqrt(n) at step m for the new inputs a."""


class ConditionalGaussianProduct(AbstractGaussianProduct):
    """`white_old @ rows.T + white_new @ block.T`, rows and block from the particle kernel of
    the new inputs and the stored ones (padded slots: zero inputs, identity factor rows).
    `filled`, where given, bounds the slots in use: from it on, every stored input is zero and
    every factor row the identity's (`filled_slots`), so the solve stops there."""

    stored_inputs: Float[Array, "steps particles stored"]
    stored_white: Float[Array, "steps particles stored"]
    stored_factor: Float[Array, "steps stored stored"]
    new_white: Float[Array, "steps particles new"]
    jitter: Float[Array, ""]
    filled: Int[Array, ""] | None = None

    def __call__(self, m, inputs):
        rows, block = conditional_factor(
            particle_gram(inputs, self.stored_inputs[m]),
            particle_gram(inputs, inputs),
            self.stored_factor[m],
            jitter=self.jitter,
            filled=self.filled,
        )
        return self.stored_white[m] @ rows.T + self.new_white[m] @ block.T


class MatrixProduct(AbstractGaussianProduct):
    """`Omega_m a / sqrt(N)`, or `Omega_m^T a / sqrt(N)` with `transpose`."""

    matrices: AbstractMatrixSource
    transpose: bool = eqx.field(static=True)

    def __call__(self, m, inputs):
        product = matrix_times(self.matrices(m), inputs, transpose=self.transpose)
        return product / jnp.sqrt(inputs.shape[0]).astype(inputs.dtype)


def filled_slots(
    stored_inputs: Float[Array, "steps particles stored"],
    stored_factor: Float[Array, "steps stored stored"],
) -> Int[Array, ""]:
    """One past the last slot whose stored inputs are not all zero or whose factor row is not
    the identity's, at any depth step: the solves of new pairs against this history have
    exactly zero solution rows from there on (zero kernel, identity rows), so they may stop."""
    slots = stored_factor.shape[-1]
    if slots == 0:  # no stored pairs (a run of zero SGD steps)
        return jnp.zeros((), jnp.int32)
    eye = jnp.eye(slots, dtype=stored_factor.dtype)
    used = jnp.any(stored_factor != eye, axis=(0, 2)) | jnp.any(stored_inputs != 0, axis=(0, 1))
    return jnp.max(jnp.where(used, jnp.arange(1, slots + 1), 0))
