"""Field space for a matrix revealed on both sides: the standard-backprop representation.

A width-N network with standard backprop multiplies by the same initial matrix W (N x N, i.i.d.
N(0, 1)) forward, W a, and backward, W^T b. Field space never forms W: it draws each new product
from its law given every product already revealed. Write the stored forward inputs and outputs of
one depth step's matrix as A, C (W A / sqrt(N) = C) and the backward ones as B, D
(W^T B / sqrt(N) = D), all (particles, pairs), and <x, y> = x^T y / N. Gaussian conditioning of
vec W on both sets of linear constraints gives, exactly (spec section 6),

    W a / sqrt(N) = C alpha + B K_B^{-1} <D, P_A a> + P_B xi,
    alpha = K_A^{-1} <A, a>,   P_A a = a - A alpha,   K_A = <A, A>,   K_B = <B, B>,
    P_B xi = xi - B K_B^{-1} <B, xi>,   xi = G P_A a / sqrt(N),  G independent of everything,

and the mirror image for W^T b / sqrt(N) (A, C and B, D swap). The first term is the one-sided
(decoupled) conditional mean; `B K_B^{-1} <D, P_A a>` is the reuse coupling: the part of the new
product carried by what the backward products revealed of W (with B^T B / N the gradient kernel,
this is where W W^T / N -> I enters), and P_B removes from the fresh noise what the backward
constraints already fix. With `coupling=False` both are dropped and the backward products keep
their own stored history only: that is the decoupled system of an independent backward matrix, on
the same noise.

xi's covariance over the new inputs is the kernel of P_A a, <a, a> - rows rows^T with rows the
new rows of the growing Cholesky factor of K_A (`conditional_factor`, with its jitter guard), so
xi = white block^T with the keyed standard increments `white`. A representation fed explicit
matrices (`fresh`) uses xi = G_m P_A a / sqrt(N) instead: fed a finite network's own initial
weights, it reproduces that network exactly, since W = W* + P_B W P_A for any W.

Each product costs O(N (p + q) r) for p stored forward pairs, q backward ones and r new ones,
plus the p x p and q x q triangular solves; nothing N x N. The stored "white" of a
`FieldNoise` holds the revealed products themselves (C and D); the factors are the growing
Cholesky factors of K_A and K_B, extended pair by pair as in the one-sided field space.

Within an SGD step the forward sweep reveals the new pairs' forward products before the backward
sweep multiplies by W^T; the backward products are conditioned on them too (`revealed`: their
inputs and values on the whole grid, `reveal` computes the values again from the same noise).

Streamed, exactly as the one-sided field space: the stored inputs A, B and products C, D may be
histories kept outside device memory (`AbstractStreamedHistory`); a product reads depth step m
of each block by block of particles (`X @ matrix` per block, `<X, v>` summed over blocks,
`solvers._streamed_history`),
and the step's revealed pairs are appended to them as separate columns (`PairColumns`), never
concatenated. The factors, the new pairs and the revealed ones stay on the device.
"""

import dataclasses
from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import lax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ._conditional_gaussian import conditional_factor
from ._depth_grid import DepthGrid
from ._field_space import (
    AbstractFieldSpace,
    append_pairs,
    field_memory,
)
from ._gaussian_products import AbstractGaussianProduct
from ._matrices import AbstractMatrixSource
from ._particles import PairColumns, particle_gram, side_by_side
from ._representation_costs import TWO_SIDED_COST
from ._representations import (
    DIRECTIONS,
    FieldNoise,
)
from ._sharding import AxisMesh
from ._streamed_history import AbstractStreamedHistory, AbstractStreamedSlice
from ._triangular import BLOCK, lower_solve


def _lower(factor, v):
    """L^{-1} v: by blocks of matrix products for a large factor, else LAPACK."""
    if factor.shape[-1] > BLOCK:
        return lower_solve(factor, v)
    return jsl.solve_triangular(factor, v, lower=True)


def _upper(factor, v):
    """L^{-T} v: the lower solve of the factor with its slots in reverse order."""
    if factor.shape[-1] > BLOCK:
        return lower_solve(factor.T[::-1, ::-1], v[::-1])[::-1]
    return jsl.solve_triangular(factor, v, lower=True, trans=1)


