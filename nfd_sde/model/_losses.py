"""Per-example losses ell(f, y) and their derivatives chi = d ell / d f, as objects."""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


class AbstractLoss(eqx.Module):
    name: ClassVar[str]

    @abc.abstractmethod
    def __call__(
        self, f: Float[Array, "... outputs"], y: Float[Array, "... outputs"]
    ) -> Float[Array, "..."]:
        """ell(f, y) per example."""

    @abc.abstractmethod
    def derivative(
        self, f: Float[Array, "... outputs"], y: Float[Array, "... outputs"]
    ) -> Float[Array, "... outputs"]:
        """chi = d ell / d f, in closed form."""


class MSE(AbstractLoss):
    """|f - y|^2 / 2 summed over outputs."""

    name = "mse"

    def __call__(self, f, y):
        return 0.5 * jnp.sum((f - y) ** 2, axis=-1)

    def derivative(self, f, y):
        return f - y


class CrossEntropy(AbstractLoss):
    """Softmax cross-entropy with soft labels y (rows summing to 1 for one-hot labels)."""

    name = "cross_entropy"

    def __call__(self, f, y):
        return -jnp.sum(y * jax.nn.log_softmax(f, axis=-1), axis=-1)

    def derivative(self, f, y):
        return jax.nn.softmax(f, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y


LOSSES = {cls.name: cls for cls in (MSE, CrossEntropy)}


def loss(name: str) -> AbstractLoss:
    """The loss called `name` (one of `LOSSES`)."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {tuple(LOSSES)}") from None
