"""A uniform grid in depth time t in [0, 1]: the only rule that maps depth times to steps.

Step m goes between t_m = m/M and t_{m+1}. A depth-L network's layer l = 1..L is step l - 1 of
the L-step grid (it reads its profiles at t_{l-1}), and its residual stream h_l sits on grid point
l; kernels recorded at a depth time t are those of the nearest grid point (halves round up), for
the finite network and the limit alike.
"""

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int


class DepthGrid(eqx.Module):
    """`steps` uniform steps of size 1/steps."""

    steps: int = eqx.field(static=True)

    def __check_init__(self):
        if self.steps < 1:
            raise ValueError(f"a depth grid needs steps >= 1, got {self.steps}")

    @property
    def dt(self) -> float:
        return 1.0 / self.steps

    @property
    def times(self) -> Float[Array, " steps_plus_one"]:
        return jnp.linspace(0.0, 1.0, self.steps + 1)

    @property
    def step_times(self) -> Float[Array, " steps"]:
        """t_m for m = 0..steps-1: where step m (layer m + 1) reads its coefficients."""
        return jnp.arange(self.steps) / self.steps

    def interval_index(self, t0: ArrayLike, t1: ArrayLike) -> Int[Array, ""]:
        """The step whose interval holds the midpoint of (t0, t1), in either order and either
        sign (a reverse-time solve hands its terms negated times): every sub-interval of step m
        maps to m, so no time is ever rounded to the wrong step."""
        middle = jnp.abs(0.5 * (jnp.asarray(t0) + jnp.asarray(t1)))
        return jnp.clip(jnp.floor(middle * self.steps).astype(jnp.int32), 0, self.steps - 1)

    def point_index(self, t: float) -> int:
        """The grid point closest to depth time `t` (0..steps), halves rounding up."""
        return int(math.floor(float(t) * self.steps + 0.5))

    def point_indices(self, times) -> tuple[int, ...]:
        return tuple(self.point_index(t) for t in times)

    def refinement(self, coarse: "DepthGrid") -> int:
        """How many of this grid's steps make one step of `coarse` (nested grids)."""
        if self.steps % coarse.steps:
            raise ValueError(
                f"a {coarse.steps}-step grid is not nested in a {self.steps}-step grid; "
                "use depth steps that divide the finest one (e.g. 16, 32, 64)"
            )
        return self.steps // coarse.steps
