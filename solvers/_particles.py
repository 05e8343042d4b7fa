"""Particle averages: kernels E[a b] estimated over Monte Carlo particles."""

from jaxtyping import Array, Float


def particle_gram(
    a: Float[Array, "particles pairs"], b: Float[Array, "particles other"]
) -> Float[Array, "pairs other"]:
    """The empirical kernel K[p, q] = (1/N) sum_i a[i, p] b[i, q]."""
    return a.T @ b / a.shape[0]
