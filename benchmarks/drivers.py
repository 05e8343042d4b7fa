"""diffrax vs `lax.scan` depth stepping of the NFD limit solver: per-step time ratio.

    .venv/bin/python benchmarks/drivers.py [--quick] [--out benchmarks/results/]

The same solver configs (N x M x K*B, field and weight space) with `solver.driver = "diffrax"`
and `"scan"`, each compiled ahead of time through `nfd_sde.limit.jit_step` (compile times
apart) and timed in interleaved rounds; target diffrax / scan <= 1.25. Field-space steps also
run with OpenBLAS at 1 thread (same executables; on a small CPU jaxlib's LAPACK calls otherwise
contend with XLA's threads), so the ratio is also read without that noise.

Writes `OUT/drivers.json`, `OUT/drivers.md` (the printed table) and `OUT/drivers.png`.
"""

import dataclasses
import time
from pathlib import Path

import matplotlib
import numpy as np
from _steps import REPRESENTATIONS, Shape, blas1_available, compile_size, size_points
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

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGET = 1.25


@dataclasses.dataclass(frozen=True)
class Sizes(Shape):
    particles: tuple[int, ...] = (256, 1024)
    depth_steps: tuple[int, ...] = (4, 16)
    stored: tuple[int, ...] = (16, 1024)
    repeats: int = 7
    budget_s: float = 3.0


QUICK = Sizes(particles=(64,), depth_steps=(2,), stored=(8,), repeats=3, budget_s=0.3)


def _row(d: dict, c: dict) -> dict:
    row = {key: d[key] for key in ("particles", "depth_steps", "stored_pairs", "representation")}
    row |= {
        "diffrax_min_s": d["min_s"],
        "diffrax_median_s": d["median_s"],
        "scan_min_s": c["min_s"],
        "scan_median_s": c["median_s"],
        "diffrax_over_scan": d["min_s"] / c["min_s"],
        "compile_diffrax_s": d["compile_s"],
        "compile_scan_s": c["compile_s"],
    }
    if "blas1" in d and "blas1" in c:
        row["diffrax_blas1_min_s"] = d["blas1"]["min_s"]
        row["scan_blas1_min_s"] = c["blas1"]["min_s"]
        row["diffrax_over_scan_blas1"] = d["blas1"]["min_s"] / c["blas1"]["min_s"]
    return row


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    tick = time.perf_counter()
    blas1 = blas1_available()
    env["openblas_start"] = blas_info()
    points, rows = [], []
    for n in sizes.particles:
        for m in sizes.depth_steps:
            for s in sizes.stored:
                print(f"size N={n} M={m} K*B={s}", flush=True)
                infos, variants = compile_size(
                    sizes,
                    n,
                    m,
                    s,
                    representations=REPRESENTATIONS,
                    drivers=("diffrax", "scan"),
                    blas1=blas1,
                )
                timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
                new = {
                    (p["representation"], p["driver"]): p
                    for p in size_points(infos, timings, sizes)
                }
                points += new.values()
                rows += [_row(new[rep, "diffrax"], new[rep, "scan"]) for rep in REPRESENTATIONS]
    env["load_average_end"] = load_average()
    ratios = np.array([r["diffrax_over_scan"] for r in rows])
    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "total_wall_s": time.perf_counter() - tick,
        "target": TARGET,
        "summary": {
            "median": float(np.median(ratios)),
            "max": float(ratios.max()),
            "within_target": int(np.sum(ratios <= TARGET)),
            "count": len(rows),
        },
        "rows": rows,
        "points": points,
    }


def _ratio(value: float) -> str:
    return f"{value:.2f}" + (" (miss)" if value > TARGET else "")


def report(results: dict) -> str:
    rows = results["rows"]
    out = header(results["environment"], results["sizes"], results["total_wall_s"])
    out += ["", "### diffrax / scan driver (min times)", ""]
    has_blas1 = any("diffrax_over_scan_blas1" in r for r in rows)
    columns = ["N", "M", "K*B", "repr.", "diffrax ms", "scan ms", "diffrax/scan"]
    columns += ["diffrax/scan, 1 BLAS thread"] if has_blas1 else []
    columns += ["compile diffrax / scan s"]
    lines = []
    for r in rows:
        line = [r["particles"], r["depth_steps"], r["stored_pairs"], r["representation"]]
        line += [ms(r["diffrax_min_s"]), ms(r["scan_min_s"]), _ratio(r["diffrax_over_scan"])]
        if has_blas1:
            blas1 = r.get("diffrax_over_scan_blas1")
            line.append("-" if blas1 is None else _ratio(blas1))
        line.append(f"{r['compile_diffrax_s']:.1f} / {r['compile_scan_s']:.1f}")
        lines.append(line)
    out.append(table(columns, lines))
    summary = results["summary"]
    out.append(
        f"\ndiffrax/scan (default threads): median {summary['median']:.2f}, max "
        f"{summary['max']:.2f}; {summary['within_target']}/{summary['count']} within {TARGET}x"
    )
    return "\n".join(out)


def plot(results: dict, path: Path) -> None:
    rows = results["rows"]
    fig, ax = plt.subplots(figsize=(8, 5))
    labels = [
        f"{r['representation'][0]} N{r['particles']} M{r['depth_steps']} S{r['stored_pairs']}"
        for r in rows
    ]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["diffrax_over_scan"] for r in rows], 0.4, label="default threads")
    if any("diffrax_over_scan_blas1" in r for r in rows):
        blas1 = [r.get("diffrax_over_scan_blas1", np.nan) for r in rows]
        ax.bar(x + 0.2, blas1, 0.4, label="1 BLAS thread (field)")
    ax.axhline(TARGET, color="r", ls="--", label=f"target {TARGET}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_yscale("log")
    ticks = [0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0]
    ax.set_yticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()
    ax.set_xticks(x, labels, rotation=90, fontsize=7)
    ax.set(ylabel="diffrax / scan time per step", title="driver overhead")
    ax.legend(fontsize=7)
    env = results["environment"]
    fig.suptitle(
        f"{env['device']['platform']} ({env['host']['cpu_model']}), jax "
        f"{env['versions']['jax']}, load average {env['load_average_start']}",
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    results = run(QUICK if args.quick else Sizes())
    results["quick"] = args.quick
    out = write_outputs(args.out, "drivers", results, report(results))
    plot(results, out / "drivers.png")
    print(f"wrote {out / 'drivers.png'}")


if __name__ == "__main__":
    main()
