"""The branch matmul with an optional decoupled backward weight (spec section 1).

`branch_matmul(a, weight, offset, scale)` computes `a @ weight.T * scale`. Its reverse-mode rule
sends the cotangent back to `a` through `weight + offset` instead of `weight`, and gives `weight`
its ordinary cotangent. With `offset = D = W~(0) - W(0)` fixed, the backward weight is
`W + D = W~(0) + (W - W(0))`: independent initial noise, shared updates, which is exactly the
decoupled network of the spec. `offset=None` is standard backprop.
"""

import functools

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def branch_matmul(
    a: Float[Array, "... fan_in"],
    weight: Float[Array, "fan_out fan_in"],
    offset: Float[Array, "fan_out fan_in"] | None,
    scale: float,
) -> Float[Array, "... fan_out"]:
    """`a @ weight.T * scale`, whose gradient for `a` uses the backward weight `weight + offset`.

    The cotangent for `weight` is the ordinary `cot^T a * scale` (updates are shared); `offset`
    is a fixed, non-trainable array and gets a zero cotangent. `offset=None` means no offset.
    """
    return a @ weight.T * scale


def _forward(a, weight, offset, scale):
    return a @ weight.T * scale, (a, weight, offset)


def _backward(scale, residuals, cotangent):
    a, weight, offset = residuals
    backward_weight = weight if offset is None else weight + offset
    cot_a = cotangent @ backward_weight * scale
    cot_weight = jnp.einsum("...o,...i->oi", cotangent, a) * scale
    cot_offset = None if offset is None else jnp.zeros_like(offset)
    return cot_a, cot_weight, cot_offset


branch_matmul.defvjp(_forward, _backward)
