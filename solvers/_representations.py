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
may be a device array or a `HostParticles` history kept in host memory.
"""

import abc
from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._conditional_gaussian import append_factor_rows, conditional_factor
from ._depth_grid import DepthGrid
from ._gaussian_products import (
    AbstractGaussianProduct,
    ConditionalGaussianProduct,
    MatrixProduct,
    filled_slots,
)
from ._host_particles import HostParticles, write_pairs
from ._matrices import AbstractMatrixSource, KeyedGaussianMatrices
from ._particles import particle_gram
from ._representation_costs import ProblemSizes, RepresentationMemory
from ._sharding import AxisMesh
from ._white_noise import keyed_white

DIRECTIONS = ("forward", "backward")


class FieldNoise(eqx.Module):
    """Stored standard increments of the training pairs (on the device or in host memory) and
    their growing Cholesky factors."""

    white: Float[Array, "steps particles stored"] | HostParticles
    factor: Float[Array, "steps stored stored"]


# an empty (steps, particles, stored) per-particle array, given its name
EmptyParticles = Callable[[str], Float[Array, "steps particles stored"] | HostParticles]


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


class FieldSpace(AbstractRepresentation):
    name: ClassVar[str] = "field"
    label: ClassVar[str] = "field"
    streamable: ClassVar[bool] = True
    forward_keys: dict[str, PRNGKeyArray]
    backward_keys: dict[str, PRNGKeyArray]
    grid: DepthGrid
    particles: int = eqx.field(static=True)
    refinement: int = eqx.field(static=True, default=1)
    mesh: AxisMesh | None = eqx.field(static=True, default=None)

    def init_noise(self, weights, *, stored, dtype, empty):
        return field_noise_init(weights, self.grid.steps, stored=stored, dtype=dtype, empty=empty)

    def new_white(self, direction, k, pairs, dtype):
        keys = self.forward_keys if direction == "forward" else self.backward_keys
        return keyed_pair_white(keys, k, (self.particles, pairs), self.grid, self, dtype)

    def products(self, direction, noise, history, conditioning, white, jitter, revealed=None):
        side = DIRECTIONS.index(direction)
        out = {}
        for w in white:
            inputs, field = history[conditioning[w][side]], noise[f"{w}.{direction}"]
            resident = not isinstance(inputs, HostParticles)
            out[w] = ConditionalGaussianProduct(
                stored_inputs=inputs,
                stored_white=field.white,
                stored_factor=field.factor,
                new_white=white[w],
                jitter=jitter,
                filled=filled_slots(inputs, field.factor) if resident else None,
            )
        return out

    def reveal(self, direction, noise, history, conditioning, inputs, white, jitter, revealed=None):
        return None

    def append(self, noise, history, entries, conditioning, white, start, jitter):
        return append_pairs(noise, history, entries, conditioning, white, start, jitter)

    @classmethod
    def supports(cls, reuse):
        return not reuse

    @classmethod
    def cost(cls, sizes):
        return sizes.field_bias * (2 * sizes.shared + sizes.factor_cost)

    @classmethod
    def memory(cls, sizes):
        return field_memory(sizes)

    @classmethod
    def build(cls, weights, *, key, grid, particles, reuse, dtype, refinement=1, mesh=None):
        keys = representation_keys(key)
        return cls(
            forward_keys=weight_keys(keys["forward"], weights),
            backward_keys=weight_keys(keys["backward"], weights),
            grid=grid,
            particles=particles,
            refinement=refinement,
            mesh=mesh,
        )


def field_memory(sizes: ProblemSizes) -> RepresentationMemory:
    """Field space's memory: per weight and direction, the stored increments (or products) of
    every pair on every depth step (history), the factors (replicated), the new pairs' draws."""
    w, m, n, s = sizes.weights, sizes.depth_steps, sizes.particles, sizes.stored
    history, factors = 2 * w * m * n * s, 2 * w * m * s**2
    return RepresentationMemory(history, factors, history + 2 * w * m * n * sizes.new + factors)


def keyed_pair_white(keys, k, shape, grid: DepthGrid, where, dtype) -> dict[str, Array]:
    """Step k's new pairs' standard increments per weight, (steps, particles, pairs), from the
    weight's key folded with k; laid out over `where.mesh` when it has one (`where.refinement`:
    drawn on a finer grid and summed)."""
    white = {
        w: keyed_white(
            jax.random.fold_in(key, k), shape, grid, refinement=where.refinement, dtype=dtype
        )
        for w, key in keys.items()
    }
    if where.mesh is None:
        return white
    return {w: where.mesh.constrain(a, 1) for w, a in white.items()}


def field_noise_init(
    weights: tuple[str, ...], steps: int, *, stored: int, dtype, empty: EmptyParticles
) -> dict[str, FieldNoise]:
    """The empty field-space history of every weight and direction: empty stored values and
    identity factors."""

    def identity():  # a separate buffer per field, so the state can be donated
        return jnp.tile(jnp.eye(stored, dtype=dtype), (steps, 1, 1))

    names = [f"{w}.{d}" for w in weights for d in DIRECTIONS]
    return {name: FieldNoise(empty(name), identity()) for name in names}


