"""Time to accuracy: the NFD limit's f_eval to a relative error of 1% and 0.1%, three ways.

    .venv/bin/python benchmarks/time_to_accuracy.py [--quick] [--out benchmarks/results/]

(a) `solve_limit` with 3 nested levels (Richardson) and control variates, at M = 16 and 32;
(b) plain Euler: one level, no control variates, groups used only as independent seeds;
(c) ensembles of finite decoupled networks, vmapped over seeds, extrapolated in depth
    (Richardson over L/2, L on common random numbers, `depth_refinement`) and in width
    (Richardson over n, 2n).
Each method repeats a fixed-size unit with new keys, in interleaved rounds (one unit of every
method per round, then a share of the reference's units), so all see the same machine load. The
reference is the extrapolated solver at M = 32 on many more units. `_accuracy.py` holds the units,
`_accuracy_law.py` the error rule, the law, the fit and the biases. Writes
`OUT/time_to_accuracy.json` and `OUT/time_to_accuracy.md`.
"""

import dataclasses
import math
import time

import jax
import numpy as np
from _accuracy import (
    Problem,
    SolverMethod,
    ensemble,
    ensemble_data,
    finite_estimators,
    solver_unit,
    width_keys,
)
from _accuracy_law import analyse
from _steps import blas1_available
from _timing import (
    aot_compile,
    blas_info,
    blas_threads,
    environment,
    header,
    load_average,
    parse_args,
    start,
    table,
    write_outputs,
)

from nfd_sde import load_stream


@dataclasses.dataclass(frozen=True)
class Sizes:
    particles: int = 4096  # per group, every solver unit
    groups: int = 8
    depth_a: tuple[int, ...] = (16, 32)  # (a) at these M, 3 levels each
    depth_b: int = 32  # (b) units
    depth_b_check: int = 128  # a few (b) units at a larger M: cost and variance against M
    b_check_units: int = 4
    widths: tuple[int, ...] = (16, 32, 64)
    depths: tuple[int, ...] = (8, 16)  # L/2, L: one key per seed, depth_refinement L / depth
    seeds: int = 512  # per (width, depth) in a finite unit
    blocks: tuple[int, ...] = (1, 2, 4, 8, 16)  # rounds = their sum; disjoint blocks for the fit
    reference_depth: int = 32
    reference_units: int = 100
    targets: tuple[float, ...] = (0.01, 0.001)


QUICK = Sizes(
    particles=64, groups=4, depth_a=(8,), depth_b=4, depth_b_check=8, b_check_units=0,
    widths=(4, 8), depths=(2, 4), seeds=16, blocks=(1, 2), reference_depth=8, reference_units=3,
)  # fmt: skip


