"""Per-step time of the NFD limit solver over N x M x K*B, compile time apart, memory.

    .venv/bin/python benchmarks/limit_sweep.py [--quick] [--out benchmarks/results/]

One training step is `LimitSolver`'s step (forward sweep of the B minibatch + P eval inputs,
outputs, backward sweep of the B inputs, parameter updates, history append), compiled ahead of
time through the jitted boundary `solve_limit` calls (`nfd_sde.limit.jit_step`; trace and XLA
compile times are reported apart from the step time), then called repeatedly with
`jax.block_until_ready`; min and median over the repeats. Sweeps particles N x depth steps M x
stored pairs K*B in field and weight space (diffrax driver), with throughput
N (B + P) M / time (particles x new forward pairs x depth steps per second; the backward
sweep's B pairs are not counted) and four memory numbers per point. The step is timed at
k = K - 1 and, with the same executable, at k = 0: their ratio checks that a step's cost does
not depend on how full the history is. The variants of one size are timed in interleaved rounds.

Writes `OUT/limit_sweep.json`, `OUT/limit_sweep.md` (the printed table) and
`OUT/limit_sweep.png` (time per step against N).
"""

import dataclasses
import time
from pathlib import Path

import matplotlib
import numpy as np
from _steps import REPRESENTATIONS, Shape, compile_size, size_points
from _timing import (
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


@dataclasses.dataclass(frozen=True)
class Sizes(Shape):
    particles: tuple[int, ...] = (256, 1024)
    depth_steps: tuple[int, ...] = (4, 16)
    stored: tuple[int, ...] = (16, 1024)
    repeats: int = 7
    budget_s: float = 3.0


QUICK = Sizes(particles=(64, 128), depth_steps=(2,), stored=(8,), repeats=3, budget_s=0.3)


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    tick = time.perf_counter()
    points = []
    for m in sizes.depth_steps:
        for n in sizes.particles:
            for s in sizes.stored:
                print(f"size N={n} M={m} K*B={s}", flush=True)
                infos, variants = compile_size(
                    sizes,
                    n,
                    m,
                    s,
                    representations=REPRESENTATIONS,
                    drivers=("diffrax",),
                    fill_check=True,
                )
                timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
                points += size_points(infos, timings, sizes)
    env["load_average_end"] = load_average()
    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "total_wall_s": time.perf_counter() - tick,
        "throughput_counts": "particles x (batch + eval) new forward pairs x depth steps per s",
        "points": points,
    }


def report(results: dict) -> str:
    out = header(results["environment"], results["sizes"], results["total_wall_s"])
    out += ["", "### Per-step time (diffrax driver), compile time, memory", ""]
    rows = []
    for p in results["points"]:
        mem = p["memory"]
        xla, device = mem.get("xla_total_bytes"), mem.get("device_peak_bytes")
        rows.append(
            [
                p["particles"],
                p["depth_steps"],
                p["stored_pairs"],
                p["representation"],
                ms(p["min_s"]),
                ms(p["median_s"]),
                f"{p['compile_s']:.1f}",
                f"{p['throughput_pair_steps_per_s']:.3g}",
                "-" if xla is None else f"{xla / 1e6:.3g}",
                f"{mem['plan_bytes_needed'] / 1e6:.3g}",
                "-" if device is None else f"{device / 1e6:.3g}",
                f"{mem['host_peak_rss_bytes'] / 1e6:.0f}",
            ]
        )
    columns = ["N", "M", "K*B", "repr.", "min ms", "median ms", "compile s", "pair-steps/s"]
    columns += ["XLA MB", "plan MB", "device peak MB", "peak RSS MB"]
    out.append(table(columns, rows))
    fill = [p["k0"]["over_last"] for p in results["points"]]
    out.append(
        f"\nstep at k=0 / step at k=K-1 (same executable): median {np.median(fill):.2f}, "
        f"range {min(fill):.2f}..{max(fill):.2f}"
    )
    plan_over_xla = [
        p["memory"]["plan_bytes_needed"] / p["memory"]["xla_total_bytes"]
        for p in results["points"]
        if p["memory"].get("xla_total_bytes")
    ]
    if plan_over_xla:
        out.append(
            f"plan estimate / XLA memory analysis: {min(plan_over_xla):.2f}..{max(plan_over_xla):.2f}"
        )
    return "\n".join(out)


def plot(results: dict, path: Path) -> None:
    points = results["points"]
    fig, ax = plt.subplots(figsize=(7, 5))
    cases = sorted({(p["depth_steps"], p["stored_pairs"]) for p in points})
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(cases)))
    for (m, s), colour in zip(cases, colours):
        for rep, style in zip(REPRESENTATIONS, ("-o", "--s")):
            line = sorted(
                (p["particles"], p["min_s"] * 1e3)
                for p in points
                if (p["depth_steps"], p["stored_pairs"], p["representation"]) == (m, s, rep)
            )
            ax.plot(*zip(*line), style, color=colour, label=f"{rep}, M={m}, K*B={s}")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="particles N",
        ylabel="time per training step (ms, min)",
        title="limit solver step (diffrax driver)",
    )
    ax.legend(fontsize=7, ncol=2)
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
    out = write_outputs(args.out, "limit_sweep", results, report(results))
    plot(results, out / "limit_sweep.png")
    print(f"wrote {out / 'limit_sweep.png'}")


if __name__ == "__main__":
    main()
