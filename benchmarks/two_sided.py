"""Standard backprop in field space (two-sided conditioning) against the decoupled field space
and the standard weight space: time per limit training step, side by side.

    .venv/bin/python benchmarks/two_sided.py [--quick] [--out benchmarks/results/]

For every N x K*B of the grid (M fixed, B = 4, 4 eval inputs, ReLU, float32, `lax.scan` driver),
compiles the solver step (`nfd_sde.limit.jit_step`, ahead of time, compile time reported apart)
of three variants and times them in interleaved rounds (`_timing.time_group`):

* `field/decoupled`: the one-sided field space (the NFD);
* `field/standard`: the two-sided field space (`solvers.TwoSidedFieldSpace`);
* `weight/standard`: weight space with the forward matrix reused backward (N x N per depth step).

Reports each minimum time, the ratios standard-field / decoupled-field and standard-field /
standard-weight, and which representation `plan_limit`'s `auto` picks for standard backprop.
Weight space is skipped above `--max-weight N` particles (its N x N matrices).

Writes `OUT/two_sided.json` and `OUT/two_sided.md`.
"""

import argparse
import dataclasses
import sys
import time

from _steps import Shape, compile_solver
from _timing import (
    Variant,
    environment,
    header,
    load_average,
    ms,
    start,
    table,
    time_group,
    write_outputs,
)


@dataclasses.dataclass(frozen=True)
class Sizes(Shape):
    particles: tuple[int, ...] = (1024, 4096, 16384)
    stored: tuple[int, ...] = (16, 128, 512)
    depth_steps: int = 4
    repeats: int = 5
    budget_s: float = 3.0
    max_weight: int = 4096


QUICK = Sizes(particles=(64, 128), stored=(8, 16), depth_steps=2, repeats=3, budget_s=0.3)
VARIANTS = (("field", "decoupled"), ("field", "standard"), ("weight", "standard"))


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--out", default="benchmarks/results/", help="output folder")
    parser.add_argument("--particles", help="comma-separated N (default: 1024,4096,16384)")
    parser.add_argument("--stored", help="comma-separated K*B (default: 16,128,512)")
    parser.add_argument("--max-weight", type=int, help="largest N timed in weight space")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.particles:
        sizes = dataclasses.replace(sizes, particles=tuple(map(int, args.particles.split(","))))
    if args.stored:
        sizes = dataclasses.replace(sizes, stored=tuple(map(int, args.stored.split(","))))
    if args.max_weight:
        sizes = dataclasses.replace(sizes, max_weight=args.max_weight)
    env = environment()
    start(env)
    tick = time.perf_counter()
    points, rows = [], []
    for n in sizes.particles:
        for s in sizes.stored:
            infos, variants = {}, []
            for rep, backward in VARIANTS:
                if rep == "weight" and n > sizes.max_weight:
                    continue
                info, call, _ = compile_solver(
                    sizes, n, sizes.depth_steps, s, rep, "scan", backward=backward
                )
                name = f"{rep}/{backward}"
                infos[name] = info
                variants.append(Variant(name, call))
                print(f"  compiled N={n} K*B={s} {name} in {info['compile_s']:.1f} s", flush=True)
            timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
            times = {name: timings[name]["min_s"] for name in infos}
            auto = infos["field/standard"]["plan"]["auto_representation"]
            point = {
                "particles": n,
                "stored_pairs": s,
                "depth_steps": sizes.depth_steps,
                "load_average": load_average(),
                "times": {name: timings[name] for name in infos},
                "compile_s": {name: infos[name]["compile_s"] for name in infos},
                "auto_for_standard": auto,
                "standard_over_decoupled": times["field/standard"] / times["field/decoupled"],
            }
            weight = times.get("weight/standard")
            point["standard_field_over_weight"] = (
                times["field/standard"] / weight if weight else None
            )
            points.append(point)
            rows.append(
                [n, s]
                + [ms(times[k]) if k in times else "-" for k in map("/".join, VARIANTS)]
                + [
                    f"{point['standard_over_decoupled']:.2f}",
                    "-" if weight is None else f"{point['standard_field_over_weight']:.3g}",
                    auto,
                ]
            )
            print(f"  N={n} K*B={s}: " + ", ".join(f"{k} {ms(v)} ms" for k, v in times.items()))
    total = time.perf_counter() - tick
    env["load_average_end"] = load_average()
    text = "\n".join(
        [
            "# Standard backprop in field space against decoupled field and standard weight space",
            "",
            *header(env, dataclasses.asdict(sizes), total),
            "",
            table(
                [
                    "N",
                    "K*B",
                    "field/decoupled ms",
                    "field/standard ms",
                    "weight/standard ms",
                    "std field / dec field",
                    "std field / std weight",
                    "auto (standard)",
                ],
                rows,
            ),  # fmt: skip
        ]
    )
    write_outputs(args.out, "two_sided", {"env": env, "sizes": dataclasses.asdict(sizes),
                                          "points": points}, text)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
