"""What a depth error is measured against: the hook for the depth rates of `compare`.

The depth error at depth L is |E f(L) - f_ref(L)|, with f(L) the ensemble mean of the networks
of depth L at one width (or the limit solved on M = L steps), resolved against its noise by
`solvers.mean_distance`. A reference receives the paired samples of every depth of the grid
(sample s of every depth comes from the same seed, so with common random numbers their
differences carry little noise) and returns, per depth, the independent sample groups
(coefficient, samples) whose combination is f(L) - f_ref(L), or None where it has no reference.

* `SuccessiveDepths`: f(L_i) - f(L_{i+1}). For f(L) = f_inf + c L^p and a geometric grid
  (L_{i+1} = r L_i) this is c (1 - r^p) L_i^p: a log-log fit against L_i has slope p exactly.
* `DeepestDepth`: f(L_i) - f(L_max); c (L_i^p - L_max^p), so the slope is p only for L_i much
  smaller than L_max.

An extrapolated reference (the limit extrapolated in M with its error bars) is a
third subclass: its `groups` return [(1, samples of depth i), (-1, the extrapolation's own
samples)] as two independent groups, and `run_compare(..., depth_reference=...)` takes it.
"""

import abc
from collections.abc import Sequence

import equinox as eqx
import numpy as np

Groups = list[tuple[float, np.ndarray]]


class AbstractDepthReference(eqx.Module):
    """Per depth of the grid, the sample groups of f(L) - f_ref(L) (None: no reference)."""

    name: eqx.AbstractClassVar[str]
    description: eqx.AbstractClassVar[str]

    @abc.abstractmethod
    def groups(self, depths: Sequence[int], samples: Sequence[np.ndarray]) -> list[Groups | None]:
        """`samples[i]` (S, ...) are the paired samples of depth `depths[i]`."""


class SuccessiveDepths(AbstractDepthReference):
    """f(L_i) - f(L_{i+1}), paired by seed."""

    name = "successive"
    description = "f_ref(L) = f(L'), L' the next depth of the grid"

    def groups(self, depths, samples):
        pairs = [[(1.0, samples[i] - samples[i + 1])] for i in range(len(depths) - 1)]
        return [*pairs, None]


class DeepestDepth(AbstractDepthReference):
    """f(L_i) - f(L_max), paired by seed."""

    name = "deepest"
    description = "f_ref(L) = f(L_max), the largest depth of the grid"

    def groups(self, depths, samples):
        return [[(1.0, samples[i] - samples[-1])] for i in range(len(depths) - 1)] + [None]


DEPTH_REFERENCES = {cls.name: cls for cls in (SuccessiveDepths, DeepestDepth)}


def depth_reference_of(value: "str | AbstractDepthReference") -> AbstractDepthReference:
    """A reference object from its name (or the object itself)."""
    if isinstance(value, AbstractDepthReference):
        return value
    if value not in DEPTH_REFERENCES:
        raise ValueError(
            f"depth_reference={value!r} is not allowed; choose one of {tuple(DEPTH_REFERENCES)}"
        )
    return DEPTH_REFERENCES[value]()
