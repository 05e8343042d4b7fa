"""The weekly rotation of slow tests (tools/slow_rotation.py, docs/testing.md): every slow test in
exactly one of seven shards, chosen by its node id alone, and the documented assignment holds."""

import pytest

from tools.slow_rotation import DAYS, SHARDS, parse_day, shard_of


def test_seven_days_run_every_slow_test_once():
    nodeids = [f"tests/test_{i % 5}.py::test_case_{i}[{i % 3}]" for i in range(200)]
    days = [[n for n in nodeids if shard_of(n) == day] for day in range(SHARDS)]
    assert sorted(n for day in days for n in day) == sorted(nodeids)
    assert all(days), [len(d) for d in days]  # 200 ids: no shard left empty
    assert [shard_of(n) for n in nodeids] == [shard_of(n) for n in nodeids]


def test_the_documented_assignment():
    """docs/testing.md lists the shards; the rule must not change under it silently."""
    assert shard_of("tests/test_golden.py::test_golden_numbers_are_reproduced") == 5
    assert shard_of("tests/test_limit_solver.py::test_convergence_rate_in_particles") == 1
    assert shard_of("tests/test_reliability.py::test_fuzz_real_runs") == 4


def test_days_are_named_or_numbered():
    assert parse_day("0") == 0 and parse_day("Sunday") == 6 and parse_day("friday") == 4
    assert parse_day("today") in range(SHARDS) and len(DAYS) == SHARDS
    for bad in ("7", "-1", "someday"):
        with pytest.raises(ValueError):
            parse_day(bad)