def methods(sizes: Sizes) -> dict[str, SolverMethod]:
    out = {f"a_M{m}": SolverMethod(f"a_M{m}", m, 3, True, seed=m) for m in sizes.depth_a}
    for m in (sizes.depth_b, sizes.depth_b_check)[: 2 if sizes.b_check_units else 1]:
        out[f"b_M{m}"] = SolverMethod(f"b_M{m}", m, 1, False, seed=1000 + m)
    out["ref"] = SolverMethod("ref", sizes.reference_depth, 3, True, seed=99)
    return out


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    tick = time.perf_counter()
    problem = Problem()
    config = problem.config()
    stream = load_stream(config)
    solvers = methods(sizes)
    blas1 = blas1_available()
    env["openblas"] = blas_info()
    env["openblas_threads_used"] = 1 if blas1 else "default"
    warm, shapes = {}, set()
    with blas_threads(1 if blas1 else None):
        for name, method in solvers.items():  # the first call of a shape compiles it
            shape = (method.depth_steps, method.levels, method.control_variates)
            if shape in shapes:
                continue  # the reference shares (a)'s shape at its M
            shapes.add(shape)
            t0 = time.perf_counter()
            solver_unit(config, stream, method, sizes.particles, sizes.groups, unit=10**6)
            warm[name] = time.perf_counter() - t0
            print(f"  first call {name}: {warm[name]:.1f} s", flush=True)
        data = ensemble_data(config)
        compiled, finite_compile = {}, {}
        for n in sizes.widths:
            for depth in sizes.depths:
                fn = ensemble(config, n, depth, refinement=max(sizes.depths) // depth)
                keys = width_keys(0, 10**6, n, sizes.seeds)
                compiled[n, depth], info = aot_compile(fn, keys, *data)
                finite_compile[n, depth] = info["compile_s"]
        runs = {name: [] for name in solvers}
        finite_units = []
        rounds = sum(sizes.blocks)
        for u in range(rounds):
            for name, method in solvers.items():
                count = 1
                if name == "ref":
                    count = (u + 1) * sizes.reference_units // rounds
                    count -= u * sizes.reference_units // rounds
                elif name == f"b_M{sizes.depth_b_check}" and u >= sizes.b_check_units:
                    count = 0
                for _ in range(count):
                    unit = len(runs[name])
                    runs[name].append(
                        solver_unit(config, stream, method, sizes.particles, sizes.groups, unit)
                    )
            f, walls = {}, {}
            for (n, depth), fn in compiled.items():
                keys = width_keys(7, u, n, sizes.seeds)
                t0 = time.perf_counter()
                f[n, depth] = np.asarray(jax.block_until_ready(fn(keys, *data)))
                walls[n, depth] = time.perf_counter() - t0
            finite_units.append(
                finite_estimators(f, walls, sizes.widths, sorted(sizes.depths, reverse=True))
            )
            print(
                f"round {u + 1}/{rounds} done at {time.perf_counter() - tick:.0f} s, load "
                f"{load_average()}",
                flush=True,
            )
    env["load_average_end"] = load_average()
    results = analyse(sizes, problem, runs, finite_units, warm, finite_compile)
    results |= {"environment": env, "total_wall_s": time.perf_counter() - tick}
    return results


def seconds(t: float) -> str:
    if not math.isfinite(t):
        return "never (bias > target)"
    return f"{t:.3g} s" if t < 3600 else f"{t / 3600:.3g} h"


def ratio(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.3g}"


def number(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def cell(row: dict, target: float) -> str:
    measured = row.get(f"measured_{target:g}")
    law = row[f"law_{target:g}"]
    text = f"law {seconds(law['time_s'])}"
    if math.isfinite(law["time_s"]):
        text += f" [{seconds(law['interval_s'][0])}, {seconds(law['interval_s'][1])}]"
    if measured:
        text = (
            f"**measured {seconds(measured['time_s'])}** ({measured['units']} units, realized "
            f"{measured['realized']:.2%}, z {measured['z']:.1f}); " + text
        )
    return text


def report(results: dict) -> str:
    sizes, ref, rows = results["sizes"], results["reference"], results["methods"]
    out = header(results["environment"], sizes, results["total_wall_s"])
    p = results["problem"]
    out += [
        f"problem: ReLU, phi readout, U, v, W trained, decoupled, tanh teacher; d={p['dim']}, "
        f"K={p['steps']}, B={p['batch']}, P={p['eval_size']}, eta={p['eta']}; error = max over "
        "f_eval entries / max |f_ref|; bound = max(|bias| + 2 stderr) / max |f_ref|",
        "",
        f"### Reference: extrapolated solver, M={sizes['reference_depth']}, 3 levels, CV, "
        f"{ref['units']} units = {ref['particles_total']:.3g} particles",
        f"max |f_ref| = {ref['scale']:.4f}; 2 stderr {ref['rel_2stderr']:.3%}, syserr "
        f"{ref['rel_syserr']:.3%} (relative, max over entries); stderr calibration "
        f"{number(ref['calibration'])}; median variance ratios: CV {ref['cv_variance_ratio_median']:.2f},"
        f" nested levels {ref['nested_variance_ratio_median']:.1e}",
        "plain Euler's depth bias, from the reference's shared-path levels: "
        + ", ".join(f"M={m}: {b:.3%}" for m, b in ref["euler_bias"].items())
        + f"; Richardson over L={min(sizes['depths'])},{max(sizes['depths'])}: "
        f"{ref['richardson_depth_residual']:.3%}",
        "",
        "### Every variant (times: wall of the units run; compile apart)",
        "",
    ]
    columns = ["variant", "what", "units", "unit s", "compile s", "unit 2se", "bias", "calib."]
    columns += ["realized"]
    columns += ["slope [95%]"] + [f"to {t:g}" for t in sizes["targets"]]
    lines = []
    for name, row in rows.items():
        if "_law" in name:
            continue
        fit = row["fit"]
        slope = (
            f"{fit['slope']:.2f} [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]"
            if "slope" in fit
            else "-"
        )
        lines.append(
            [name, row["note"], row["units"], f"{row['unit_s']:.2f}", f"{row['compile_s']:.1f}"]
            + [f"{row['unit_2se']:.2%}", f"{row['bias']:.3%}", number(row["calibration"])]
            + [f"{row['realized_all']:.2%} (z {row['z_all']:.1f})", slope]
            + [cell(row, t) for t in sizes["targets"]]
        )
    out += [table(columns, lines), "", "### (b) at larger M, by the law", ""]
    lines = [
        [name, f"{row['unit_s']:.2f}", f"{row['bias']:.3%}"]
        + [cell(row, t) for t in sizes["targets"]]
        for name, row in rows.items()
        if "_law" in name
    ]
    out += [table(["variant", "unit s", "bias", *columns[-2:]], lines), ""]
    out += ["### Finite ensembles against the limit at M = L (largest entry)", ""]
    lines = [
        [w["width"], w["depth"], f"{w['rel']:+.2%}", f"{w['z']:+.1f}"]
        for w in results["width_bias"]
    ]
    out += [table(["n", "L", "(f - f_lim(L)) / max|f_ref|", "z"], lines), ""]
    out += ["### Summary: fastest variant of each method", ""]
    lines = []
    for target, best in results["summary"].items():
        lines.append(
            [target]
            + [
                f"{seconds(best[m]['time_s'])} ({best[m]['variant']}, {best[m]['how']})"
                for m in "abc"
            ]
            + [ratio(best["b"]["over_a"]), ratio(best["c"]["over_a"])]
        )
    out += [table(["target", "(a)", "(b)", "(c)", "(b)/(a)", "(c)/(a)"], lines)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    results = run(QUICK if args.quick else Sizes())
    results["quick"] = args.quick
    write_outputs(args.out, "time_to_accuracy", results, report(results))


if __name__ == "__main__":
    main()
