"""Long training runs: time per step against the history K*B, beside the machine's matmul rate.

    .venv/bin/python benchmarks/long_runs.py [--quick | --full] [--out benchmarks/results/]

For each representation and backward mode (field space: decoupled, and standard through the
two-sided field space; weight space: decoupled with its accumulated updates re-applied from the
stored pairs or kept dense (`solver.weight_updates`), and standard, dense) at N in {1024, 4096}
particles, M = 4 depth steps, minibatch B = 16, P = 8 eval inputs,
one step of the limit solver is compiled ahead of time (`nfd_sde.limit.jit_step`, compile time
reported apart) and timed at two points of a K-step run, K*B in {128, 512, 2048} (8192 with
`--full`): the last step (k = K - 1, a full history) and the middle one (k = K/2, half full; a
run's mean step time lies between the two). The history is filled up to the timed step's slots
with random values (the work of a field-space step depends on how many slots are in use).

Beside every step, in the same interleaved rounds, a jitted float32 square matmul with the same
flop count as the products the step needs (`needed_flops`), so `achieved = matmul time / step
time` is the fraction of the machine's matmul rate the step reaches. The exponent of the step
time in the history (a log-log fit over K*B at each N, with its 95 % interval) is reported for
both points.

Writes `OUT/long_runs.json` and `OUT/long_runs.md`.
"""

import argparse
import dataclasses
import time

import jax
import jax.numpy as jnp
from _steps import base_config
from _timing import (
    Variant,
    aot_compile,
    environment,
    header,
    load_average,
    ms,
    start,
    table,
    time_group,
    write_outputs,
)

from nfd_sde.limit import build_solver, fill_history, jit_step, plan_for
from nfd_sde.model import load_stream
from solvers import fit_loglog


@dataclasses.dataclass(frozen=True)
class Sizes:
    batch: int = 16
    eval_size: int = 8
    dim: int = 8
    depth_steps: int = 4
    particles: tuple[int, ...] = (1024, 4096)
    stored: tuple[int, ...] = (128, 512, 2048)
    variants: tuple[tuple[str, str, str], ...] = (  # representation, backward, weight_updates
        ("field", "decoupled", "pairs"),
        ("field", "standard", "pairs"),  # the two-sided field space
        ("weight", "decoupled", "pairs"),
        ("weight", "decoupled", "dense"),
        ("weight", "standard", "dense"),
    )
    repeats: int = 4
    budget_s: float = 6.0


QUICK = Sizes(particles=(128,), stored=(64, 256), depth_steps=2, repeats=2, budget_s=0.5)
FULL = dataclasses.replace(Sizes(), stored=(128, 512, 2048, 8192))


def needed_flops(
    rep: str, n: int, m: int, filled: int, b: int, p: int, updates: str = "pairs"
) -> float:
    """The products one step needs at `filled` stored slots (multiply-adds count 2): per depth
    step, each direction's drift (the kernel with the stored inputs and its product with the
    stored paths, 2 x 2 N S r), and in field space the conditional increments (the kernel with
    the stored inputs, the stored increments times the rows: 2 x 2 N S r; the triangular solve,
    S^2 r) for r = B + P forward and B backward, plus the B new pairs' factor rows per
    direction (2 N S B + S^2 B); in weight space each direction's matrix product, 2 N^2 r, and
    with dense updates the drift is one more product, 2 N^2 r, plus the rank-B update of the
    kept matrix, 2 N^2 B, in place of the stored pairs' drift. The two-sided field space is
    counted as the one-sided one (its extra solves against the other side left out: a lower
    bound)."""
    s, total = filled, 0.0
    for r in (b + p, b):
        total += 2 * n * n * (r + (b if r == b else 0)) if updates == "dense" else 4 * n * s * r
        if rep == "field":
            total += 4 * n * s * r + s * s * r + 2 * n * s * b + s * s * b
        else:
            total += 2 * n * n * r
    return m * total