class RevealedSide(eqx.Module):
    """One side of a matrix's constraints at one depth step: inputs X, the matrix's products Y on
    them (W X / sqrt(N), or W^T X / sqrt(N)), the lower-triangular factor of <X, X>. X and Y
    may be depth steps of streamed histories (`AbstractStreamedSlice`, or `PairColumns` once
    the step's pairs are appended): every use is a product `X @ matrix` or a particle average."""

    inputs: Float[Array, "particles pairs"] | AbstractStreamedSlice | PairColumns
    values: Float[Array, "particles pairs"] | AbstractStreamedSlice | PairColumns
    factor: Float[Array, "pairs pairs"]

    def solve(self, v: Float[Array, "pairs new"]) -> Float[Array, "pairs new"]:
        """<X, X>^{-1} v through the factor (padded slots: identity rows, zero inputs)."""
        return _upper(self.factor, _lower(self.factor, v))

    def project_out(self, v: Float[Array, "particles new"]) -> Float[Array, "particles new"]:
        """P_X v: v with its component in the span of the inputs removed."""
        return v - self.inputs @ self.solve(particle_gram(self.inputs, v))

    def extended(
        self,
        inputs: Float[Array, "particles new"],
        values: Float[Array, "particles new"],
        jitter: Float[Array, ""],
    ) -> "RevealedSide":
        """This side with the new pairs appended (their factor rows from the same guard)."""
        rows, block = conditional_factor(
            particle_gram(inputs, self.inputs),
            particle_gram(inputs, inputs),
            self.factor,
            jitter=jitter,
        )
        old, new = self.factor.shape[0], inputs.shape[1]
        factor = jnp.block([[self.factor, jnp.zeros((old, new), self.factor.dtype)], [rows, block]])
        return RevealedSide(
            side_by_side(self.inputs, inputs), side_by_side(self.values, values), factor
        )


def two_sided_product(
    x: Float[Array, "particles new"],
    same: RevealedSide,
    other: RevealedSide,
    white: Float[Array, "particles new"] | None,
    matrix: Float[Array, "particles particles"] | None,
    jitter: Float[Array, ""],
    coupling: bool,
) -> tuple[Float[Array, "particles new"], Float[Array, "particles new"]]:
    """(the product, its reuse-coupling part) for new inputs x, given both sides (module
    docstring). The noise is `white` block^T, or `matrix` P a / sqrt(N) when a matrix is given."""
    rows, block = conditional_factor(
        particle_gram(x, same.inputs), particle_gram(x, x), same.factor, jitter=jitter
    )
    alpha = _upper(same.factor, rows.T)
    mean = same.values @ alpha
    projected = x - same.inputs @ alpha
    if matrix is None:
        fresh = white @ block.T
    else:
        fresh = matrix @ projected / jnp.sqrt(x.shape[0]).astype(x.dtype)
    if not coupling:
        return mean + fresh, jnp.zeros_like(mean)
    reuse = other.inputs @ other.solve(particle_gram(other.values, projected))
    fresh = other.project_out(fresh)
    return mean + reuse + fresh, reuse


class TwoSidedProduct(AbstractGaussianProduct):
    """One weight's product in one direction at every depth step, both sides conditioned;
    `current` (backward direction only): the step's revealed forward pairs, appended to the
    other side."""

    same: FieldNoise
    same_inputs: Float[Array, "steps particles stored"] | AbstractStreamedHistory
    other: FieldNoise
    other_inputs: Float[Array, "steps particles stored"] | AbstractStreamedHistory
    new_white: Float[Array, "steps particles new"]
    jitter: Float[Array, ""]
    current: tuple[Array, Array] | None = None
    matrices: AbstractMatrixSource | None = None
    transpose: bool = eqx.field(static=True, default=False)
    coupling: bool = eqx.field(static=True, default=True)

    def sides(self, m: Int[Array, ""]) -> tuple[RevealedSide, RevealedSide]:
        same = RevealedSide(self.same_inputs[m], self.same.white[m], self.same.factor[m])
        other = RevealedSide(self.other_inputs[m], self.other.white[m], self.other.factor[m])
        if self.current is not None and self.coupling:
            other = other.extended(self.current[0][m], self.current[1][m], self.jitter)
        return same, other

    def parts(self, m, inputs):
        """(the product, its reuse-coupling part) at step m."""
        same, other = self.sides(m)
        matrix = None
        if self.matrices is not None:
            matrix = self.matrices(m).T if self.transpose else self.matrices(m)
        return two_sided_product(
            inputs, same, other, self.new_white[m], matrix, self.jitter, self.coupling
        )

    def __call__(self, m, inputs):
        return self.parts(m, inputs)[0]


