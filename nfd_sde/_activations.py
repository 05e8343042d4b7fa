"""Activations phi and their derivatives phi', by name."""

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _linear(x):
    return x


def _gelu(x):
    return jax.nn.gelu(x, approximate=False)


_PHI: dict[str, Callable] = {
    "linear": _linear,
    "relu": jax.nn.relu,
    "tanh": jnp.tanh,
    "gelu": _gelu,
}


def _derivative(phi: Callable) -> Callable:
    return lambda x: jax.jvp(phi, (x,), (jnp.ones_like(x),))[1]


def activation(name: str) -> Callable:
    """phi for `name` in {linear, relu, tanh, gelu}."""
    try:
        return _PHI[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {tuple(_PHI)}") from None


def activation_derivative(name: str) -> Callable:
    """phi' for `name`, elementwise (relu'(0) = 0, as jax defines it)."""
    return _derivative(activation(name))
