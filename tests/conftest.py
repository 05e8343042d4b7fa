"""Session-wide fixtures: Monte Carlo ensembles that several test modules compare with exact
references, run once per test session."""

import pytest

from nfd_sde import load_stream
from nfd_sde.validation import linear_reference
from tests._limit_helpers import limit_ensemble
from tests.test_limit_field_space import SEEDS, linear_config


@pytest.fixture(scope="session")
def linear_problem():
    """The trained linear problem of tests/test_limit_field_space.py: (config, stream, exact
    reference, field-space ensemble of S = 64 seeds at N = 2^13)."""
    config = linear_config()
    stream = load_stream(config)
    return config, stream, linear_reference(config, stream), limit_ensemble(config, stream, SEEDS)
