"""Reference solutions for the NFD kernels at initialisation (spec section 3), for tests and notebooks.

At init there is no learning drift and dH_t = beta(t) dZ_t with dZ independent of H_t, so the
two-input kernel Sigma_t = E[H_t(x) H_t(x')] solves
    dSigma/dt = beta(t)^2 E_{(a,b) ~ N(0, Sigma_t)}[phi(a) phi(b)],
in closed form for linear phi (Sigma_0 e^{int beta^2}) and through the degree-1 arc-cosine kernel
for ReLU. The particle scheme's expectation on a grid of M steps is exactly the explicit Euler
recursion of this ODE (`euler_kernel`), so particles are compared with it within Monte Carlo error,
and it converges to the ODE solution (`ode_kernel`) at rate 1/M.

The decoupled backward paths at init (linear readout, G_1 = chi V) have the kernel
Gam_t(x, x') = E[G_t(x) G_t(x')], and the backward step m+1 -> m multiplies independent noise of
covariance beta(t_m)^2 Gam_{m+1} dt by phi'(H_m), so
    Gam_m = Gam_{m+1} (1 + beta(t_m)^2 E_{(a,b) ~ N(0, Sigma_m)}[phi'(a) phi'(b)] / M),
with Sigma_m the forward recursion's kernel; for ReLU E[phi'(a) phi'(b)] is the degree-0
arc-cosine kernel (pi - theta) / (2 pi) (`euler_gradient_kernel`).
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..model import AbstractProfile


def relu_expectation(sigma: Float[Array, "3"]) -> Float[Array, "3"]:
    """E[relu(a) relu(b)] for (a, b) ~ N(0, [[s11, s12], [s12, s22]]), for the entries
    (11, 22, 12): the degree-1 arc-cosine kernel sqrt(s11 s22)/(2 pi) (sin th + (pi - th) cos th)."""
    s11, s22, s12 = sigma
    norm = jnp.sqrt(s11 * s22)
    theta = jnp.arccos(jnp.clip(s12 / norm, -1.0, 1.0))
    cross = norm / (2 * jnp.pi) * (jnp.sin(theta) + (jnp.pi - theta) * jnp.cos(theta))
    return jnp.stack([s11 / 2, s22 / 2, cross])


def relu_derivative_expectation(sigma: Float[Array, "3"]) -> Float[Array, "3"]:
    """E[relu'(a) relu'(b)] for (a, b) ~ N(0, [[s11, s12], [s12, s22]]), entries (11, 22, 12):
    the degree-0 arc-cosine kernel (pi - theta) / (2 pi)."""
    s11, s22, s12 = sigma
    theta = jnp.arccos(jnp.clip(s12 / jnp.sqrt(s11 * s22), -1.0, 1.0))
    half = 0.5 * jnp.ones_like(theta)
    return jnp.stack([half, half, (jnp.pi - theta) / (2 * jnp.pi)])


def _expectation(activation: str):
    if activation == "linear":
        return lambda sigma: sigma
    if activation == "relu":
        return relu_expectation
    raise ValueError(f"reference kernels exist for 'linear' and 'relu', not {activation!r}")


def initial_sigma(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Sigma_0 entries (11, 22, 12) from H_0(x) = U x / sqrt(d), U ~ N(0, I)."""
    d = len(x1)
    return np.array([x1 @ x1 / d, x2 @ x2 / d, x1 @ x2 / d])


def ode_kernel(
    sigma0: np.ndarray, times: np.ndarray, *, activation: str, beta: AbstractProfile
) -> np.ndarray:
    """Sigma_t at `times` (entries 11, 22, 12), by an adaptive diffrax solve (Tsit5, float64,
    rtol = atol = 1e-11, so its error is far below 1e-6)."""
    expectation = _expectation(activation)
    with jax.enable_x64(True):
        term = diffrax.ODETerm(lambda t, s, args: beta(t) ** 2 * expectation(s))
        solution = diffrax.diffeqsolve(
            term,
            diffrax.Tsit5(),
            t0=0.0,
            t1=float(np.max(times)),
            dt0=1e-3,
            y0=jnp.asarray(sigma0, jnp.float64),
            saveat=diffrax.SaveAt(ts=jnp.asarray(times, jnp.float64)),
            stepsize_controller=diffrax.PIDController(rtol=1e-11, atol=1e-11),
            max_steps=100_000,
        )
        return np.asarray(solution.ys)


def euler_kernel(
    sigma0: np.ndarray, steps: int, *, activation: str, beta: AbstractProfile
) -> np.ndarray:
    """Sigma at every grid point of the explicit Euler recursion with M = `steps`:
    Sigma_{m+1} = Sigma_m + beta(t_m)^2 E[phi phi](Sigma_m) / M. Shape (steps + 1, 3)."""
    expectation = _expectation(activation)
    with jax.enable_x64(True):
        betas = np.asarray(beta(jnp.arange(steps) / steps), np.float64)
        sigma = jnp.asarray(sigma0, jnp.float64)
        out = [sigma]
        for m in range(steps):
            sigma = sigma + betas[m] ** 2 * expectation(sigma) / steps
            out.append(sigma)
        return np.asarray(jnp.stack(out))


def euler_gradient_kernel(
    sigma: np.ndarray, *, activation: str, beta: AbstractProfile
) -> np.ndarray:
    """Gam at every grid point (entries 11, 22, 12) of the decoupled backward recursion at init
    (module docstring), normalised by chi(x) chi(x') E[V^2]; `sigma` is `euler_kernel`'s path
    (steps + 1, 3). Shape (steps + 1, 3)."""
    steps = len(sigma) - 1
    if activation == "linear":
        gain = np.ones((steps, 3))
    elif activation == "relu":
        with jax.enable_x64(True):
            gain = np.asarray(jax.vmap(relu_derivative_expectation)(jnp.asarray(sigma[:-1])))
    else:
        raise ValueError(f"reference kernels exist for 'linear' and 'relu', not {activation!r}")
    betas = np.asarray(beta(jnp.arange(steps) / steps), np.float64)
    out = [np.ones(3)]
    for m in reversed(range(steps)):
        out.append(out[-1] * (1.0 + betas[m] ** 2 * gain[m] / steps))
    return np.stack(out[::-1])
