"""The weekly rotation of the `slow` tests that CI runs after the default suite.

Rule: a slow test belongs to shard `int(sha256(node id).hexdigest(), 16) % 7`, where the node id
is pytest's (`tests/test_x.py::test_name[param]`); CI runs the shard of the UTC day of the week
(Monday 0 ... Sunday 6). Every slow test is in exactly one shard, so seven consecutive days of CI
run the whole slow set; the assignment depends only on the node id, so adding or renaming one
test moves no other. A shard may be empty (pytest then exits with status 5, "no tests
collected", which `.ci/run` counts as success).

`tests/conftest.py` reads `--slow-shard DAY` (0-6, or `today`) and deselects the slow tests of
the other shards. `python -m tools.slow_rotation [--day DAY]` prints the shards (collected by
pytest), marking the chosen day's.
"""

import argparse
import datetime
import hashlib
import subprocess
import sys

SHARDS = 7
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def shard_of(nodeid: str) -> int:
    """The shard (0-6) of a test, from its pytest node id alone."""
    return int(hashlib.sha256(nodeid.encode()).hexdigest(), 16) % SHARDS


def today() -> int:
    """The UTC day of the week, Monday 0."""
    return datetime.datetime.now(datetime.UTC).weekday()


def parse_day(value: str) -> int:
    """`today`, a day number 0-6 (Monday 0) or a day name."""
    text = value.strip().lower()
    if text == "today":
        return today()
    names = [d.lower() for d in DAYS]
    if text in names:
        return names.index(text)
    if text.isdigit() and int(text) < SHARDS:
        return int(text)
    raise ValueError(f"slow shard {value!r}: give today, 0-6 (Monday 0) or a day name")


def slow_nodeids() -> list[str]:
    """The slow tests' node ids, as pytest collects them."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "slow", "--collect-only", "-q", "-p", "no:xdist"],
        capture_output=True,
        text=True,
        check=False,
    )
    return [line for line in done.stdout.splitlines() if "::" in line and " " not in line]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.slow_rotation", description=__doc__)
    parser.add_argument("--day", default="today", help="today (default), 0-6 or a day name")
    args = parser.parse_args(argv)
    day = parse_day(args.day)
    shards: dict[int, list[str]] = {d: [] for d in range(SHARDS)}
    for nodeid in slow_nodeids():
        shards[shard_of(nodeid)].append(nodeid)
    for d in range(SHARDS):
        mark = " <- chosen" if d == day else ""
        print(f"shard {d} ({DAYS[d]}): {len(shards[d])} tests{mark}")
        for nodeid in shards[d]:
            print(f"    {nodeid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
