"""Schemes that step terms across a depth grid, forward (0 -> 1) or backward (1 -> 0).

A scheme declares its order: the rate at which the mean of a smooth functional of the solution
converges as the grid is refined (the weak order). Richardson extrapolation across nested grids
reads it from here. Both schemes below are Euler-Maruyama (Ito), weak order 1: the NFD noise
covariance is a function of the particles' own law, so the noise is multiplicative and a
Stratonovich scheme (Heun, midpoint) would converge to a different system.

`sweep(terms, scheme, grid, y0, reverse=...)` returns the path at every grid point, in
increasing-t order, as a pytree with a leading axis of size steps + 1.
"""

import abc

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import PyTree

from ._depth_grid import DepthGrid


class AbstractScheme(eqx.Module):
    """Steps `terms` through every point of a depth grid."""

    order: eqx.AbstractClassVar[int]

    @abc.abstractmethod
    def path(self, terms: diffrax.AbstractTerm, ts, y0: PyTree) -> PyTree:
        """The state at every time of `ts` (ts[0] is y0's time)."""


class EulerMaruyama(AbstractScheme):
    """Euler-Maruyama through diffrax: `diffeqsolve(Euler(), StepTo(grid))`."""

    order = 1

    def path(self, terms, ts, y0):
        solution = diffrax.diffeqsolve(
            terms,
            diffrax.Euler(),
            t0=ts[0],
            t1=ts[-1],
            dt0=None,
            y0=y0,
            saveat=diffrax.SaveAt(t0=True, steps=True),
            stepsize_controller=diffrax.StepTo(ts=ts),
            max_steps=len(ts) - 1,
            # the grid fixes the steps, so the solve cannot fail; `throw=True` would add a host
            # callback on the path, which gathers a path split over devices onto one device
            throw=False,
        )
        return solution.ys


class ScanEulerMaruyama(AbstractScheme):
    """The same scheme as a plain `lax.scan` over the grid's intervals."""

    order = 1

    def path(self, terms, ts, y0):
        def step(y, t_pair):
            t0, t1 = t_pair
            y1 = jax.tree.map(jnp.add, y, terms.vf_prod(t0, y, None, terms.contr(t0, t1)))
            return y1, y1

        _, later = lax.scan(step, y0, (ts[:-1], ts[1:]))
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), y0, later)


SCHEMES = {"diffrax": EulerMaruyama, "scan": ScanEulerMaruyama}


def sweep(
    terms: diffrax.AbstractTerm,
    scheme: AbstractScheme,
    grid: DepthGrid,
    y0: PyTree,
    *,
    reverse: bool,
) -> PyTree:
    """Step `terms` over every step of `grid`; the path in increasing-t order (steps + 1, ...)."""
    ts = grid.times[::-1] if reverse else grid.times
    path = scheme.path(terms, ts, y0)
    return jax.tree.map(lambda a: a[::-1], path) if reverse else path
