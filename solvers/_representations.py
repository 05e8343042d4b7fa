"""Two exact particle representations of a sequence of initial Gaussian matrices' products.

A system of particles multiplies by initial Gaussian matrices, named `weights` (W, or W1 and W2),
in a forward sweep (W(0) a) and a backward sweep (W~(0)^T g: an independent copy, or W(0)^T itself
when the backward pass reuses the forward weights). Each product is conditioned on what the same
matrix did to the stored pairs; `conditioning[name] = (forward input, backward input)` names the
stored quantity it multiplied. A representation gives, for one sweep, the products as
`AbstractGaussianProduct`s, and records the new stored pairs.

* `FieldSpace`: each particle carries standard increments per (pair, depth step); correlations
  come from the growing Cholesky factor of the particle kernel (`FieldNoise` per product). Cost
  per depth step ~ particles x pairs, memory ~ particles x pairs x steps. Backward weights are
  always an independent copy (the decoupled system).
* `WeightSpace`: an (N, N) Gaussian matrix per depth step, regenerated from a key. Cost per depth
  step ~ particles^2 x pairs; the backward product is the same matrix transposed (`reuse=True`,
  standard backprop) or an independent one.

Keys: the first weight uses the base keys, the i-th (i >= 1) `fold_in(base, i)`. A solve on a
grid nested `refinement` times in a finer one draws its noise on the finer grid and sums it
(shared Brownian paths across nested grids).

With a `mesh`, the new white noise (field space) and the matrices' rows (weight space) are laid
out with their particle axis split over its devices (`solvers.AxisMesh`); the stored white noise
may be a device array or a history kept outside device memory (`AbstractStreamedHistory`).
"""

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._accumulated_updates import STORED_PAIRS, AbstractUpdateForm
from ._depth_grid import DepthGrid
from ._gaussian_products import (
    AbstractGaussianProduct,
)
from ._representation_costs import ProblemSizes, RepresentationMemory
from ._sharding import AxisMesh
from ._streamed_history import AbstractStreamedHistory

DIRECTIONS = ("forward", "backward")


class FieldNoise(eqx.Module):
    """Stored standard increments of the training pairs (on the device or in host memory) and
    their growing Cholesky factors."""

    white: Float[Array, "steps particles stored"] | AbstractStreamedHistory
    factor: Float[Array, "steps stored stored"]


# an empty (steps, particles, stored) per-particle array, given its name
EmptyParticles = Callable[[str], Float[Array, "steps particles stored"] | AbstractStreamedHistory]


def weight_keys(base: PRNGKeyArray, weights: tuple[str, ...]) -> dict[str, PRNGKeyArray]:
    return {w: base if i == 0 else jax.random.fold_in(base, i) for i, w in enumerate(weights)}


def representation_keys(key: PRNGKeyArray) -> dict[str, PRNGKeyArray]:
    """The base keys a representation draws from, split off a solve's one key: the field
    spaces' forward and backward increments, the weight space's forward and backward matrices."""
    names = ("forward", "backward", "forward_matrices", "backward_matrices")
    return dict(zip(names, jax.random.split(key, 4), strict=True))


