"""Golden numbers: float64 results of `solve` (field and weight space, both backward modes, both
drivers, non-constant profiles, cross-entropy), `train` (one- and two-layer blocks, both backward
modes, post-activation, gamma0 with a linear readout) and `compare`, on small configs, written by
`tests/golden/make_golden.py`. A change that is meant to move no number must reproduce them.

Tolerance 1e-12 relative to each array's largest entry: float64 round-off (~1e-16 per operation)
summed over a few hundred operations per number, with room for a different but equivalent order
of operations (XLA may fuse differently after code moves).
"""

from pathlib import Path

import numpy as np
import pytest

from tests.golden.make_golden import compute

GOLDEN = Path(__file__).resolve().parent / "golden" / "golden.npz"


@pytest.fixture(scope="module")
def fresh():
    return compute()


@pytest.mark.slow
def test_golden_numbers_are_reproduced(fresh):
    with np.load(GOLDEN) as stored:
        assert sorted(stored.files) == sorted(fresh), "the golden cases changed"
        for name in stored.files:
            want, got = stored[name], fresh[name]
            assert got.shape == want.shape, name
            scale = max(float(np.abs(want).max()), 1e-300)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale, err_msg=name)
