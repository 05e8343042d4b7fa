"""Residual blocks as objects: each gives the finite network's block *and* the limit's increments.

A block is one layer of the residual stream, h_{l-1} -> h_l. The finite network scans
`apply(h, layer)` over its stacked layers; the limit solver steps `forward_increment` and
`backward_increment` over the depth grid, reading the stored training history and the
initial-weight products of `LimitContext`: the learned weights enter only through their accumulated updates
(`LimitContext.updates`). Because both sides live in one class, the finite network
and its limit cannot describe different blocks.

A block declares its hidden weight matrices once, as `weight_groups` (`WeightGroup`s: each
matrix's name in the limit, the finite network's parameter name, its learning rate's depth
exponent and what its products are conditioned on); `weights` and `conditioning` are read off
them. Each matrix has a forward product, W(0) a, and a backward product, W~(0)^T g
(`LimitContext.forward[name]`, `LimitContext.backward[name]`), and its learned terms carry its
gain (`StepCoefficients.gains[name]`). The limit side also declares `stored`: the per-(step,
input) quantities of a training pair that later steps need, each (steps, particles, stored
pairs): the learned weights act on new pairs only through them.
"""

import abc
from typing import ClassVar

import equinox as eqx
from jaxtyping import Array, Float, PyTree

from solvers import AbstractAccumulatedUpdates, AbstractGaussianProduct

from ._activations import AbstractActivation
from ._weight_groups import WeightGroup

BLOCK_ORDERS = ("pre", "post")


class BlockLayer(eqx.Module):
    """One layer's weights as the finite network's scan sees them, keyed by the block's parameter
    names (`WeightGroup.parameter`); `offsets`: the decoupled backward weights D = W~(0) - W(0)
    under the same names, None for standard backprop."""

    weights: dict[str, Float[Array, "width width"]]
    offsets: dict[str, Float[Array, "width width"]] | None
    scale: Float[Array, ""]

    def offset(self, name: str) -> Float[Array, "width width"] | None:
        """The backward offset of matrix `name`, None for standard backprop."""
        return None if self.offsets is None else self.offsets[name]


class StepCoefficients(eqx.Module):
    """Per depth step m (traced, so a learning-rate sweep compiles once):

    beta (M,): beta(t_m); `drift` (M,): eta gamma0 eta_W eta_lr(t_m) beta(t_m)^2 / B, the
    one-step learning drift; `rate` (M,): eta gamma0 eta_W eta_lr(t_m) / B, the bare learning
    rate of the hidden weights; `gains[name]`: M^c, by which every learned term of the block's
    matrix `name` is multiplied (c its group's learning-rate exponent, `WeightGroup.exponent`; 1
    where c = 0), with M the number of steps of the grid."""

    beta: Float[Array, " steps"]
    drift: Float[Array, " steps"]
    rate: Float[Array, " steps"]
    gains: dict[str, Float[Array, ""]]


class LimitContext(eqx.Module):
    """What a block's limit increments read at step m of one SGD step's sweep: `updates`, each
    matrix's accumulated update at step m applied to vectors (`updates.forward(name, m, a)`,
    Delta W a; `updates.backward(name, m, g)`, Delta W^T g; no coefficients), the initial
    weights' products `forward` and `backward`."""

    phi: AbstractActivation
    coefficients: StepCoefficients
    updates: AbstractAccumulatedUpdates
    forward: dict[str, AbstractGaussianProduct]
    backward: dict[str, AbstractGaussianProduct]


class AbstractBlock(eqx.Module):
    """A residual block; `order` is "pre" (h_l = h_{l-1} + branch(phi(h_{l-1}))) or "post"
    (h_l = phi(h_{l-1} + branch(h_{l-1})), finite networks only)."""

    name: ClassVar[str]
    weight_groups: ClassVar[tuple[WeightGroup, ...]]
    stored: ClassVar[tuple[str, ...]]
    order: str = eqx.field(static=True, default="pre")

    def __check_init__(self):
        if self.order not in BLOCK_ORDERS:
            raise ValueError(f"block order {self.order!r}; choose one of {BLOCK_ORDERS}")

    @property
    def weights(self) -> tuple[str, ...]:
        """The limit's names of the block's matrices, in the order of `weight_groups`."""
        return tuple(group.limit for group in self.weight_groups)

    @property
    def conditioning(self) -> dict[str, tuple[str, str]]:
        """name -> (forward input, backward input): the stored quantities each matrix's new
        products are conditioned on (what it multiplied before)."""
        return {group.limit: group.conditioning for group in self.weight_groups}

    @property
    def update_pairs(self) -> dict[str, tuple[str, str]]:
        """name -> (output, input): the stored quantities each matrix's accumulated update is
        made of (`WeightGroup.update_pair`)."""
        return {group.limit: group.update_pair for group in self.weight_groups}

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