class TwoSidedFieldSpace(AbstractFieldSpace):
    """Field space with every initial matrix revealed on both sides (standard backprop).

    `coupling=False` drops the reuse terms (the decoupled system on common noise); `fresh`
    matrices per weight replace the keyed noise by G P a / sqrt(N) (exact cross-checks)."""

    name: ClassVar[str] = "field"
    label: ClassVar[str] = "two-sided field"
    streamable: ClassVar[bool] = True
    forward_keys: dict[str, PRNGKeyArray]
    backward_keys: dict[str, PRNGKeyArray]
    grid: DepthGrid
    particles: int = eqx.field(static=True)
    refinement: int = eqx.field(static=True, default=1)
    mesh: AxisMesh | None = eqx.field(static=True, default=None)
    coupling: bool = eqx.field(static=True, default=True)
    fresh: dict[str, AbstractMatrixSource] | None = None

    def _product(self, w, direction, noise, history, conditioning, white, jitter, revealed):
        side = DIRECTIONS.index(direction)
        other = DIRECTIONS[1 - side]
        current = None
        if direction == "backward" and revealed is not None:
            inputs, values = revealed
            current = (inputs[conditioning[w][0]], values[w])
        return TwoSidedProduct(
            same=noise[f"{w}.{direction}"],
            same_inputs=history[conditioning[w][side]],
            other=noise[f"{w}.{other}"],
            other_inputs=history[conditioning[w][1 - side]],
            new_white=white[w],
            jitter=jitter,
            current=current,
            matrices=None if self.fresh is None else self.fresh[w],
            transpose=direction == "backward",
            coupling=self.coupling,
        )

    def products(self, direction, noise, history, conditioning, white, jitter, revealed=None):
        return {
            w: self._product(w, direction, noise, history, conditioning, white, jitter, revealed)
            for w in white
        }

    def reveal(self, direction, noise, history, conditioning, inputs, white, jitter, revealed=None):
        """The products' values for the new pairs `inputs` (per stored name: steps, particles,
        new) on the whole grid, recomputed from the same noise as the sweep's."""
        parts = self.coupling_parts(
            direction, noise, history, conditioning, inputs, white, jitter, revealed
        )
        return {w: value for w, (value, _) in parts.items()}

    def coupling_parts(
        self, direction, noise, history, conditioning, inputs, white, jitter, revealed=None
    ) -> dict[str, tuple[Array, Array]]:
        """Per weight, (steps, particles, new) each: the new pairs' products on the whole grid
        and their reuse-coupling parts."""
        side = DIRECTIONS.index(direction)
        out = {}
        for w in white:
            product = self._product(
                w, direction, noise, history, conditioning, white, jitter, revealed
            )
            x = inputs[conditioning[w][side]]
            out[w] = lax.map(lambda args, p=product: p.parts(*args), (jnp.arange(x.shape[0]), x))
        return out

    def append(self, noise, history, entries, conditioning, white, start, jitter):
        return append_pairs(noise, history, entries, conditioning, white, start, jitter)

    @classmethod
    def supports(cls, reuse):
        return reuse

    @classmethod
    def cost(cls, sizes):
        return sizes.field_bias * (TWO_SIDED_COST * sizes.shared + 2 * sizes.factor_cost)

    @classmethod
    def memory(cls, sizes):
        # the history per particle is the one-sided one's size (the revealed products C, D where
        # that keeps white noise), but a streamed step also holds its own pairs' inputs and
        # revealed products on the whole grid (`reveal`): XLA measured 3.5-7 (w = 1) and 5-11
        # (w = 2) M N (B + P) entries more than one-sided
        w, m, n = sizes.weights, sizes.depth_steps, sizes.particles
        extra = 2 * (w + sizes.stored_arrays) * m * n * sizes.new
        return dataclasses.replace(field_memory(sizes), streamed_working=extra)
