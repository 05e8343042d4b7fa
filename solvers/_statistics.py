"""Monte Carlo statistics of particle estimates: control variates within a particle system,
and standard errors across independent systems (groups).

Particles of one system interact through their empirical kernels, so they are not independent
samples; independent systems are. The standard error of a group mean is the spread of the groups
(`group_mean_se`), and a nonlinear function of group means (a loss) gets its error by the
jackknife over groups.
"""

import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float


def control_variate_means(
    values: Float[Array, "particles quantities"], controls: Float[Array, "particles controls"]
) -> Float[Array, " quantities"]:
    """Particle means of `values` corrected by `controls` whose expectation is exactly zero:
    mean(Y) - beta^T mean(X), beta the least-squares regression of Y on X (with intercept) over
    the particles, i.e. the variance-minimising coefficient (Var X)^-1 Cov(X, Y). Its own
    estimation adds a bias O(1/N)."""
    x_mean = jnp.mean(controls, axis=0)
    y_mean = jnp.mean(values, axis=0)
    x = controls - x_mean
    y = values - y_mean
    gram = x.T @ x
    scale = jnp.maximum(jnp.trace(gram) / gram.shape[0], jnp.finfo(gram.dtype).tiny)
    beta = jnp.linalg.solve(
        gram + 1e-10 * scale * jnp.eye(gram.shape[0], dtype=gram.dtype), x.T @ y
    )
    return y_mean - x_mean @ beta


def group_mean_se(values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Mean over the leading (group) axis and its standard error std / sqrt(G) (None for G = 1).
    Non-finite values (a diverged run) give NaN or infinite statistics, without a warning."""
    values = np.asarray(values, dtype=float)
    groups = values.shape[0]
    with np.errstate(invalid="ignore", over="ignore"):
        mean = values.mean(axis=0)
        if groups < 2:
            return mean, None
        return mean, values.std(axis=0, ddof=1) / math.sqrt(groups)


def jackknife_se(
    values: np.ndarray, function: Callable[[np.ndarray], np.ndarray]
) -> np.ndarray | None:
    """Jackknife standard error over groups (leading axis) of `function(mean over groups)`."""
    values = np.asarray(values, dtype=float)
    groups = values.shape[0]
    if groups < 2:
        return None
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged run's values are huge
        total = values.sum(axis=0)
        leave_out = np.stack([function((total - v) / (groups - 1)) for v in values])
        spread = leave_out - leave_out.mean(axis=0)
        return np.sqrt((groups - 1) / groups * np.sum(spread**2, axis=0))
