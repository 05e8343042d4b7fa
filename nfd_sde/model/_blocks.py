"""Residual blocks as objects: each gives the finite network's block *and* the limit's increments.

A block is one layer of the residual stream, h_{l-1} -> h_l. The finite network scans
`apply(h, layer)` over its stacked layers; the limit solver steps `forward_increment` and
`backward_increment` over the depth grid, reading the stored training history and the
initial-weight products of `LimitContext`. Because both sides live in one class, the finite network
and its limit cannot describe different blocks.

The limit side of a block declares
* `weights`: the names of its initial weight matrices (each has a forward product, W(0) a, and a
  backward product, W~(0)^T g: `LimitContext.forward[name]`, `LimitContext.backward[name]`);
* `stored`: the per-(step, input) quantities of a training pair that later steps need, each
  (steps, particles, stored pairs): the learned weights act on new pairs only through them;
* `conditioning[name] = (forward input, backward input)`: which stored quantity each product's
  new values are conditioned on (what the matrix multiplied before);
* `network_weights[name] = (weight, offset)`: the finite ResNet's stacked arrays that hold that
  matrix and its decoupled backward offset (exact cross-checks feed them to the limit).
"""

import abc
from typing import ClassVar

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from solvers import AbstractGaussianProduct

from ._activations import AbstractActivation

BLOCK_ORDERS = ("pre", "post")


class BlockLayer(eqx.Module):
    """One layer's weights as the finite network's scan sees them (offsets: decoupled backward
    weights D = W~(0) - W(0), None for standard backprop)."""

    hidden: Float[Array, "width width"]
    first: Float[Array, "width width"] | None
    offset: Float[Array, "width width"] | None
    first_offset: Float[Array, "width width"] | None
    scale: Float[Array, ""]


class StepCoefficients(eqx.Module):
    """Per depth step m (traced, so a learning-rate sweep compiles once):

    beta (M,): beta(t_m); `drift` (M,): eta gamma0 eta_W eta_lr(t_m) beta(t_m)^2 / B, the
    one-step learning drift; `rate` (M,): eta gamma0 eta_W eta_lr(t_m) / B, the bare learning
    rate of the hidden weights; `first_gain`: L^c of the first internal layer (two-layer blocks),
    with L the number of steps of the grid."""

    beta: Float[Array, " steps"]
    drift: Float[Array, " steps"]
    rate: Float[Array, " steps"]
    first_gain: Float[Array, ""]


class LimitContext(eqx.Module):
    """What a block's limit increments read at step m of one SGD step's sweep."""

    phi: AbstractActivation
    coefficients: StepCoefficients
    history: dict[str, Float[Array, "steps particles stored"]]
    forward: dict[str, AbstractGaussianProduct]
    backward: dict[str, AbstractGaussianProduct]


class AbstractBlock(eqx.Module):
    """A residual block; `order` is "pre" (h_l = h_{l-1} + branch(phi(h_{l-1}))) or "post"
    (h_l = phi(h_{l-1} + branch(h_{l-1})), finite networks only)."""

    name: ClassVar[str]
    has_first: ClassVar[bool]
    weights: ClassVar[tuple[str, ...]]
    stored: ClassVar[tuple[str, ...]]
    conditioning: ClassVar[dict[str, tuple[str, str]]]
    network_weights: ClassVar[dict[str, tuple[str, str]]]
    order: str = eqx.field(static=True, default="pre")

    def __check_init__(self):
        if self.order not in BLOCK_ORDERS:
            raise ValueError(f"block order {self.order!r}; choose one of {BLOCK_ORDERS}")

    # ---------------------------------------------------------------- the finite network

    def features(self, phi: AbstractActivation, h):
        """What a layer passes on: phi(h) (pre-activation) or h itself (post, already
        activated)."""
        return phi(h) if self.order == "pre" else h

    @abc.abstractmethod
    def branch(self, phi: AbstractActivation, a, layer: BlockLayer, matmul_scale: float):
        """The residual branch's output for the features `a` the block reads."""

    def apply(self, phi: AbstractActivation, h, layer: BlockLayer, matmul_scale: float):
        """h_{l-1} -> h_l: h + branch(a) (pre), or phi(h + branch(h)) (post)."""
        h = h + self.branch(phi, self.features(phi, h), layer, matmul_scale)
        return phi(h) if self.order == "post" else h

    # ---------------------------------------------------------------------- the limit

    @abc.abstractmethod
    def forward_state(self, h0: Float[Array, "particles new"]) -> PyTree:
        """The state of the forward sweep at t = 0."""

    @abc.abstractmethod
    def forward_increment(self, y: PyTree, m, dt, ctx: LimitContext) -> PyTree:
        """The forward step m -> m + 1 (dt = 1/M)."""

    @abc.abstractmethod
    def stream(self, path: PyTree) -> Float[Array, "points particles new"]:
        """H_m at every grid point from the forward sweep's path."""

    @abc.abstractmethod
    def backward_state(self, g_end: Float[Array, "particles new"]) -> PyTree:
        """The state of the backward sweep at t = 1."""

    @abc.abstractmethod
    def backward_increment(self, y: PyTree, m, dt, ctx: LimitContext, forward: PyTree) -> PyTree:
        """The backward step m + 1 -> m (dt = -1/M); `forward` is the forward path of the same
        pairs."""

    @abc.abstractmethod
    def gradients(self, path: PyTree) -> Float[Array, "points particles new"]:
        """G_m at every grid point from the backward sweep's path."""

    @abc.abstractmethod
    def history_entries(
        self, phi: AbstractActivation, forward: PyTree, backward: PyTree
    ) -> dict[str, Float[Array, "steps particles new"]]:
        """The `stored` quantities of new training pairs, from their forward and backward
        paths."""
