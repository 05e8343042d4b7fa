"""Particle averages: kernels E[a b] estimated over Monte Carlo particles."""

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ._streamed_history import AbstractStreamedSlice


class PairColumns(eqx.Module):
    """A (particles, pairs) array kept as blocks of pairs side by side, because one of them is a
    depth step of a history in host memory (`AbstractStreamedSlice`), which is read block by
    block of particles and never copied whole to the device. `columns @ matrix` and
    `particle_gram` take it part by part: the same sums as on the concatenation."""

    parts: tuple[Float[Array, "particles _"] | AbstractStreamedSlice, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.parts[0].shape[0], sum(part.shape[1] for part in self.parts)

    def __matmul__(self, matrix: Float[Array, "pairs k"]) -> Float[Array, "particles k"]:
        total, start = None, 0
        for part in self.parts:
            width = part.shape[1]
            term = part @ matrix[start : start + width]
            total, start = term if total is None else total + term, start + width
        return total

    def gram(self, other: Float[Array, "particles k"]) -> Float[Array, "pairs k"]:
        """(1/N) sum_i self[i, p] other[i, q], part by part."""
        return jnp.concatenate([particle_gram(part, other) for part in self.parts])


def side_by_side(a, b: Float[Array, "particles new"]):
    """[a | b] along the pairs: concatenated on the device, kept in parts (`PairColumns`) where
    a is (or holds) a depth step of a history in host memory."""
    if isinstance(a, PairColumns):
        return PairColumns((*a.parts, b))
    if isinstance(a, AbstractStreamedSlice):
        return PairColumns((a, b))
    return jnp.concatenate([a, b], axis=1)


def particle_gram(
    a: Float[Array, "particles pairs"], b: Float[Array, "particles other"]
) -> Float[Array, "pairs other"]:
    """The empirical kernel K[p, q] = (1/N) sum_i a[i, p] b[i, q]. Either side may be a depth
    step of a history kept in host memory (`AbstractStreamedSlice`), or columns holding one
    (`PairColumns`): its sum is then taken block by block. On a particle axis split over
    devices the sum is a local product and an all-reduce."""
    if isinstance(a, (AbstractStreamedSlice, PairColumns)):
        return a.gram(b)
    if isinstance(b, (AbstractStreamedSlice, PairColumns)):
        return b.gram(a).T
    return a.T @ b / a.shape[0]
