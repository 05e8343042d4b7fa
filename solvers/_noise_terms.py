"""Noise terms for particle systems whose noise covariance is a kernel of the particles' own law.

Both are diffrax terms (vector field x control -> increment), used beside an `ODETerm` drift in a
`MultiTerm`. A state is an array (particles, new pairs). The covariance of the increments over
pairs is the particle kernel of `features(t, y, args)`, and the increment is multiplied
elementwise by `scale(t, y, args)`. Coefficients of depth step m are read by index (see
`DepthGrid`). Controls follow diffrax's convention for paths: the control over [t0, t1] is an
increment, antisymmetric in the interval.

* `ConditionalGaussianNoise` (field space): each particle carries standard increments per pair;
  new pairs are conditioned on stored pairs through the growing Cholesky factor.
* `GaussianMatrixNoise` (weight space): increments `Omega_m features / sqrt(N)` with an (N, N)
  Gaussian matrix per step (or its transpose), as a width-N network's weights would give.
"""

from collections.abc import Callable

import equinox as eqx
import jax.numpy as jnp
from diffrax import AbstractTerm
from jaxtyping import Array, Float

from ._conditional_gaussian import conditional_factor
from ._depth_grid import DepthGrid
from ._matrices import AbstractMatrixSource
from ._particles import particle_gram


class ConditionalGaussianNoise(AbstractTerm):
    """Increment `scale * (w_old @ rows.T + w_new @ block.T)` with `w ~ N(0, |dt|)`.

    `stored_features[m]` (particles, old) are the stored pairs' features at step m,
    `stored_white[m]` their standard increments and `stored_factor[m]` (old, old) their
    lower-triangular factor; `new_white[m]` (particles, new) are the new pairs' own increments.
    """

    features: Callable
    scale: Callable
    stored_features: Float[Array, "steps particles old"]
    stored_white: Float[Array, "steps particles old"]
    stored_factor: Float[Array, "steps old old"]
    new_white: Float[Array, "steps particles new"]
    grid: DepthGrid
    reverse: bool = eqx.field(static=True)
    jitter: float = eqx.field(static=True)

    def vf(self, t, y, args):
        m = self.grid.step_index(t, reverse=self.reverse)
        feats = self.features(t, y, args)
        rows, block = conditional_factor(
            particle_gram(feats, self.stored_features[m]),
            particle_gram(feats, feats),
            self.stored_factor[m],
            jitter=self.jitter,
        )
        return self.scale(t, y, args), rows, block

    def contr(self, t0, t1, **kwargs):
        m = self.grid.interval_index(t0, t1)
        root_dt = _signed_root(t0, t1)
        return self.stored_white[m] * root_dt, self.new_white[m] * root_dt

    def prod(self, vf, control):
        scale, rows, block = vf
        white_old, white_new = control
        return _direction(self.reverse) * scale * (white_old @ rows.T + white_new @ block.T)


class GaussianMatrixNoise(AbstractTerm):
    """Increment `scale * Omega_m features / sqrt(N) * sqrt|dt|` (or with `Omega_m^T`)."""

    features: Callable
    scale: Callable
    matrices: AbstractMatrixSource
    grid: DepthGrid
    reverse: bool = eqx.field(static=True)
    transpose: bool = eqx.field(static=True)

    def vf(self, t, y, args):
        return self.scale(t, y, args), self.features(t, y, args)

    def contr(self, t0, t1, **kwargs):
        m = self.grid.interval_index(t0, t1)
        omega = self.matrices(m)
        return (omega.T if self.transpose else omega) * _signed_root(t0, t1)

    def prod(self, vf, control):
        scale, feats = vf
        root_n = jnp.sqrt(feats.shape[0]).astype(feats.dtype)
        return _direction(self.reverse) * scale * (control @ feats) / root_n


def _signed_root(t0, t1):
    """sign(t1 - t0) sqrt|t1 - t0|: controls are path increments, antisymmetric in the interval
    (diffrax reverses a backward solve's controls this way)."""
    dt = t1 - t0
    return jnp.sign(dt) * jnp.sqrt(jnp.abs(dt))


def _direction(reverse: bool) -> float:
    """A backward sweep adds its noise with the sign it has in reversed time (spec section 2:
    G_{t-dt} = G_t + phi' (beta dZ~ ...)), so the reversed control's sign is undone."""
    return -1.0 if reverse else 1.0
