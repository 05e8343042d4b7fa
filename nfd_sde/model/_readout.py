"""The readout f = v . r(h_L) / (gamma0 n): on phi(h_L) or on h_L itself, as objects.

`features(h)` is r(h); `multiplier(h)` is r'(h), the factor that starts the backward pass
(g_L = v * r'(h_L)). Post-activation networks read out h_L, which is already activated.
"""

import abc
from typing import ClassVar

import equinox as eqx

from ._activations import AbstractActivation


class AbstractReadout(eqx.Module):
    name: ClassVar[str]

    @abc.abstractmethod
    def features(self, h):
        """What the readout weights multiply."""

    @abc.abstractmethod
    def multiplier(self, h):
        """d features / d h, elementwise (None: 1)."""


class PhiReadout(AbstractReadout):
    name = "phi"
    phi: AbstractActivation

    def features(self, h):
        return self.phi(h)

    def multiplier(self, h):
        return self.phi.derivative(h)


class LinearReadout(AbstractReadout):
    name = "linear"

    def features(self, h):
        return h

    def multiplier(self, h):
        return None


READOUTS = ("phi", "linear")
