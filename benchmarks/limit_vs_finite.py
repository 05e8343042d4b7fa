"""The NFD limit solver against the finite network it describes: time per training step.

    .venv/bin/python benchmarks/limit_vs_finite.py [--quick] [--out benchmarks/results/]

For each N x M x K*B: the limit's step in field and weight space (`nfd_sde.limit.jit_step`,
compiled ahead of time; field space also with OpenBLAS at 1 thread) against the decoupled finite
ResNet of width N and depth M, whose step is `sgd_step` on the minibatch + `evaluate` on the
eval inputs (what `train_finite` runs per step; its cost does not depend on K*B). All of one
size are timed in interleaved rounds.

Writes `OUT/limit_vs_finite.json` and `OUT/limit_vs_finite.md` (the printed table).
"""

import dataclasses
import time

from _steps import (
    REPRESENTATIONS,
    Shape,
    blas1_available,
    compile_finite,
    compile_size,
    finite_point,
    size_points,
)
from _timing import (
    blas_info,
    environment,
    header,
    load_average,
    ms,
    parse_args,
    start,
    table,
    time_group,
    write_outputs,
)


@dataclasses.dataclass(frozen=True)
class Sizes(Shape):
    particles: tuple[int, ...] = (256, 1024)
    depth_steps: tuple[int, ...] = (4, 16)
    stored: tuple[int, ...] = (16, 1024)
    repeats: int = 7
    budget_s: float = 3.0


QUICK = Sizes(particles=(64,), depth_steps=(2,), stored=(8,), repeats=3, budget_s=0.3)


def _row(solver: dict[str, dict], finite: dict) -> dict:
    field = solver["field"]
    row = {key: field[key] for key in ("particles", "depth_steps", "stored_pairs")}
    row |= {
        "finite_min_s": finite["min_s"],
        "finite_sgd_step_min_s": finite["sgd_step"]["min_s"],
        "finite_evaluate_min_s": finite["evaluate"]["min_s"],
        "auto": field["plan"]["auto_representation"],
    }
    for rep, point in solver.items():
        row[f"{rep}_min_s"] = point["min_s"]
        row[f"{rep}_over_finite"] = point["min_s"] / finite["min_s"]
        if "blas1" in point:
            row[f"{rep}_blas1_over_finite"] = point["blas1"]["min_s"] / finite["min_s"]
    return row


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    tick = time.perf_counter()
    blas1 = blas1_available()
    env["openblas_start"] = blas_info()
    points, finite_points, rows = [], [], []
    for n in sizes.particles:
        for m in sizes.depth_steps:
            finite_info, finite_variants = compile_finite(sizes, n, m)
            for s in sizes.stored:
                print(f"size N={n} M={m} K*B={s}", flush=True)
                infos, variants = compile_size(
                    sizes,
                    n,
                    m,
                    s,
                    representations=REPRESENTATIONS,
                    drivers=("diffrax",),
                    blas1=blas1,
                )
                variants += finite_variants
                timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
                solver = {p["representation"]: p for p in size_points(infos, timings, sizes)}
                finite = finite_point(dict(finite_info, stored_pairs=s), timings)
                points += solver.values()
                finite_points.append(finite)
                rows.append(_row(solver, finite))
    env["load_average_end"] = load_average()
    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "total_wall_s": time.perf_counter() - tick,
        "rows": rows,
        "solver_points": points,
        "finite_points": finite_points,
    }


def report(results: dict) -> str:
    out = header(results["environment"], results["sizes"], results["total_wall_s"])
    out += ["", "### solver / finite decoupled ResNet of width N, depth M (sgd_step + evaluate)"]
    columns = ["N", "M", "K*B", "finite ms", "field ms", "weight ms", "field/finite"]
    columns += ["field (1 BLAS thr.)/finite", "weight/finite", "auto"]
    rows = []
    for r in results["rows"]:
        blas1 = r.get("field_blas1_over_finite")
        rows.append(
            [r["particles"], r["depth_steps"], r["stored_pairs"]]
            + [ms(r["finite_min_s"]), ms(r["field_min_s"]), ms(r["weight_min_s"])]
            + [f"{r['field_over_finite']:.2g}", "-" if blas1 is None else f"{blas1:.2g}"]
            + [f"{r['weight_over_finite']:.2g}", r["auto"]]
        )
    out += ["", table(columns, rows)]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    results = run(QUICK if args.quick else Sizes())
    results["quick"] = args.quick
    write_outputs(args.out, "limit_vs_finite", results, report(results))


if __name__ == "__main__":
    main()
