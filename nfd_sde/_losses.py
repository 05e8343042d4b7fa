"""Per-example losses ell(f, y) and their derivatives chi = d ell / d f."""

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


def example_loss(
    name: str, f: Float[Array, "... outputs"], y: Float[Array, "... outputs"]
) -> Float[Array, "..."]:
    """`mse`: |f - y|^2 / 2 summed over outputs; `cross_entropy`: softmax CE, soft labels y."""
    if name == "mse":
        return 0.5 * jnp.sum((f - y) ** 2, axis=-1)
    if name == "cross_entropy":
        return -jnp.sum(y * jax.nn.log_softmax(f, axis=-1), axis=-1)
    raise ValueError(f"unknown loss {name!r}; choose 'mse' or 'cross_entropy'")


def loss_derivative(
    name: str, f: Float[Array, "... outputs"], y: Float[Array, "... outputs"]
) -> Float[Array, "... outputs"]:
    """chi = d ell / d f, in closed form (`f - y`, or `softmax(f) - y` for labels summing to 1)."""
    if name == "mse":
        return f - y
    if name == "cross_entropy":
        return jax.nn.softmax(f, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y
    raise ValueError(f"unknown loss {name!r}; choose 'mse' or 'cross_entropy'")
