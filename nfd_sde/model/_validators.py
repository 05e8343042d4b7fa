"""Validators of config fields: each raises ValueError naming `section.field`, the value, and
what it must be (a string where a number belongs is named as such)."""

import math
from collections.abc import Sequence
from typing import Any

SEED_LIMIT = 2**32  # jax.random.key keeps 32 bits of a seed: larger seeds would collide


def choice(section: str, field: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{section}.{field}={value!r} is not allowed; choose one of {allowed}")


def _not_a_string(section: str, field: str, value: Any, kind: str) -> None:
    if isinstance(value, str):
        raise ValueError(
            f"{section}.{field}={value!r}: must be {kind}, not a string; write it without quotes"
        )


def positive_int(section: str, field: str, value: Any, *, minimum: int = 1) -> None:
    _not_a_string(section, field, value, "an integer")
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{section}.{field}={value!r}: must be an integer >= {minimum}")


def seed(section: str, field: str, value: Any) -> None:
    _not_a_string(section, field, value, "an integer")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < SEED_LIMIT:
        raise ValueError(f"{section}.{field}={value!r}: must be an integer in [0, 2^32)")


def finite(section: str, field: str, value: Any, *, minimum: float | None = None) -> None:
    _not_a_string(section, field, value, "a number")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{section}.{field}={value!r}: must be a finite number")
    if minimum is not None and value < minimum:
        raise ValueError(f"{section}.{field}={value!r}: must be >= {minimum}")


def boolean(section: str, field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{section}.{field}={value!r}: must be true or false")


def devices(section: str, field: str, value: Any) -> None:
    if value != "all" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(
            f'{section}.{field}={value!r}: must be "all" (every visible device) or an '
            "integer >= 1 (the first that many devices of jax.devices())"
        )


def memory_limit(section: str, field: str, value: Any) -> None:
    if value == "auto":
        return
    if isinstance(value, str):
        raise ValueError(
            f'{section}.{field}={value!r}: must be "auto" (75% of what the device reports, '
            "else 8 GB) or a number of GB >= 0"
        )
    finite(section, field, value, minimum=0.0)


def depth_times(section: str, field: str, value: Any) -> tuple[float, ...]:
    """A non-empty list of depth times in [0, 1], as a tuple of floats."""
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        shown = list(value) if isinstance(value, tuple) else value
        raise ValueError(
            f"{section}.{field}={shown!r}: give a list of at least one depth time in [0, 1]"
        )
    for t in value:
        finite(section, field, t)
    times = tuple(float(t) for t in value)
    if any(not (0.0 <= t <= 1.0) for t in times):
        raise ValueError(f"{section}.{field}={times}: every depth time must lie in [0, 1]")
    return times
