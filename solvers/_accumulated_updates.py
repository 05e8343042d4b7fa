"""The accumulated updates of weight matrices, one per depth step, applied to vectors.

A matrix w trained by gradient steps has, at depth step m, the accumulated update

    Delta W_{w,m} = sum_j out^j_m (in^j_m)^T / N

over the stored pairs j, where `in` is what it multiplied forward and `out` what multiplied it
backward (`pairs[w] = (output, input)`, names of stored per-particle quantities). A sweep needs
Delta W x (forward) and Delta W^T x (backward); every coefficient (learning rate, gain, dt) is
left to the caller. Two forms keep it:

* `StoredPairs`: the stored pairs themselves, out @ (in^T x / N): O(N S k) per product, growing
  with the number S of stored pairs; nothing to keep besides the history.
* `DenseMatrices`: Delta W_{w,m} as an (N, N) matrix per depth step, extended by
  out_new in_new^T / N when new pairs are stored: O(N^2 k) per product and O(N^2 B) per update,
  whatever S; it keeps weights x M x N^2 numbers.

A form is a static variant (`UPDATE_FORMS` by name); what it keeps between steps (None, or the
matrices) lives in the solver's state, and `applied` turns it into an
`AbstractAccumulatedUpdates` that a sweep's increments call.
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._matrices import matrix_times
from ._particles import particle_gram
from ._streamed_history import AbstractStreamedHistory

Pairs = dict[str, tuple[str, str]]
Dense = dict[str, Float[Array, "steps particles particles"]]


class AbstractAccumulatedUpdates(eqx.Module):
    """Delta W_{w,m} of each matrix w at each depth step m, applied to vectors."""

    @abc.abstractmethod
    def forward(self, name: str, m, x: Float[Array, "particles k"]) -> Float[Array, "particles k"]:
        """Delta W_{name,m} x."""

    @abc.abstractmethod
    def backward(self, name: str, m, x: Float[Array, "particles k"]) -> Float[Array, "particles k"]:
        """Delta W_{name,m}^T x."""


class PairUpdates(AbstractAccumulatedUpdates):
    """Delta W from the stored pairs: `history[name]` (steps, particles, stored), on the device
    or in host memory."""

    history: dict[str, Float[Array, "steps particles stored"] | AbstractStreamedHistory]
    pairs: Pairs = eqx.field(static=True)

    def forward(self, name, m, x):
        output, inputs = self.pairs[name]
        return self.history[output][m] @ particle_gram(self.history[inputs][m], x)

    def backward(self, name, m, x):
        output, inputs = self.pairs[name]
        return self.history[inputs][m] @ particle_gram(self.history[output][m], x)


class DenseUpdates(AbstractAccumulatedUpdates):
    """Delta W kept as an (N, N) matrix per depth step."""

    matrices: Dense

    def forward(self, name, m, x):
        return self.matrices[name][m] @ x

    def backward(self, name, m, x):
        return matrix_times(self.matrices[name][m], x, transpose=True)


class AbstractUpdateForm(eqx.Module):
    """How the accumulated updates are kept: `name` (what a config calls it), what is kept
    between steps (`init`, `append`), how it is applied (`applied`), and its cost and memory
    for a planner (`solvers._representation_costs.ProblemSizes`). `keeps_matrices`: a
    representation with explicit initial matrices keeps them too, drawn once
    (`AbstractRepresentation.with_matrices_kept`), as they are the same size."""

    name: ClassVar[str]
    keeps_matrices: ClassVar[bool]

    @abc.abstractmethod
    def init(self, pairs: Pairs, *, steps: int, particles: int, dtype) -> Dense | None:
        """What is kept before any pair is stored."""

    @abc.abstractmethod
    def append(
        self, kept: Dense | None, entries: dict[str, Float[Array, "steps particles new"]], pairs
    ) -> Dense | None:
        """What is kept once the pairs `entries` (per stored name) are stored too."""

    @abc.abstractmethod
    def applied(self, history, kept: Dense | None, pairs: Pairs) -> AbstractAccumulatedUpdates:
        """The updates to apply, from the stored `history` and what is kept."""

    @abc.abstractmethod
    def cost(self, sizes) -> float:
        """Multiply-adds per training step of the updates' products in both sweeps and of
        keeping them up to date."""

    @abc.abstractmethod
    def memory(self, sizes) -> int:
        """Elements kept on the device besides the stored history."""


class StoredPairs(AbstractUpdateForm):
    """The stored pairs: nothing kept besides the history."""

    name: ClassVar[str] = "pairs"
    keeps_matrices: ClassVar[bool] = False

    def init(self, pairs, *, steps, particles, dtype):
        return None

    def append(self, kept, entries, pairs):
        return None

    def applied(self, history, kept, pairs):
        return PairUpdates(history, pairs)

    def cost(self, sizes):
        return sizes.shared

    def memory(self, sizes):
        return 0


class DenseMatrices(AbstractUpdateForm):
    """An (N, N) matrix per weight and depth step, extended by each step's new pairs."""

    name: ClassVar[str] = "dense"
    keeps_matrices: ClassVar[bool] = True

    def init(self, pairs, *, steps, particles, dtype):
        return {w: jnp.zeros((steps, particles, particles), dtype) for w in pairs}

    def append(self, kept, entries, pairs):
        def extended(w):
            output, inputs = pairs[w]
            scaled = entries[output] / entries[output].shape[1]  # scaled first: (N, B), not (N, N)
            return kept[w] + scaled @ jnp.swapaxes(entries[inputs], 1, 2)

        return {w: extended(w) for w in pairs}

    def applied(self, history, kept, pairs):
        return DenseUpdates(kept)

    def cost(self, sizes):
        """w M N^2 (n + B) for the products, w M N^2 B for the rank-B updates."""
        n, m, w = sizes.particles, sizes.depth_steps, sizes.weights
        return float(w * m * n**2 * (sizes.new + 2 * sizes.batch))

    def memory(self, sizes):
        return sizes.weights * sizes.depth_steps * sizes.particles**2


STORED_PAIRS = StoredPairs()
UPDATE_FORMS: dict[str, AbstractUpdateForm] = {f.name: f for f in (STORED_PAIRS, DenseMatrices())}
