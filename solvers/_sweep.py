"""One sweep of a particle system across the depth grid, forward (0 -> 1) or backward (1 -> 0).

`driver="diffrax"` is a `diffeqsolve` with `StepTo` on the grid points; `driver="scan"` is the
same Euler-Maruyama scheme written as a `lax.scan`. Both return the path at every grid point in
increasing-t order, shape (steps + 1, *y.shape).
"""

import diffrax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, PyTree

from ._depth_grid import DepthGrid

DRIVERS = ("diffrax", "scan")


def sweep(
    terms: diffrax.MultiTerm,
    y0: Array,
    grid: DepthGrid,
    *,
    reverse: bool,
    driver: str = "diffrax",
    args: PyTree = None,
) -> Array:
    """Euler-Maruyama (Ito) through every grid point; the drift and noise are read at step entry."""
    ts = grid.times[::-1] if reverse else grid.times
    if driver == "diffrax":
        solution = diffrax.diffeqsolve(
            terms,
            diffrax.Euler(),
            t0=ts[0],
            t1=ts[-1],
            dt0=None,
            y0=y0,
            args=args,
            saveat=diffrax.SaveAt(t0=True, steps=True),
            stepsize_controller=diffrax.StepTo(ts=ts),
            max_steps=grid.steps,
        )
        path = solution.ys
    elif driver == "scan":

        def step(y, t_pair):
            t0, t1 = t_pair
            control = terms.contr(t0, t1)
            y1 = y + terms.vf_prod(t0, y, args, control)
            return y1, y1

        _, later = lax.scan(step, y0, (ts[:-1], ts[1:]))
        path = jnp.concatenate([y0[None], later])
    else:
        raise ValueError(f"unknown driver {driver!r}; choose one of {DRIVERS}")
    return path[::-1] if reverse else path
