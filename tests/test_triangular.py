"""The blocked triangular solve and the filled-slot bound against LAPACK's solve, in float64.

Tolerances: the blocked solve reorders the substitution's sums and inverts each 128 x 128
diagonal tile explicitly, so it differs from `solve_triangular` by rounding amplified by the
tiles' condition number. The factors below are Cholesky factors of kernels with a relative
diagonal jitter of 1e-3 (condition number of L at most ~sqrt(1e3 * slots) ~ 1e2-1e3), so
float64's 1e-16 becomes at most ~1e-12; 1e-10 leaves a margin and still fails on any wrong row
(an error there is O(1)).
"""

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest

from solvers import conditional_factor
from solvers._gaussian_products import filled_slots
from solvers._triangular import BLOCK, lower_inverse, lower_solve

TOL = 1e-10


def _factor(rng, particles, slots, used=None):
    """A padded Cholesky factor: the kernel of `used` random inputs, identity afterwards."""
    used = slots if used is None else used
    x = rng.normal(size=(particles, used))
    kernel = x.T @ x / particles
    kernel += 1e-3 * np.mean(np.diag(kernel)) * np.eye(used)
    lower = np.eye(slots)
    lower[:used, :used] = np.linalg.cholesky(kernel)
    stored = np.zeros((particles, slots))
    stored[:, :used] = x
    return lower, stored


@pytest.fixture(autouse=True)
def _x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("slots", [BLOCK + 1, 3 * BLOCK, 3 * BLOCK + 37])
def test_blocked_solve_equals_lapack(slots):
    rng = np.random.default_rng(slots)
    lower, _ = _factor(rng, 200, slots)
    rhs = rng.normal(size=(slots, 5))
    expected = np.asarray(jsl.solve_triangular(lower, rhs, lower=True))
    got = np.asarray(lower_solve(jnp.asarray(lower), jnp.asarray(rhs)))
    assert np.max(np.abs(got - expected)) / np.max(np.abs(expected)) < TOL


def test_blocked_solve_batched_and_bounded():
    """A batch of padded factors (leading axis) solved at once, stopping at the filled slots,
    equals the per-entry full solves; a bound below the filled slots does not (the test can
    fail)."""
    rng = np.random.default_rng(0)
    slots, used = 2 * BLOCK + 50, BLOCK + 70
    factors = [_factor(rng, 300, slots, used) for _ in range(3)]
    lower = np.stack([f[0] for f in factors])
    rhs = np.zeros((3, slots, 4))
    rhs[:, :used] = rng.normal(size=(3, used, 4))
    expected = np.stack([jsl.solve_triangular(lo, r, lower=True) for lo, r in zip(lower, rhs)])
    got = np.asarray(lower_solve(jnp.asarray(lower), jnp.asarray(rhs), rows_used=jnp.int32(used)))
    assert np.max(np.abs(got - expected)) / np.max(np.abs(expected)) < TOL
    short = lower_solve(jnp.asarray(lower), jnp.asarray(rhs), rows_used=jnp.int32(BLOCK))
    assert np.max(np.abs(np.asarray(short) - expected)) > 1e-3


def test_lower_inverse():
    rng = np.random.default_rng(1)
    lower, _ = _factor(rng, 400, BLOCK)
    inverse = np.asarray(lower_inverse(jnp.asarray(lower)))
    assert np.max(np.abs(inverse @ lower - np.eye(BLOCK))) < TOL


def test_filled_slots_bound_the_conditional_factor():
    """`filled_slots` finds the last slot in use (inputs or factor rows), and the conditional
    factor stopped there equals the full one."""
    rng = np.random.default_rng(2)
    slots, used, particles = 2 * BLOCK + 10, BLOCK + 30, 300
    lower, stored = _factor(rng, particles, slots, used)
    assert int(filled_slots(jnp.asarray(stored)[None], jnp.asarray(lower)[None])) == used
    empty = np.zeros_like(stored)
    assert int(filled_slots(jnp.asarray(empty)[None], jnp.eye(slots)[None])) == 0
    new = rng.normal(size=(particles, 6))
    cross, joint = new.T @ stored / particles, new.T @ new / particles
    args = (jnp.asarray(cross), jnp.asarray(joint), jnp.asarray(lower))
    full = conditional_factor(*args, jitter=1e-6)
    bounded = conditional_factor(*args, jitter=1e-6, filled=jnp.int32(used))
    for a, b in zip(full, bounded):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) < TOL
    # reference: LAPACK's solve of the same rows
    rows = jsl.solve_triangular(lower, cross.T, lower=True).T
    assert np.max(np.abs(np.asarray(full[0]) - rows)) / np.max(np.abs(rows)) < TOL
