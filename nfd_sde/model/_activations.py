"""Activations phi as objects: `phi(x)`, `phi.derivative(x)`, and (where known) the Gaussian
moment rate E[phi(z)^2] / E[z^2] for centred Gaussian z, which closed forms use."""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp


class AbstractActivation(eqx.Module):
    name: ClassVar[str]
    moment_rate: ClassVar[float | None] = None

    @abc.abstractmethod
    def __call__(self, x):
        """phi(x), elementwise."""

    def derivative(self, x):
        """phi'(x), elementwise (forward-mode derivative; relu'(0) = 0 as jax defines it)."""
        return jax.jvp(self, (x,), (jnp.ones_like(x),))[1]


class Linear(AbstractActivation):
    name = "linear"
    moment_rate = 1.0

    def __call__(self, x):
        return x


class ReLU(AbstractActivation):
    name = "relu"
    moment_rate = 0.5

    def __call__(self, x):
        return jax.nn.relu(x)


class Tanh(AbstractActivation):
    name = "tanh"

    def __call__(self, x):
        return jnp.tanh(x)


class GELU(AbstractActivation):
    name = "gelu"

    def __call__(self, x):
        return jax.nn.gelu(x, approximate=False)


ACTIVATIONS = {cls.name: cls for cls in (Linear, ReLU, Tanh, GELU)}


def activation(name: str) -> AbstractActivation:
    """The activation called `name` (one of `ACTIVATIONS`)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose one of {tuple(ACTIVATIONS)}"
        ) from None
