"""Plain Monte Carlo statistics over seeds for the limit tests.

`relative_shift(samples, target)`: the least-squares relative scale between a seed's array and a
target, delta_s = <x_s - target, target> / <target, target>, averaged over seeds, with the
standard error of that mean. A solver whose every entry is off by a factor (1 + delta) gives
delta; entries are weighted by their size, so small noisy entries (cross terms near zero) do not
dominate. `paired_shift` does the same for two ensembles run on the same seeds (shared initial
U and v), whose per-seed differences are less noisy than the two means apart.
`entry_z(samples, target)` is the per-entry z-score (seed mean - target) / standard error, which
catches an error confined to a few entries.
"""

import numpy as np


def _flat(samples):
    samples = np.asarray(samples, float)
    return samples.reshape(len(samples), -1)


def relative_shift(samples, target) -> tuple[float, float]:
    x, t = _flat(samples), np.ravel(np.asarray(target, float))
    per_seed = (x - t) @ t / (t @ t)
    return float(per_seed.mean()), float(per_seed.std(ddof=1) / np.sqrt(len(per_seed)))


def paired_shift(samples, reference) -> tuple[float, float]:
    """Relative shift of `samples` against `reference` (same seeds), scaled by the mean of
    `reference`."""
    x, y = _flat(samples), _flat(reference)
    t = y.mean(0)
    per_seed = (x - y) @ t / (t @ t)
    return float(per_seed.mean()), float(per_seed.std(ddof=1) / np.sqrt(len(per_seed)))


def entry_z(samples, target) -> np.ndarray:
    x, t = _flat(samples), np.ravel(np.asarray(target, float))
    se = x.std(0, ddof=1) / np.sqrt(len(x))
    scale = np.abs(t).max()
    return (x.mean(0) - t) / np.maximum(se, 1e-9 * scale)


def paired_entry_z(samples, reference) -> np.ndarray:
    d = _flat(samples) - _flat(reference)
    se = d.std(0, ddof=1) / np.sqrt(len(d))
    scale = np.abs(_flat(reference)).max()
    return d.mean(0) / np.maximum(se, 1e-9 * scale)
