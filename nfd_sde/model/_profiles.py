"""Depth profiles: functions of depth time t in [0, 1] (branch multiplier, learning rate)."""

import abc
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float


class AbstractProfile(eqx.Module):
    """A scalar function of depth time `t in [0, 1]`, evaluated elementwise on arrays."""

    @abc.abstractmethod
    def __call__(self, t: ArrayLike) -> Float[Array, "..."]:
        """Evaluate the profile at `t` (any shape, broadcast elementwise)."""

    @abc.abstractmethod
    def to_serialisable(self) -> float | list[list[float]] | str:
        """A JSON/TOML-friendly description (a constant, a knot list, or a label)."""


class ConstantProfile(AbstractProfile):
    value: float = eqx.field(static=True)

    def __call__(self, t: ArrayLike) -> Float[Array, "..."]:
        return jnp.full(jnp.shape(t), self.value, dtype=jnp.result_type(float))

    def to_serialisable(self) -> float:
        return self.value


class PiecewiseLinearProfile(AbstractProfile):
    """Linear interpolation between knots `(t, value)`, constant beyond the end knots."""

    times: tuple[float, ...] = eqx.field(static=True)
    values: tuple[float, ...] = eqx.field(static=True)

    def __call__(self, t: ArrayLike) -> Float[Array, "..."]:
        return jnp.interp(
            jnp.asarray(t, dtype=float), jnp.array(self.times), jnp.array(self.values)
        )

    def to_serialisable(self) -> list[list[float]]:
        return [[a, b] for a, b in zip(self.times, self.values)]


class CallableProfile(AbstractProfile):
    """Wraps any Python callable of `t` that accepts and returns jax arrays."""

    fn: Callable = eqx.field(static=True)
    label: str = eqx.field(static=True, default="")

    def __call__(self, t: ArrayLike) -> Float[Array, "..."]:
        t = jnp.asarray(t, dtype=float)
        return jnp.broadcast_to(jnp.asarray(self.fn(t), dtype=t.dtype), t.shape)

    def to_serialisable(self) -> str:
        return f"callable:{self.label or getattr(self.fn, '__name__', repr(self.fn))}"


ProfileLike = AbstractProfile | float | int | Sequence[Sequence[float]] | Callable


def as_profile(spec: ProfileLike, *, name: str) -> AbstractProfile:
    """Build a profile from a constant, a list of `(t, value)` knots, or a callable of `t`.

    Raises `ValueError` naming `name` if the description is malformed or not finite on [0, 1].
    """
    if isinstance(spec, AbstractProfile):
        profile = spec
    elif isinstance(spec, bool):
        raise ValueError(f"{name}: expected a number, a list of [t, value] knots or a callable")
    elif isinstance(spec, int | float):
        if not math.isfinite(spec):
            raise ValueError(f"{name}: the constant {spec!r} is not finite; use a finite number")
        profile = ConstantProfile(float(spec))
    elif callable(spec):
        profile = CallableProfile(spec)
    elif isinstance(spec, Sequence) and not isinstance(spec, str):
        knots = _parse_knots(spec, name=name)
        profile = PiecewiseLinearProfile(tuple(k[0] for k in knots), tuple(k[1] for k in knots))
    else:
        raise ValueError(
            f"{name}: expected a number, a list of [t, value] knots or a callable of t, "
            f"got {spec!r}"
        )
    check_profile(profile, name=name)
    return profile


def check_profile(profile: AbstractProfile, *, name: str, grid: int = 257) -> None:
    """Evaluate on a grid of [0, 1] and refuse non-finite or wrongly shaped output."""
    t = np.linspace(0.0, 1.0, grid)
    try:
        values = np.asarray(profile(jnp.asarray(t)))
    except Exception as error:  # a user callable may fail in arbitrary ways
        raise ValueError(f"{name}: evaluating the profile on [0, 1] failed: {error}") from error
    if values.shape != t.shape:
        raise ValueError(
            f"{name}: the profile must map an array of t to an array of the same shape; "
            f"got shape {values.shape} for input shape {t.shape}"
        )
    if not np.all(np.isfinite(values)):
        bad = t[~np.isfinite(values)][0]
        raise ValueError(f"{name}: the profile is not finite at t={bad:.4g}; fix its values")


def _parse_knots(spec: Sequence, *, name: str) -> list[tuple[float, float]]:
    knots = []
    for item in spec:
        if not (isinstance(item, Sequence) and not isinstance(item, str) and len(item) == 2):
            raise ValueError(f"{name}: each knot must be a pair [t, value], got {item!r}")
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in item):
            raise ValueError(f"{name}: knot {item!r} must hold two numbers [t, value]")
        t, v = float(item[0]), float(item[1])
        if not (math.isfinite(t) and math.isfinite(v)):
            raise ValueError(f"{name}: knot {item!r} is not finite")
        if not 0.0 <= t <= 1.0:
            raise ValueError(
                f"{name}: knot {item!r} lies outside [0, 1]; knot times are depth times t in [0, 1]"
            )
        knots.append((t, v))
    if not knots:
        raise ValueError(f"{name}: the knot list is empty; give at least one [t, value] pair")
    times = [k[0] for k in knots]
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError(f"{name}: knot times must be strictly increasing, got {times}")
    return knots
