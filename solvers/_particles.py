"""Particle averages: kernels E[a b] estimated over Monte Carlo particles."""

from jaxtyping import Array, Float

from ._host_particles import HostSlice


def particle_gram(
    a: Float[Array, "particles pairs"], b: Float[Array, "particles other"]
) -> Float[Array, "pairs other"]:
    """The empirical kernel K[p, q] = (1/N) sum_i a[i, p] b[i, q]. Either side may be a depth
    step of a history kept in host memory (`HostSlice`): its sum is then taken block by block.
    On a particle axis split over devices the sum is a local product and an all-reduce."""
    if isinstance(a, HostSlice):
        return a.gram(b)
    if isinstance(b, HostSlice):
        return b.gram(a).T
    return a.T @ b / a.shape[0]
