"""Field space: the products of initial Gaussian matrices conditioned on the stored pairs (one
side: the forward sweep's W(0) and the backward sweep's independent W~(0)), each particle
carrying standard increments per (pair, depth step) and the correlations carried by the growing
Cholesky factor of the particle kernel (`FieldNoise` per product); the helpers the two-sided
field space shares."""

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from equinox import AbstractVar
from jax import lax
from jaxtyping import Array, PRNGKeyArray

from ._conditional_gaussian import append_factor_rows, conditional_factor
from ._depth_grid import DepthGrid
from ._gaussian_products import (
    ConditionalGaussianProduct,
    filled_slots,
)
from ._particles import particle_gram
from ._representation_costs import ProblemSizes, RepresentationMemory
from ._representations import (
    DIRECTIONS,
    AbstractRepresentation,
    EmptyParticles,
    FieldNoise,
    representation_keys,
    weight_keys,
)
from ._sharding import AxisMesh
from ._streamed_history import AbstractStreamedHistory, write_pairs
from ._white_noise import keyed_white


class AbstractFieldSpace(AbstractRepresentation):
    """What the one- and two-sided field spaces share: standard increments per (pair, depth
    step) drawn from keyed forward and backward streams, and the stored noise history of
    `FieldNoise` per weight and direction."""

    forward_keys: AbstractVar[dict[str, PRNGKeyArray]]
    backward_keys: AbstractVar[dict[str, PRNGKeyArray]]
    grid: AbstractVar[DepthGrid]
    particles: AbstractVar[int]
    refinement: AbstractVar[int]
    mesh: AbstractVar[AxisMesh | None]

    def init_noise(self, weights, *, stored, dtype, empty):
        return field_noise_init(weights, self.grid.steps, stored=stored, dtype=dtype, empty=empty)

    def new_white(self, direction, k, pairs, dtype):
        keys = self.forward_keys if direction == "forward" else self.backward_keys
        return keyed_pair_white(keys, k, (self.particles, pairs), self.grid, self, dtype)

    @classmethod
    def refusal(cls, sizes):
        """The conditioning is on the particle kernel of the pairs, an average over N particles:
        its rank is at most N. Past N pairs conditioned on jointly (at most every stored pair
        and the eval inputs of the final evaluation) the new pairs' conditional block is
        singular and the factor rows solve against jitter-sized pivots; the solve then
        loses every digit (measured, float32, one-layer teacher regression, batch 16: N =
        1024 gave wrong values and then NaN 5 steps after the pairs passed 1024, N = 2048 3
        steps after they passed 2048). Weight space has no such bound."""
        evaluated = sizes.new - sizes.batch  # the eval inputs, conditioned on every stored pair
        pairs = sizes.stored + evaluated  # the most pairs a solve conditions on jointly
        if pairs <= sizes.particles:
            return None
        return (
            f"the {cls.label}-space solve conditions on the particle kernel of {sizes.stored} "
            f"stored and {evaluated} evaluated pairs, whose rank is at most solver.particles="
            f"{sizes.particles}: its conditional Gaussians would be singular. Use at least "
            f"{pairs} particles, or fewer training.steps x training.batch"
        )

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


class FieldSpace(AbstractFieldSpace):
    name: ClassVar[str] = "field"
    label: ClassVar[str] = "field"
    streamable: ClassVar[bool] = True
    forward_keys: dict[str, PRNGKeyArray]
    backward_keys: dict[str, PRNGKeyArray]
    grid: DepthGrid
    particles: int = eqx.field(static=True)
    refinement: int = eqx.field(static=True, default=1)
    mesh: AxisMesh | None = eqx.field(static=True, default=None)

    def products(self, direction, noise, history, conditioning, white, jitter, revealed=None):
        side = DIRECTIONS.index(direction)
        out = {}
        for w in white:
            inputs, field = history[conditioning[w][side]], noise[f"{w}.{direction}"]
            resident = not isinstance(inputs, AbstractStreamedHistory)
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

    streamed = isinstance(stored, AbstractStreamedHistory)
    if streamed:  # one depth step's blocks on the device at a time
        steps = jnp.arange(new.shape[0])
        rows, block = lax.map(lambda args: rows_at(*args), (steps, new, field.factor))
    else:  # every depth step in one batched solve (no loop over steps, no gathers)
        n = new.shape[1]
        cross = jnp.where(earlier, jnp.einsum("mip,miq->mpq", new, stored) / n, 0)
        joint = jnp.einsum("mip,miq->mpq", new, new) / n
        rows, block = conditional_factor(cross, joint, field.factor, jitter=jitter, filled=start)
    factor = jax.vmap(append_factor_rows, in_axes=(0, 0, 0, None))(field.factor, rows, block, start)
    return FieldNoise(white=write_pairs(field.white, white, start), factor=factor)
