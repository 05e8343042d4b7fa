"""Per-example losses ell(f, y) and their derivatives chi = d ell / d f, as objects; each loss
also owns what its targets are (a teacher's outputs made into targets, targets given without an
output axis)."""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
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

    @abc.abstractmethod
    def teacher_targets(
        self, y: np.ndarray, rng: np.random.Generator, label_noise: float
    ) -> np.ndarray:
        """Targets from a teacher's outputs `y` (examples, C)."""

    @abc.abstractmethod
    def targets_without_output_axis(self, y: np.ndarray, outputs: int) -> np.ndarray:
        """Targets (..., C) from per-example targets given without an output axis."""


class MSE(AbstractLoss):
    """|f - y|^2 / 2 summed over outputs."""

    name = "mse"

    def __call__(self, f, y):
        return 0.5 * jnp.sum((f - y) ** 2, axis=-1)

    def derivative(self, f, y):
        return f - y

    def teacher_targets(self, y, rng, label_noise):
        return y + label_noise * rng.standard_normal(y.shape)

    def targets_without_output_axis(self, y, outputs):
        """Scalar regression targets: C = 1."""
        return np.asarray(y, float)[..., None]


class CrossEntropy(AbstractLoss):
    """Softmax cross-entropy with soft labels y (rows summing to 1 for one-hot labels)."""

    name = "cross_entropy"

    def __call__(self, f, y):
        return -jnp.sum(y * jax.nn.log_softmax(f, axis=-1), axis=-1)

    def derivative(self, f, y):
        return jax.nn.softmax(f, axis=-1) * jnp.sum(y, axis=-1, keepdims=True) - y

    def teacher_targets(self, y, rng, label_noise):
        """One-hot labels of the teacher's largest output."""
        classes = y.shape[-1]
        if classes < 2:
            raise ValueError("cross-entropy needs model.outputs >= 2 classes")
        return np.eye(classes)[np.argmax(y, axis=-1)]

    def targets_without_output_axis(self, y, outputs):
        """Class indices, made one-hot over `outputs` classes."""
        if y.dtype.kind not in "iu" and not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("cross-entropy targets without an output axis must be class indices")
        labels = y.astype(int)
        if labels.min() < 0 or labels.max() >= outputs:
            raise ValueError(f"class labels must lie in [0, {outputs}) for model.outputs={outputs}")
        return np.eye(outputs)[labels]


LOSSES = {cls.name: cls for cls in (MSE, CrossEntropy)}


def loss(name: str) -> AbstractLoss:
    """The loss called `name` (one of `LOSSES`)."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {tuple(LOSSES)}") from None