def append_pairs(noise, history, entries, conditioning, white, start, jitter):
    """Every field of a field-space history with the new pairs appended (`white[direction][w]`:
    what is stored per pair; a direction whose white is None is left as it is)."""
    out = {}
    for name, field in noise.items():
        weight, direction = name.split(".")
        if white[direction] is None:
            out[name] = field
            continue
        inputs = conditioning[weight][DIRECTIONS.index(direction)]
        out[name] = _append_pairs(
            field,
            history[inputs],
            entries[inputs],
            white[direction][weight],
            start,
            jitter,
        )
    return out


def _append_pairs(field, stored, new, white, start, jitter) -> FieldNoise:
    """Append the new pairs' standard increments and factor rows to a field-space history.

    The new pairs are conditioned on the pairs before slot `start` only: their kernel with
    later slots is set to zero (those slots are empty, or, in a history kept in host memory,
    may already hold the new pairs themselves)."""
    earlier = jnp.arange(stored.shape[-1]) < start

    def rows_at(m, new_m, factor_m):
        cross = jnp.where(earlier, particle_gram(new_m, stored[m]), 0)
        joint = particle_gram(new_m, new_m)
        return conditional_factor(cross, joint, factor_m, jitter=jitter, filled=start)

    if isinstance(stored, HostParticles):  # one depth step's blocks on the device at a time
        steps = jnp.arange(new.shape[0])
        rows, block = lax.map(lambda args: rows_at(*args), (steps, new, field.factor))
    else:  # every depth step in one batched solve (no loop over steps, no gathers)
        n = new.shape[1]
        cross = jnp.where(earlier, jnp.einsum("mip,miq->mpq", new, stored) / n, 0)
        joint = jnp.einsum("mip,miq->mpq", new, new) / n
        rows, block = conditional_factor(cross, joint, field.factor, jitter=jitter, filled=start)
    factor = jax.vmap(append_factor_rows, in_axes=(0, 0, 0, None))(field.factor, rows, block, start)
    return FieldNoise(white=write_pairs(field.white, white, start), factor=factor)


class WeightSpace(AbstractRepresentation):
    name: ClassVar[str] = "weight"
    label: ClassVar[str] = "weight"
    streamable: ClassVar[bool] = True
    forward_matrices: dict[str, AbstractMatrixSource]
    backward_matrices: dict[str, AbstractMatrixSource]

    @classmethod
    def supports(cls, reuse):
        return True

    @classmethod
    def cost(cls, sizes):
        n, m, w, pairs = sizes.particles, sizes.depth_steps, sizes.weights, sizes.new + sizes.batch
        return sizes.shared + w * (m * n**2 * pairs + 2 * m * n**2 * sizes.rng_cost)

    @classmethod
    def memory(cls, sizes):
        return RepresentationMemory(working=2 * sizes.weights * sizes.particles**2)

    @classmethod
    def build(cls, weights, *, key, grid, particles, reuse, dtype, refinement=1, mesh=None):
        keys = representation_keys(key)
        return cls.keyed(
            weights,
            forward_key=keys["forward_matrices"],
            backward_key=keys["backward_matrices"],
            particles=particles,
            dtype=dtype,
            reuse=reuse,
            refinement=refinement,
            mesh=mesh,
        )

    @classmethod
    def keyed(
        cls,
        weights: tuple[str, ...],
        *,
        forward_key: PRNGKeyArray,
        backward_key: PRNGKeyArray,
        particles: int,
        dtype,
        reuse: bool,
        refinement: int = 1,
        mesh: AxisMesh | None = None,
    ) -> "WeightSpace":
        """Matrices regenerated from keys; `reuse`: the backward pass uses the forward matrices
        (standard backprop), else independent ones (decoupled); with a `mesh`, each matrix is
        drawn with its rows split over the mesh's devices."""

        def source(key):
            return KeyedGaussianMatrices(key, particles, jnp.dtype(dtype), refinement, mesh)

        forward = {w: source(k) for w, k in weight_keys(forward_key, weights).items()}
        backward = (
            forward
            if reuse
            else {w: source(k) for w, k in weight_keys(backward_key, weights).items()}
        )
        return cls(forward, backward)

    def init_noise(self, weights, *, stored, dtype, empty):
        return None

    def new_white(self, direction, k, pairs, dtype):
        return None

    def products(self, direction, noise, history, conditioning, white, jitter, revealed=None):
        if direction == "forward":
            return {w: MatrixProduct(s, transpose=False) for w, s in self.forward_matrices.items()}
        return {w: MatrixProduct(s, transpose=True) for w, s in self.backward_matrices.items()}

    def reveal(self, direction, noise, history, conditioning, inputs, white, jitter, revealed=None):
        return None

    def append(self, noise, history, entries, conditioning, white, start, jitter):
        return None