def compile_point(sizes: Sizes, n: int, stored: int, rep: str, backward: str, updates: str):
    config = base_config(sizes, stored=stored).replace(
        solver={
            "particles": n,
            "depth_steps": sizes.depth_steps,
            "representation": rep,
            "backward": backward,
            "weight_updates": updates,
            "memory_limit_gb": 1e6,
            "groups": 1,
            "levels": 1,
        }
    )
    stream = load_stream(config)
    solver = build_solver(config, stream, key=jax.random.key(0), plan=plan_for(config, stream))
    stack = lambda tree: jax.tree.map(lambda a: a[None], tree)  # noqa: E731
    solvers = stack(solver)
    f32 = jnp.float32
    calls, info = {}, {}
    compiled = None
    for label, k in (("last", stream.steps - 1), ("middle", stream.steps // 2)):
        inputs = (
            solvers,
            jnp.int32(k),
            jnp.asarray(stream.x_train[k], f32),
            jnp.asarray(stream.y_train[k], f32),
            jnp.asarray(stream.x_eval, f32),
        )
        filled = k * sizes.batch + solver.anchors * (k > 0)
        state = fill_history(
            stack(solver.init_state(key=jax.random.key(1))), filled, key=jax.random.key(2)
        )
        if compiled is None:
            compiled, info = aot_compile(jit_step, inputs, state)
        current = [state]

        def call(compiled=compiled, inputs=inputs, current=current):
            current[0], out = compiled(inputs, current[0])
            return out

        flops = needed_flops(
            rep, n, sizes.depth_steps, filled, sizes.batch, sizes.eval_size, updates
        )
        calls[label] = (call, flops, filled)
    return info, calls


def matmul_of(flops: float):
    """A jitted float32 square matmul of about `flops` (2 n^3) and its size n."""
    size = max(16, int(round((flops / 2) ** (1 / 3))))
    a = jax.random.normal(jax.random.key(3), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(4), (size, size), jnp.float32)
    product = jax.jit(jnp.matmul).lower(a, b).compile()
    return (lambda: product(a, b)), size


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    tick = time.perf_counter()
    points, refused = [], []
    for n in sizes.particles:
        for stored in sizes.stored:
            variants, meta = [], {}
            for rep, backward, updates in sizes.variants:
                name = f"{rep}/{backward}" + (f"/{updates}" if rep == "weight" else "")
                try:
                    info, calls = compile_point(sizes, n, stored, rep, backward, updates)
                except ValueError as error:  # refused by the plan (e.g. field space past N pairs)
                    print(f"  skip {name}: {error}", flush=True)
                    refused.append({"particles": n, "stored_pairs": stored, "variant": name,
                                    "reason": str(error)})  # fmt: skip
                    continue
                print(
                    f"  compiled N={n} K*B={stored} {name} in {info['compile_s']:.1f} s", flush=True
                )
                for label, (call, flops, filled) in calls.items():
                    matmul, size = matmul_of(flops)
                    key = f"{name}/{label}"
                    variants += [Variant(key, call), Variant(f"{key}/matmul", matmul)]
                    meta[key] = {
                        "representation": rep,
                        "backward": backward,
                        "weight_updates": updates,
                        "particles": n,
                        "stored_pairs": stored,
                        "point": label,
                        "filled_slots": int(filled),
                        "needed_flops": flops,
                        "matmul_size": size,
                        **info,
                    }
            timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
            load = load_average()
            for key, point in meta.items():
                step_t, matmul_t = timings[key], timings[f"{key}/matmul"]
                point.update(
                    step=step_t,
                    matmul=matmul_t,
                    achieved=matmul_t["min_s"] / step_t["min_s"],
                    matmul_gflops=point["needed_flops"] / matmul_t["min_s"] / 1e9,
                    step_gflops=point["needed_flops"] / step_t["min_s"] / 1e9,
                    load_average=load,
                )
                points.append(point)
                print(
                    f"  N={n:5d} K*B={stored:5d} {key:26s} {ms(step_t['min_s']):>7s} ms "
                    f"(matmul {ms(matmul_t['min_s'])} ms, achieved {point['achieved']:.2f})",
                    flush=True,
                )
    env["load_average_end"] = load_average()
    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "points": points,
        "refused": refused,
        "fits": fits(points),
        "total_s": time.perf_counter() - tick,
    }


def fits(points) -> list[dict]:
    out = []

    def of(p):
        return p["representation"], p["backward"], p["weight_updates"], p["particles"], p["point"]

    for rep, backward, updates, n, label in sorted({of(p) for p in points}):
        chosen = [p for p in points if of(p) == (rep, backward, updates, n, label)]
        if len(chosen) < 2:
            continue
        fit = fit_loglog([p["stored_pairs"] for p in chosen], [p["step"]["min_s"] for p in chosen])
        out.append(
            {
                "representation": rep,
                "backward": backward,
                "weight_updates": updates,
                "particles": n,
                "point": label,
                "exponent": fit.slope,
                "interval": list(fit.ci95),
            }
        )
    return out


def report(results: dict) -> str:
    env = results["environment"]
    lines = header(env, results["sizes"], results["total_s"])
    rows = [
        [
            p["particles"],
            p["stored_pairs"],
            _name(p),
            p["point"],
            p["filled_slots"],
            ms(p["step"]["min_s"]),
            ms(p["step"]["median_s"]),
            f"{p['compile_s']:.1f}",
            f"{p['step_gflops']:.1f}",
            f"{p['matmul_gflops']:.1f}",
            f"{p['achieved']:.2f}",
        ]
        for p in results["points"]
    ]
    lines += [
        "",
        table(
            [
                "N",
                "K*B",
                "repr./backward",
                "step",
                "slots used",
                "min ms",
                "median ms",
                "compile s",
                "needed GFLOP/s",
                "matmul GFLOP/s",
                "achieved",
            ],
            rows,
        ),
    ]
    fit_rows = [
        [
            f["particles"],
            _name(f),
            f["point"],
            f"{f['exponent']:.2f}",
            f"[{f['interval'][0]:.2f}, {f['interval'][1]:.2f}]",
        ]
        for f in results["fits"]
    ]
    if results.get("refused"):
        lines += ["", "refused by the plan (not timed):", ""]
        lines += [
            f"* N = {r['particles']}, K*B = {r['stored_pairs']}, {r['variant']}: {r['reason']}"
            for r in results["refused"]
        ]
    lines += [
        "",
        "step time ~ (K*B)^exponent:",
        "",
        table(["N", "repr./backward", "step", "exponent", "95 % interval"], fit_rows),
    ]
    return "\n".join(lines)


def _name(p) -> str:
    name = f"{p['representation']}/{p['backward']}"
    return name + (f"/{p['weight_updates']}" if p["representation"] == "weight" else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--full", action="store_true", help="also K*B = 8192")
    parser.add_argument("--particles", type=int, nargs="*", help="only these N")
    parser.add_argument("--stored", type=int, nargs="*", help="only these K*B")
    parser.add_argument("--representations", nargs="*", help="only these (field, weight)")
    parser.add_argument("--out", default="benchmarks/results/", help="output folder")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL if args.full else Sizes()
    if args.particles:
        sizes = dataclasses.replace(sizes, particles=tuple(args.particles))
    if args.stored:
        sizes = dataclasses.replace(sizes, stored=tuple(args.stored))
    if args.representations:
        chosen = tuple(v for v in sizes.variants if v[0] in args.representations)
        sizes = dataclasses.replace(sizes, variants=chosen)
    results = run(sizes)
    write_outputs(args.out, "long_runs", results, report(results))


if __name__ == "__main__":
    main()
