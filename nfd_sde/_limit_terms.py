"""The NFD equations (spec section 2) as diffrax terms: drifts, noise scales, terminal values.

Placement (spec section 2, "Discretisation that matches the finite network"): forward step m
reads phi(H_m) at its start and the stored gradients G^j_{m+1} at its end; backward step
m+1 -> m reads Gam from G_{m+1}, phi(H^j_m) in the drift and phi'(H^k_m) as multiplier. All
coefficients of step m are read by index, so at M = L the scheme is the n -> infinity limit of the
depth-L network, with no discretisation mismatch.

Backward paths are loss-gradient paths G(x) = sum_c chi_c(x) G_c(x) (the only direction SGD ever
uses: the updates, and the backward weights' action on them, are linear in chi). With them the
learning drift needs no separate chi and the backward noise kernel Gam is over the same paths.
"""

from collections.abc import Callable

import diffrax
import equinox as eqx
from jaxtyping import Array, Float

from solvers import (
    AbstractMatrixSource,
    ConditionalGaussianNoise,
    DepthGrid,
    GaussianMatrixNoise,
    particle_gram,
)


class StepCoefficients(eqx.Module):
    """Per depth step m: beta(t_m), and the learning-drift factor
    eta gamma0 eta_W eta_lr(t_m) beta(t_m)^2 / B (the 1/B is the minibatch mean)."""

    beta: Float[Array, " steps"]
    drift: Float[Array, " steps"]


class ForwardDrift(eqx.Module):
    """-eta_eff eta_lr beta^2 (1/B) sum_{j<k, b} G^j_{m+1}(x_jb) Phi^{jk}_m(x_jb, x)."""

    phi: Callable
    coefficients: StepCoefficients
    stored_features: Float[Array, "steps particles stored"]
    stored_grads: Float[Array, "steps particles stored"]
    grid: DepthGrid

    def __call__(self, t, y, args):
        m = self.grid.step_index(t, reverse=False)
        kernel = particle_gram(self.stored_features[m], self.phi(y))
        return -self.coefficients.drift[m] * (self.stored_grads[m] @ kernel)


class BackwardDrift(eqx.Module):
    """phi'(H^k_m) eta_eff eta_lr beta^2 (1/B) sum_{j<k,b} phi(H^j_m(x_jb)) Gam^{jk}_{m+1}(x_jb, x).

    The sign is that of d/dt: integrating from t_{m+1} down to t_m subtracts it times 1/M.
    """

    multiplier: Float[Array, "points particles new"]
    coefficients: StepCoefficients
    stored_features: Float[Array, "steps particles stored"]
    stored_grads: Float[Array, "steps particles stored"]
    grid: DepthGrid

    def __call__(self, t, y, args):
        m = self.grid.step_index(t, reverse=True)
        kernel = particle_gram(self.stored_grads[m], y)
        return self.coefficients.drift[m] * self.multiplier[m] * (self.stored_features[m] @ kernel)


class StepScale(eqx.Module):
    """The noise multiplier of step m: beta(t_m), times phi'(H^k_m) in the backward sweep."""

    beta: Float[Array, " steps"]
    grid: DepthGrid
    reverse: bool = eqx.field(static=True)
    multiplier: Float[Array, "points particles new"] | None = None

    def __call__(self, t, y, args):
        m = self.grid.step_index(t, reverse=self.reverse)
        if self.multiplier is None:
            return self.beta[m]
        return self.beta[m] * self.multiplier[m]


class Identity(eqx.Module):
    def __call__(self, t, y, args):
        return y


class Activated(eqx.Module):
    phi: Callable

    def __call__(self, t, y, args):
        return self.phi(y)


class FieldNoise(eqx.Module):
    """Stored white increments and growing Cholesky factors of the training pairs."""

    white: Float[Array, "steps particles stored"]
    factor: Float[Array, "steps stored stored"]


def _diffusion(
    noise: FieldNoise | AbstractMatrixSource,
    *,
    features: Callable,
    scale: StepScale,
    stored: Array,
    new_white: Array | None,
    grid: DepthGrid,
    jitter: float,
):
    """Field space: conditional Gaussian increments over the stored pairs. Weight space: the
    step's Gaussian matrix, transposed in the backward sweep (the network's W^T)."""
    if isinstance(noise, FieldNoise):
        return ConditionalGaussianNoise(
            features=features,
            scale=scale,
            stored_features=stored,
            stored_white=noise.white,
            stored_factor=noise.factor,
            new_white=new_white,
            grid=grid,
            reverse=scale.reverse,
            jitter=jitter,
        )
    return GaussianMatrixNoise(
        features=features,
        scale=scale,
        matrices=noise,
        grid=grid,
        reverse=scale.reverse,
        transpose=scale.reverse,
    )


def forward_terms(
    *,
    phi: Callable,
    coefficients: StepCoefficients,
    grid: DepthGrid,
    stored_features: Array,
    stored_grads: Array,
    noise: FieldNoise | AbstractMatrixSource,
    new_white: Array | None,
    jitter: float,
) -> diffrax.MultiTerm:
    """Drift and noise of the forward sweep; the noise kernel is that of phi(H_m)."""
    drift = ForwardDrift(phi, coefficients, stored_features, stored_grads, grid)
    diffusion = _diffusion(
        noise,
        features=Activated(phi),
        scale=StepScale(coefficients.beta, grid, reverse=False),
        stored=stored_features,
        new_white=new_white,
        grid=grid,
        jitter=jitter,
    )
    return diffrax.MultiTerm(diffrax.ODETerm(drift), diffusion)


def backward_terms(
    *,
    multiplier: Array,
    coefficients: StepCoefficients,
    grid: DepthGrid,
    stored_features: Array,
    stored_grads: Array,
    noise: FieldNoise | AbstractMatrixSource,
    new_white: Array | None,
    jitter: float,
) -> diffrax.MultiTerm:
    """Drift and noise of the backward sweep; the noise kernel is that of G_{m+1}."""
    drift = BackwardDrift(multiplier, coefficients, stored_features, stored_grads, grid)
    diffusion = _diffusion(
        noise,
        features=Identity(),
        scale=StepScale(coefficients.beta, grid, reverse=True, multiplier=multiplier),
        stored=stored_grads,
        new_white=new_white,
        grid=grid,
        jitter=jitter,
    )
    return diffrax.MultiTerm(diffrax.ODETerm(drift), diffusion)
