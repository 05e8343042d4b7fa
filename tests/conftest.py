"""Session-wide fixtures: Monte Carlo ensembles that several test modules compare with exact
references, run once per test session."""

import gc
import os
import resource

import jax
import pytest
from hypothesis import settings

from nfd_sde import load_stream
from nfd_sde.validation import linear_reference
from tests._limit_helpers import limit_ensemble
from tests.test_limit_field_space import SEEDS, linear_config
from tools.slow_rotation import parse_day, shard_of

# The property-based tests draw the same examples on every machine (Hypothesis derandomises by
# itself where the CI environment variable is set, so without this a local run and CI would test
# different inputs). HYPOTHESIS_PROFILE=explore draws new ones each run, to search further.
settings.register_profile("suite", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@pytest.fixture(scope="session")
def linear_problem():
    """The trained linear problem of tests/test_limit_field_space.py: (config, stream, exact
    reference, field-space ensemble of S = 64 seeds at N = 2^13)."""
    config = linear_config()
    stream = load_stream(config)
    return config, stream, linear_reference(config, stream), limit_ensemble(config, stream, SEEDS)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """A worker of the parallel suite runs dozens of modules, and JAX's compiled executables and
    trace caches accumulate in it (over 4 GB per worker by the end of the default suite, with
    two workers, notebook kernels and device subprocesses beside them on a 24 GB machine).
    Dropping them after each module keeps a worker near the largest single module's need; a
    module's own tests still share their compiled steps."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture(autouse=True)
def _memory_log(request):
    """With NFD_TEST_MEMLOG=FILE, one line per test: its id and the peak resident memory (MB)
    of this process and of its finished subprocesses after it, to find the tests that raise
    the suite's peak."""
    yield
    path = os.environ.get("NFD_TEST_MEMLOG")
    if path:
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
        with open(path, "a") as log:
            log.write(f"{os.getpid()} {own} {children} {request.node.nodeid}\n")


def pytest_addoption(parser):
    parser.addoption(
        "--slow-shard",
        default=None,
        metavar="DAY",
        help="run only the slow tests of this day's shard of the weekly rotation (today, 0-6 "
        "with Monday 0, or a day name; tools/slow_rotation.py states the rule)",
    )


def pytest_collection_modifyitems(config, items):
    day = config.getoption("--slow-shard")
    if day is None:
        return
    try:
        chosen = parse_day(day)
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    keep, drop = [], []
    for item in items:
        other_shard = item.get_closest_marker("slow") and shard_of(item.nodeid) != chosen
        (drop if other_shard else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
