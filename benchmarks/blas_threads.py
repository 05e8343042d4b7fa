"""The NFD limit solver's step with OpenBLAS at 1 thread against its default thread count.

    .venv/bin/python benchmarks/blas_threads.py [--quick] [--out benchmarks/results/]

On a CPU, jaxlib's LAPACK kernels (the field-space Cholesky, eigh and triangular solves) call
scipy's OpenBLAS, whose own threads contend with XLA's on a small machine. For every solver
config whose compiled step makes LAPACK calls (field space, at the (N, M, K*B) points of
`representations.py` and `limit_sweep.py`), the same executable
(`nfd_sde.limit.jit_step`, compiled ahead of time) is timed with OpenBLAS at its default thread
count and at 1 thread, in interleaved rounds. On a GPU, or where no OpenBLAS is loaded, there is
nothing to compare and the script says so.

Writes `OUT/blas_threads.json` and `OUT/blas_threads.md` (the printed table).
"""

import dataclasses
import time

import numpy as np
from _steps import Shape, blas1_available, compile_size, size_points
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

# (N, M, K*B): the field-space points of `representations.py` and `limit_sweep.py`
POINTS = tuple((n, 4, s) for n in (256, 1024, 4096) for s in (16, 128, 1024)) + tuple(
    (n, 16, s) for n in (256, 1024) for s in (16, 1024)
)


@dataclasses.dataclass(frozen=True)
class Sizes(Shape):
    points: tuple[tuple[int, int, int], ...] = POINTS
    representations: tuple[str, ...] = ("field",)
    driver: str = "diffrax"
    repeats: int = 7
    budget_s: float = 3.0


QUICK = Sizes(points=((64, 2, 8), (64, 2, 16)), repeats=3, budget_s=0.3)


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    tick = time.perf_counter()
    available = blas1_available()
    env["openblas_start"] = blas_info()
    rows = []
    if not available:
        print("no OpenBLAS whose threads can be set on this device: nothing to compare")
    for n, m, s in sizes.points if available else ():
        print(f"size N={n} M={m} K*B={s}", flush=True)
        infos, variants = compile_size(
            sizes,
            n,
            m,
            s,
            representations=sizes.representations,
            drivers=(sizes.driver,),
            blas1=True,
        )
        timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
        for point in size_points(infos, timings, sizes):
            if "blas1" in point:
                point["default_over_blas1"] = point["min_s"] / point["blas1"]["min_s"]
                rows.append(point)
    env["load_average_end"] = load_average()
    env["openblas"] = blas_info()
    speedups = [r["default_over_blas1"] for r in rows]
    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "total_wall_s": time.perf_counter() - tick,
        "openblas_threads_settable": available,
        "summary": {
            "median": float(np.median(speedups)) if rows else None,
            "min": min(speedups, default=None),
            "max": max(speedups, default=None),
        },
        "points": rows,
    }


def report(results: dict) -> str:
    out = header(results["environment"], results["sizes"], results["total_wall_s"])
    threads = ", ".join(
        f"{b['library']}: {b['threads']}" for b in results["environment"]["openblas_start"]
    )
    out += ["", f"### default OpenBLAS threads ({threads or 'none found'}) vs 1 thread", ""]
    if not results["points"]:
        out.append("no OpenBLAS whose threads can be set here (a GPU, or no LAPACK calls)")
        return "\n".join(out)
    columns = ["N", "M", "K*B", "repr.", "LAPACK calls", "default min ms", "default median ms"]
    columns += ["1 thread min ms", "1 thread median ms", "default / 1 thread"]
    rows = [
        [p["particles"], p["depth_steps"], p["stored_pairs"], p["representation"]]
        + [p["lapack_calls"], ms(p["min_s"]), ms(p["median_s"])]
        + [ms(p["blas1"]["min_s"]), ms(p["blas1"]["median_s"]), f"{p['default_over_blas1']:.2f}"]
        for p in results["points"]
    ]
    out.append(table(columns, rows))
    summary = results["summary"]
    out.append(
        f"\ndefault / 1 thread (min times): median {summary['median']:.2f}, range "
        f"{summary['min']:.2f}..{summary['max']:.2f} (> 1: 1 thread is faster)"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    results = run(QUICK if args.quick else Sizes())
    results["quick"] = args.quick
    write_outputs(args.out, "blas_threads", results, report(results))


if __name__ == "__main__":
    main()
