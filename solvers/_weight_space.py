"""Weight space: an (N, N) Gaussian matrix per depth step, regenerated from a key; the backward
product is the same matrix transposed (standard backprop) or an independent one. Its products
cost O(N^2) per pair anyway, so its accumulated weight updates may be kept as dense (N, N)
matrices per depth step too (`solvers.DenseMatrices`, `ProblemSizes.updates`), and then its
initial matrices are kept as well, drawn once per solve instead of once per use
(`with_matrices_kept`; the same matrices)."""

from typing import ClassVar

import jax.numpy as jnp
from jaxtyping import PRNGKeyArray

from ._gaussian_products import (
    MatrixProduct,
)
from ._matrices import AbstractMatrixSource, KeyedGaussianMatrices, drawn_once
from ._representation_costs import RepresentationMemory
from ._representations import AbstractRepresentation, representation_keys, weight_keys
from ._sharding import AxisMesh


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
    def updates(cls, sizes):
        return sizes.updates

    @classmethod
    def cost(cls, sizes):
        """Kept matrices (a form that keeps matrices, `with_matrices_kept`) are drawn once per
        solve, not per step: no drawing cost per step."""
        n, m, w, pairs = sizes.particles, sizes.depth_steps, sizes.weights, sizes.new + sizes.batch
        drifts = cls.updates(sizes).cost(sizes)
        draws = 0 if cls.updates(sizes).keeps_matrices else 2 * m * n**2 * sizes.rng_cost
        return drifts + w * (m * n**2 * pairs + draws)

    @classmethod
    def memory(cls, sizes):
        """Two matrices drawn per depth step at a time, or, kept, both directions' matrices of
        every depth step (standard backprop keeps one: this bounds it)."""
        steps = sizes.depth_steps if cls.updates(sizes).keeps_matrices else 1
        matrices = 2 * steps * sizes.weights * sizes.particles**2
        return RepresentationMemory(working=matrices + cls.updates(sizes).memory(sizes))

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

    def with_matrices_kept(self, steps):
        forward = {w: drawn_once(s, steps) for w, s in self.forward_matrices.items()}
        if self.backward_matrices is self.forward_matrices:  # standard backprop: the same ones
            return WeightSpace(forward, forward)
        return WeightSpace(
            forward, {w: drawn_once(s, steps) for w, s in self.backward_matrices.items()}
        )

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
