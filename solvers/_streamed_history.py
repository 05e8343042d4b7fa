"""What every per-particle history kept outside device memory provides, however its blocks
reach the device (host callbacks: `HostParticles`; XLA memory kinds: `PinnedParticles`).

A history is (steps, particles, stored). A sweep reads, at depth step m, only two things from it,
each computed block by block of particles, so one block of one depth step is on the device at a
time:

* the local product `history[m] @ matrix` (particles, k): each block's rows, then concatenated;
* the particle average `particle_gram(history[m], a)` (stored, k): each block's partial sum
  `block.T @ a[block]`, accumulated in a fixed order, then divided by N.

A store (`AbstractHistoryStore`) makes one solve's empty histories and places the groups'
stacked states where their histories belong.
"""

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox import AbstractVar
from jax import lax
from jaxtyping import Array, Float, Int


class AbstractStreamedSlice(eqx.Module):
    """Depth step m of a streamed history `source`: (particles, stored), read block by block."""

    source: "AbstractStreamedHistory"
    m: Int[Array, ""]

    @property
    def shape(self) -> tuple[int, int]:
        return self.source.shape[1:]

    @property
    def blocks(self) -> int:
        """How many blocks of particles a read goes through."""
        return self.source.blocks

    @abc.abstractmethod
    def block(self, index) -> Float[Array, "block stored"]:
        """Block `index` of particles, on the device."""

    def over_blocks(self, step, carry):
        """`step(carry, c, block c) -> (carry, y)` over the blocks c = 0, 1, ... in order:
        the last carry and the ys stacked. Each iteration reads its own block; a form whose
        reads can overlap the products overrides this (`PinnedSlice`)."""
        return lax.scan(
            lambda carry, c: step(carry, c, self.block(c)), carry, jnp.arange(self.blocks)
        )

    def __matmul__(self, matrix: Float[Array, "stored k"]) -> Float[Array, "particles k"]:
        _, rows = self.over_blocks(lambda _, c, block: (None, block @ matrix), None)
        return rows.reshape(-1, matrix.shape[-1])

    def gram(self, other: Float[Array, "particles k"]) -> Float[Array, "stored k"]:
        """(1/N) sum_i self[i, p] other[i, q], summed block by block in a fixed order."""
        particles, stored = self.shape
        size = particles // self.blocks

        def add(acc, c, block):
            return acc + block.T @ lax.dynamic_slice_in_dim(other, c * size, size), None

        total, _ = self.over_blocks(add, jnp.zeros((stored, other.shape[-1]), other.dtype))
        return total / particles


class AbstractStreamedHistory(eqx.Module):
    """A (steps, particles, stored) per-particle history kept outside device memory, read in
    `blocks` blocks of particles per depth step."""

    blocks: AbstractVar[int]

    @property
    @abc.abstractmethod
    def shape(self) -> tuple[int, int, int]: ...

    @abc.abstractmethod
    def __getitem__(self, m) -> AbstractStreamedSlice:
        """Depth step m (a traced index)."""

    @abc.abstractmethod
    def write(
        self, entries: Float[Array, "steps particles new"], start
    ) -> "AbstractStreamedHistory":
        """The history with `entries` written at slots start... (a new history)."""


class AbstractHistoryStore:
    """Where one solve's streamed histories live: `empty(name, group)` makes group `group`'s
    empty history of the stored quantity `name`; `stack(states)` stacks the groups' states
    with their histories there; `nbytes` counts the host memory the histories take. For the
    plan: `buffered`, how many blocks of one read are on the device at once; `transport`, how
    the blocks travel; `caveat(backend)`, what the form does not deliver on that backend."""

    buffered: ClassVar[int] = 1
    transport: ClassVar[str]

    @classmethod
    def caveat(cls, backend: str) -> str | None:
        return None

    @abc.abstractmethod
    def empty(self, name: str, group: int) -> AbstractStreamedHistory: ...

    def stack(self, trees: list):
        """The groups' states (pytrees of one structure) stacked on a leading group axis."""
        return jax.tree.map(lambda *leaves: jnp.stack(leaves), *trees)

    @property
    @abc.abstractmethod
    def nbytes(self) -> int: ...


def write_pairs(history, entries: Float[Array, "steps particles new"], start):
    """`history` (a device array or a streamed history) with `entries` at slots start..."""
    if isinstance(history, AbstractStreamedHistory):
        return history.write(entries, start)
    zero = jnp.zeros_like(start)
    return lax.dynamic_update_slice(history, entries, (zero, zero, start))
