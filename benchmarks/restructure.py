"""Per-step time of `solve` and `train` on the default config, before and after the package's
restructure (the tree of an earlier commit, BEFORE, against the current tree), as ratios from
one run.

    mkdir -p /tmp/nfd_before && git archive BEFORE | tar -x -C /tmp/nfd_before
    .venv/bin/python benchmarks/restructure.py --before /tmp/nfd_before [--rounds 3] [--quick]

The current tree's `nfd_sde/` and `solvers/` are copied to a temporary folder first, so every
round measures the same code even while the working tree changes. Each round runs
`_restructure_probe.py` once per tree, alternating (before, after, before, after, ...), each in a
fresh Python process with `PYTHONPATH=<tree>` and the default config (`load_config(None)`). The
probe calls `solve_limit` and `train_finite` and records what their results say (the limit's
median step after the first and its compile time; the finite network's compile time and
(wall - compile) / K), then calls the same jitted steps directly `--repeats` more times (the
limit's donated step; the finite network's `evaluate` + `mup_sgd_step`, what `train_finite` runs
per step). Reported: the median over rounds of each tree's per-round median, the ratio
after / before of those, and the per-round paired ratios.

Writes `OUT/restructure.json` and `OUT/restructure.md` (the printed table).
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _timing import environment, load_average, start, table, write_outputs

PROBE = Path(__file__).with_name("_restructure_probe.py")
ROOT = Path(__file__).resolve().parent.parent
QUICK_OVERRIDES = [
    "solver.particles=256",
    "solver.depth_steps=4",
    "network.width=64",
    "network.depth=4",
]
# (what, where in the probe's record, unit): what is compared between the trees
MEASURES = [
    ("solve: step, direct (median)", ("solve", "direct", "median_s"), "ms"),
    ("solve: solve_limit step_s", ("solve", "meta", "step_s"), "ms"),
    ("solve: solve_limit compile_time_s", ("solve", "meta", "compile_time_s"), "s"),
    ("solve: solve_limit wall_time_s", ("solve", "meta", "wall_time_s"), "s"),
    (
        "train: step, direct (evaluate + mup_sgd_step, median)",
        ("train", "direct", "median_s"),
        "ms",
    ),
    ("train: train_finite compile_time_s", ("train", "meta", "compile_time_s"), "s"),
    ("train: train_finite wall_time_s", ("train", "meta", "wall_time_s"), "s"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--before", required=True, help="source tree of the commit before the restructure"
    )
    parser.add_argument("--after", default=str(ROOT), help="tree after (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=20, help="direct steps per process")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--out", default="benchmarks/results/", help="default: %(default)s")
    return parser.parse_args(argv)


PACKAGES = ("nfd_sde", "solvers")


def source_hash(tree: Path) -> str:
    """A hash of the Python sources of `tree`'s two packages."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        for path in sorted((tree / package).rglob("*.py")):
            digest.update(str(path.relative_to(tree)).encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def snapshot(tree: Path, into: Path) -> None:
    """Copy `tree`'s two packages into `into`."""
    for package in PACKAGES:
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(tree / package, into / package, ignore=ignore)


def probe(tree: Path, overrides: list[str], repeats: int) -> dict:
    """One fresh process measuring `tree`; its RESULT line."""
    args = {"overrides": overrides, "solve_repeats": repeats, "train_repeats": 2 * repeats}
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, "-P", str(PROBE), json.dumps(args)]
    tick = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"probe of {tree} failed:\n{done.stderr[-4000:]}")
    line = next(x for x in reversed(done.stdout.splitlines()) if x.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    if not Path(result["nfd_sde"]).resolve().is_relative_to(tree.resolve()):
        raise RuntimeError(f"the probe imported {result['nfd_sde']}, not the tree {tree}")
    result["process_wall_s"] = time.perf_counter() - tick
    return result


def _get(record: dict, path: tuple[str, ...]) -> float:
    for key in path:
        record = record[key]
    return float(record)


def summarise(rounds: dict[str, list[dict]]) -> list[dict]:
    rows = []
    for label, path, unit in MEASURES:
        before = [_get(r, path) for r in rounds["before"]]
        after = [_get(r, path) for r in rounds["after"]]
        paired = [a / b for a, b in zip(after, before)]
        rows.append(
            {
                "measure": label,
                "unit": unit,
                "before_s": statistics.median(before),
                "after_s": statistics.median(after),
                "after_over_before": statistics.median(after) / statistics.median(before),
                "paired_ratios": paired,
                "before_rounds_s": before,
                "after_rounds_s": after,
            }
        )
    return rows


def report(results: dict) -> str:
    env, trees = results["environment"], results["trees"]
    out = [
        f"device: {env['device']['platform']} ({env['device']['kind']}); CPU "
        f"{env['host']['cpu_model']}, {env['host']['cpu_cores']} cores; load average "
        f"{env['load_average_start']} -> {env['load_average_end']}",
        f"before: {trees['before']['path']} (sources {trees['before']['hash']}); after: "
        f"{trees['after']['path']} (sources {trees['after']['hash']})",
        f"config: defaults{' + ' + ', '.join(results['overrides']) if results['overrides'] else ''}"
        f" (limit representation {trees['after']['representation']}); {results['rounds']} "
        f"alternating rounds, {results['repeats']} direct limit steps and "
        f"{2 * results['repeats']} finite steps per process; total wall "
        f"{results['total_wall_s']:.0f} s",
        "",
        "### before / after the restructure (median over rounds of each process's number)",
        "",
    ]
    scale = {"ms": 1e3, "s": 1.0}
    rows = [
        [r["measure"], f"{r['before_s'] * scale[r['unit']]:.3g} {r['unit']}"]
        + [f"{r['after_s'] * scale[r['unit']]:.3g} {r['unit']}", f"{r['after_over_before']:.3f}"]
        + [" ".join(f"{x:.2f}" for x in r["paired_ratios"])]
        for r in results["rows"]
    ]
    columns = ["measure", "before", "after", "after / before", "per-round after / before"]
    out.append(table(columns, rows))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.rounds < (1 if args.quick else 3):
        raise SystemExit("error: at least 3 rounds (1 with --quick)")
    env = environment()
    start(env)
    overrides = QUICK_OVERRIDES if args.quick else []
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nfd_after_") as tmp:
        trees = {"before": Path(args.before).resolve(), "after": Path(tmp)}
        snapshot(Path(args.after), trees["after"])
        hashes = {name: source_hash(tree) for name, tree in trees.items()}
        rounds: dict[str, list[dict]] = {"before": [], "after": []}
        for i in range(args.rounds):
            for name in ("before", "after"):
                result = probe(trees[name], overrides, args.repeats)
                rounds[name].append(result)
                solve, train = result["solve"], result["train"]
                print(
                    f"round {i + 1} {name:6s}: solve step {solve['direct']['median_s'] * 1e3:.2f}"
                    f" ms (solve_limit {solve['meta']['step_s'] * 1e3:.2f} ms, compile "
                    f"{solve['meta']['compile_time_s']:.1f} s); train step "
                    f"{train['direct']['median_s'] * 1e3:.2f} ms (train_finite compile "
                    f"{train['meta']['compile_time_s']:.1f} s); process "
                    f"{result['process_wall_s']:.0f} s",
                    flush=True,
                )
    env["load_average_end"] = load_average()
    results = {
        "environment": env,
        "overrides": overrides,
        "rounds": args.rounds,
        "repeats": args.repeats,
        "total_wall_s": time.perf_counter() - tick,
        "trees": {
            name: {
                "path": str(args.before if name == "before" else args.after),
                "hash": hashes[name],
                "representation": rounds[name][0]["solve"]["representation"],
            }
            for name in rounds
        },
        "rows": summarise(rounds),
        "processes": rounds,
        "quick": args.quick,
    }
    write_outputs(args.out, "restructure", results, report(results))


if __name__ == "__main__":
    main()
