"""Field vs weight space of the NFD limit solver: time ratio, crossover, `auto`'s choice, and
the cost-model constants that match the measurements.

    .venv/bin/python benchmarks/representations.py [--quick] [--out benchmarks/results/]

Times the solver step (`nfd_sde.limit.jit_step`, compiled ahead of time) in both
representations on a grid of N x K*B at a fixed M, in interleaved rounds; field space also with
OpenBLAS at 1 thread (same executable). Reports the field/weight time ratio, the K*B where it
crosses 1, whether `plan_limit`'s `auto` picks the measured faster one, and the
(FIELD_BIAS, RNG_COST) that best fit the measured ratios. Then measures RNG_COST directly: one
N x N Gaussian draw of the solver's `KeyedGaussianMatrices` against the N x N @ N x (2B + P)
matmul that uses it, per number and per multiply-add.

Writes `OUT/representations.json`, `OUT/representations.md` (the printed tables) and
`OUT/representations.png` (time per step against N, ratio heat maps with `auto`'s choice).
"""

import dataclasses
import time

import equinox as eqx
import jax
import jax.numpy as jnp
from _cost_model import analyse, plot, report
from _steps import REPRESENTATIONS, Shape, blas1_available, compile_size, size_points
from _timing import (
    Variant,
    aot_compile,
    blas_info,
    environment,
    load_average,
    parse_args,
    start,
    time_group,
    write_outputs,
)

from solvers import KeyedGaussianMatrices


@dataclasses.dataclass(frozen=True)
class Sizes(Shape):
    particles: tuple[int, ...] = (256, 1024, 4096)
    stored: tuple[int, ...] = (16, 128, 1024)
    depth_steps: int = 4
    repeats: int = 7
    budget_s: float = 3.0


QUICK = Sizes(particles=(64, 128), stored=(8, 16), depth_steps=2, repeats=3, budget_s=0.3)


def measure_rng_cost(sizes: Sizes, particles: int) -> dict:
    """The weight space's Gaussian-matrix cost on this device, in multiply-adds: time of one
    N x N draw of the solver's own matrix source, per number, over the time of the N x N by
    N x (2B + P) matmul that uses it, per multiply-add (the unit of `plan_limit`'s model)."""
    pairs = 2 * sizes.batch + sizes.eval_size
    source = KeyedGaussianMatrices(jax.random.key(0), particles, jnp.dtype(jnp.float32))
    omega = source(jnp.int32(0))
    feats = jnp.ones((particles, pairs), jnp.float32)
    draw_c, draw_compile = aot_compile(eqx.filter_jit(lambda src, m: src(m)), source, 1)
    matmul_c, matmul_compile = aot_compile(eqx.filter_jit(lambda a, b: a @ b), omega, feats)
    timings = time_group(
        [
            Variant("draw", lambda: draw_c(source, 1)),
            Variant("matmul", lambda: matmul_c(omega, feats)),
        ],
        repeats=sizes.repeats,
        budget_s=sizes.budget_s / 2,
    )
    draw, matmul = timings["draw"], timings["matmul"]
    estimate = draw["min_s"] * pairs / matmul["min_s"]
    print(
        f"  N={particles}: one N x N normal draw {draw['min_s'] * 1e3:.2f} ms, N x N @ N x "
        f"{pairs} matmul {matmul['min_s'] * 1e3:.2f} ms: RNG_COST ~ {estimate:.3g}",
        flush=True,
    )
    return {
        "particles": particles,
        "matmul_columns": pairs,
        "draw": {**draw_compile, **draw},
        "matmul": {**matmul_compile, **matmul},
        "rng_cost_estimate": estimate,
    }


def grid_row(sizes: Sizes, field: dict, weight: dict) -> dict:
    row = {
        "particles": field["particles"],
        "depth_steps": field["depth_steps"],
        "stored_pairs": field["stored_pairs"],
        "batch": sizes.batch,
        "eval_size": sizes.eval_size,
        "field_min_s": field["min_s"],
        "weight_min_s": weight["min_s"],
        "ratio": field["min_s"] / weight["min_s"],
        "auto": field["plan"]["auto_representation"],
        "cost_ratio": field["plan"]["cost_field"] / field["plan"]["cost_weight"],
    }
    if "blas1" in field:
        row["field_blas1_min_s"] = field["blas1"]["min_s"]
        row["ratio_blas1"] = field["blas1"]["min_s"] / weight["min_s"]
    return row


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    tick = time.perf_counter()
    blas1 = blas1_available()
    env["openblas_start"] = blas_info()
    m = sizes.depth_steps
    points, grid = [], []
    for n in sizes.particles:
        for s in sizes.stored:
            print(f"size N={n} M={m} K*B={s}", flush=True)
            infos, variants = compile_size(
                sizes, n, m, s, representations=REPRESENTATIONS, drivers=("diffrax",), blas1=blas1
            )
            timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
            new = {p["representation"]: p for p in size_points(infos, timings, sizes)}
            points += new.values()
            grid.append(grid_row(sizes, new["field"], new["weight"]))
    print("Gaussian matrix draw vs matmul (weight space)", flush=True)
    rng = measure_rng_cost(sizes, max(sizes.particles))
    env["load_average_end"] = load_average()
    env["openblas"] = blas_info()
    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "total_wall_s": time.perf_counter() - tick,
        "grid": grid,
        "grid_analysis": analyse(grid, list(sizes.particles), list(sizes.stored)),
        "rng_cost": rng,
        "points": points,
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    results = run(QUICK if args.quick else Sizes())
    results["quick"] = args.quick
    out = write_outputs(args.out, "representations", results, report(results))
    plot(results, out / "representations.png")
    print(f"wrote {out / 'representations.png'}")


if __name__ == "__main__":
    main()
