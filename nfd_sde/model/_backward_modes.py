"""Backward modes: which matrix the backward pass multiplies the gradient by, W_l(0)^T (standard
backprop) or an independent copy W~_l(0)^T (decoupled, the NFD's gradient-independence system).

Everything a mode means lives in its class, in one place per mode:
* the finite network: whether it carries backward offsets W~ - W (drawn from their own key) and
  how many N x N copies of the hidden weights its training holds (`weight_copies`);
* the limit: `reuses_forward_weights` (the backward sweep reveals the same initial matrix as the
  forward sweep); each representation says which modes it serves
  (`solvers.AbstractRepresentation.supports`), so the plan asks the representations, not the
  mode's name;
* the closed forms of the first SGD step (spec sections 3 and 5), `linear_first_step` and
  `two_layer_first_step`.
A config names a mode by its `name` (`network.backward`, `solver.backward`); `backward_mode`
turns the name into the object, once, at the boundary.
"""

import abc
import math
from typing import ClassVar

import equinox as eqx


class AbstractBackwardMode(eqx.Module):
    """A backward mode; instances have no fields, so two of the same class are equal."""

    name: ClassVar[str]
    description: ClassVar[str]
    reuses_forward_weights: ClassVar[bool]

    @property
    def has_backward_offsets(self) -> bool:
        """The finite network keeps W~ - W per hidden matrix (independent backward weights)."""
        return not self.reuses_forward_weights

    @property
    def weight_copies(self) -> int:
        """N x N copies of each hidden matrix the finite network holds: 1, or 2 with offsets."""
        return 1 if self.reuses_forward_weights else 2

    @abc.abstractmethod
    def linear_first_step(self, rate: float, depth: int | None) -> float:
        """(f^1 - f^0) / (eta y) after one SGD step of the linear first-step problem (spec
        section 3) with branch variance `rate` (beta^2); `depth` None: the L -> infinity
        limit."""

    @abc.abstractmethod
    def two_layer_first_step(self, depth: int, exponent: float) -> float:
        """(f^1 - f^0) / (eta y) for two-layer blocks (spec section 5) as n -> infinity at depth
        L, the first layer learning at eta L^c (`exponent` c)."""


class Standard(AbstractBackwardMode):
    """Real backprop: the backward pass multiplies by W_l(0)^T, the forward matrix itself."""

    name: ClassVar[str] = "standard"
    description: ClassVar[str] = "standard backprop"
    reuses_forward_weights: ClassVar[bool] = True

    def linear_first_step(self, rate: float, depth: int | None) -> float:
        if depth is None:
            return rate * math.exp(rate)
        return rate * (1.0 + rate / depth) ** (depth - 1)

    def two_layer_first_step(self, depth: int, exponent: float) -> float:
        # W_{l,2} W_{l,2}^T / n -> I makes the first layer's update coherent: L^c per unit depth
        return (1.0 + 1.0 / depth) ** (depth - 1) * (1.0 + depth**exponent)


class Decoupled(AbstractBackwardMode):
    """Independent backward weights W~_l(0) (the NFD): the gradient-independence system."""

    name: ClassVar[str] = "decoupled"
    description: ClassVar[str] = "decoupled backward weights"
    reuses_forward_weights: ClassVar[bool] = False

    def linear_first_step(self, rate: float, depth: int | None) -> float:
        if depth is None:
            return math.exp(rate) - 1.0
        return (1.0 + rate / depth) ** depth - 1.0

    def two_layer_first_step(self, depth: int, exponent: float) -> float:
        # every c: W~_{l,2} is independent of W_{l,2}, so the first layer's update averages out
        return (1.0 + 1.0 / depth) ** depth - 1.0


BACKWARD_MODES: dict[str, AbstractBackwardMode] = {
    mode.name: mode for mode in (Standard(), Decoupled())
}


def backward_mode(mode: "str | AbstractBackwardMode") -> AbstractBackwardMode:
    """The mode object for a config's name (or the object itself); an unknown name is refused
    with the choices."""
    if isinstance(mode, AbstractBackwardMode):
        return mode
    try:
        return BACKWARD_MODES[mode]
    except (KeyError, TypeError):
        raise ValueError(
            f"backward={mode!r} is not a backward mode; choose one of {tuple(BACKWARD_MODES)}"
        ) from None
