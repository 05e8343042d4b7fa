"""A uniform grid in depth time t in [0, 1], and the step index a time belongs to."""

import math

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Int


class DepthGrid(eqx.Module):
    """`steps` uniform steps of size 1/steps. Step m goes between t_m = m/steps and t_{m+1}.

    A forward sweep enters step m at t_m; a backward sweep enters it at t_{m+1}. Coefficients of
    step m are read by index, so both sweeps evaluate them at the same grid point.
    """

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
        """t_m for m = 0..steps-1: where step m reads its coefficients."""
        return jnp.arange(self.steps) / self.steps

    def step_index(self, t: ArrayLike, *, reverse: bool) -> Int[Array, ""]:
        """The step that a forward (t = t_m) or backward (t = t_{m+1}) sweep enters at `t`."""
        m = jnp.round(jnp.asarray(t) * self.steps).astype(jnp.int32)
        if reverse:
            m = m - 1
        return jnp.clip(m, 0, self.steps - 1)

    def interval_index(self, t0: ArrayLike, t1: ArrayLike) -> Int[Array, ""]:
        """The step covering the interval between `t0` and `t1`, in either order (diffrax hands a
        reverse-time solve's controls their interval in increasing order)."""
        lower = jnp.minimum(jnp.asarray(t0), jnp.asarray(t1))
        return jnp.clip(jnp.round(lower * self.steps).astype(jnp.int32), 0, self.steps - 1)

    def nearest_point(self, t: float) -> int:
        """The grid point index closest to depth time `t` (0..steps), halves rounding up (the
        finite network's `layer_indices` uses the same rule)."""
        return int(math.floor(float(t) * self.steps + 0.5))
