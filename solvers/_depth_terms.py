"""Terms defined on the steps of a depth grid, in diffrax's term interface.

An `AbstractDepthTerm` gives the whole increment of one grid step, `increment(y, m, dt)`: its
vector field is the state itself and its control is the step's interval, from which the step index
m and the signed length dt are read. Coefficients of step m are therefore looked up by the interval
the scheme asks for, never by rounding a time. diffrax's reverse-time solves negate times and
controls; both leave the midpoint's magnitude (hence m) unchanged and give dt < 0, which is the
increment's sign in reversed time.
"""

import abc

import diffrax
import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PyTree

from ._depth_grid import DepthGrid


class DepthInterval(eqx.Module):
    """The control of a depth term: the interval (start, end) of one step, possibly negated."""

    start: Float[Array, ""]
    end: Float[Array, ""]

    @property
    def dt(self) -> Float[Array, ""]:
        return self.end - self.start


class AbstractDepthTerm(diffrax.AbstractTerm):
    """A term whose increment over a grid step is `increment(y, m, dt)`."""

    grid: eqx.AbstractVar[DepthGrid]

    @abc.abstractmethod
    def increment(self, y: PyTree, m: Int[Array, ""], dt: Float[Array, ""]) -> PyTree:
        """y_{m+1} - y_m (forward, dt > 0) or y_m - y_{m+1} (reverse, dt < 0)."""

    def vf(self, t, y, args):
        return y

    def contr(self, t0, t1, **kwargs) -> DepthInterval:
        return DepthInterval(jnp.asarray(t0), jnp.asarray(t1))

    def prod(self, vf, control: DepthInterval):
        m = self.grid.interval_index(control.start, control.end)
        return self.increment(vf, m, control.dt)


def signed_root(dt: Float[Array, ""]) -> Float[Array, ""]:
    """sign(dt) sqrt|dt|: the scale of a Brownian increment over a signed interval."""
    return jnp.sign(dt) * jnp.sqrt(jnp.abs(dt))