class AbstractRepresentation(eqx.Module):
    """A representation of the initial matrices' products. Besides the products themselves, it
    owns what a planner needs to choose it: `name` (what `solver.representation` calls it),
    `label` (what a plan prints), which backward modes it serves (`supports`), its cost and
    memory at given sizes (`solvers._representation_costs`), whether its history can be kept
    in host memory (`streamable`), and how it is built from one key (`build`)."""

    name: ClassVar[str]
    label: ClassVar[str]
    streamable: ClassVar[bool]

    @classmethod
    @abc.abstractmethod
    def supports(cls, reuse: bool) -> bool:
        """Whether it serves a backward sweep that reuses the forward matrices (`reuse`, standard
        backprop) or one with independent backward matrices (decoupled)."""

    @classmethod
    def refusal(cls, sizes: ProblemSizes) -> str | None:
        """Why it cannot represent a solve of these sizes (None: it can)."""
        return None

    @classmethod
    def updates(cls, sizes: ProblemSizes) -> AbstractUpdateForm:
        """The form in which it keeps the accumulated weight updates
        (`solvers._accumulated_updates`): the stored pairs, unless it keeps them as
        `sizes.updates` asks."""
        return STORED_PAIRS

    @classmethod
    @abc.abstractmethod
    def cost(cls, sizes: ProblemSizes) -> float:
        """Multiply-adds per training step (`solvers._representation_costs`)."""

    @classmethod
    @abc.abstractmethod
    def memory(cls, sizes: ProblemSizes) -> RepresentationMemory:
        """Elements it keeps per particle group."""

    @classmethod
    @abc.abstractmethod
    def build(
        cls,
        weights: tuple[str, ...],
        *,
        key: PRNGKeyArray,
        grid: DepthGrid,
        particles: int,
        reuse: bool,
        dtype,
        refinement: int = 1,
        mesh: AxisMesh | None = None,
    ) -> "AbstractRepresentation":
        """The representation of `weights` with its noise drawn from `key`
        (`representation_keys`); `refinement`: nested grids share their noise."""

    def with_matrices_kept(self, steps: int) -> "AbstractRepresentation":
        """The same representation with its explicit matrices of every depth step drawn once
        and kept, where it has any (weight space); others are returned as they are."""
        return self

    @abc.abstractmethod
    def init_noise(
        self, weights: tuple[str, ...], *, stored: int, dtype, empty: EmptyParticles
    ) -> dict[str, FieldNoise] | None:
        """The empty noise history (None if the representation keeps none); `empty(name)` gives
        the empty per-particle array of the stored white noise `name`."""

    @abc.abstractmethod
    def new_white(
        self, direction: str, k: Int[Array, ""], pairs: int, dtype
    ) -> dict[str, Array] | None:
        """The new pairs' standard increments at SGD step k, per weight (None: none needed)."""

    @abc.abstractmethod
    def products(
        self,
        direction: str,
        noise: dict[str, FieldNoise] | None,
        history: dict[str, Array],
        conditioning: dict[str, tuple[str, str]],
        white: dict[str, Array] | None,
        jitter: Float[Array, ""],
        revealed: tuple[dict[str, Array], dict[str, Array]] | None = None,
    ) -> dict[str, AbstractGaussianProduct]:
        """Each weight's product for one sweep. `revealed`: in the backward sweep, the step's
        forward pairs (their inputs per stored name and, per weight, the forward products'
        values from `reveal`), for a representation that conditions on both sides."""

    @abc.abstractmethod
    def reveal(
        self,
        direction: str,
        noise: dict[str, FieldNoise] | None,
        history: dict[str, Array],
        conditioning: dict[str, tuple[str, str]],
        inputs: dict[str, Array],
        white: dict[str, Array] | None,
        jitter: Float[Array, ""],
        revealed: tuple[dict[str, Array], dict[str, Array]] | None = None,
    ) -> dict[str, Array] | None:
        """Per weight, the sweep's products for the new pairs `inputs` (per stored name: steps,
        particles, new) on the whole grid, when the representation stores them (None: it stores
        the standard increments `white`, or nothing)."""

    @abc.abstractmethod
    def append(
        self,
        noise: dict[str, FieldNoise] | None,
        history: dict[str, Array],
        entries: dict[str, Array],
        conditioning: dict[str, tuple[str, str]],
        white: dict[str, dict[str, Array] | None],
        start: Int[Array, ""],
        jitter: Float[Array, ""],
    ) -> dict[str, FieldNoise] | None:
        """The noise history with new pairs appended at slots start...; `white[direction][w]`
        are their standard increments (steps, particles, pairs), and a direction whose white is
        None is left as it is (pairs that direction never multiplies keep identity rows)."""
