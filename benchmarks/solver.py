"""Speed of the NFD limit solver: per-training-step time, compile time apart, peak memory.

    .venv/bin/python benchmarks/solver.py [--quick] [--out benchmarks/results/]

One training step is `LimitSolver.step` (forward sweep of the B minibatch + P eval inputs,
outputs, backward sweep of the B inputs, parameter updates, history append), compiled ahead of
time through the solver's own jitted boundary (`_jit_step.lower(...).compile()`, the function
`solve_limit` calls; trace and XLA compile times are reported apart from the step time), then
called repeatedly with `jax.block_until_ready`; min and median over the repeats. The step is
timed at the last step k = K - 1 of a K-step run; the history buffers are preallocated to K*B
stored pairs, so the step's cost does not depend on k (checked: the sweep also times k = 0 with
the same executable). Every point starts from `init_state` (empty history, identity factors):
the work a step does does not depend on the history's values.

All the variants of one size (representations, drivers, BLAS threads, the finite network) are
timed in interleaved rounds, so each ratio compares calls made under the same machine load.

Parts:
  1. sweep N (particles) x M (depth steps) x K*B (stored pairs), field and weight space:
     time per step and throughput N (B + P) M / time (particles x new forward pairs x depth
     steps per second; the backward sweep's B pairs are not counted);
  2. the same configs with `solver.driver = "scan"`: diffrax / scan time ratio (target <= 1.25);
  3. field vs weight space on a grid of N x K*B at fixed M: ratio, crossover, the `auto` choice
     of `plan_limit` against the measured faster one, and the cost-model constants that would
     match the measurements;
  4. the solver vs the decoupled finite ResNet of width N and depth M (`sgd_step` on the
     minibatch + `evaluate` on the eval inputs, what `train_finite` runs per step);
  5. field space with the default OpenBLAS threads vs 1 thread (same executable): jaxlib's CPU
     LAPACK kernels (the field-space Cholesky, eigh and triangular solves) call scipy's
     OpenBLAS, whose threads contend with XLA's own on a small CPU. On a GPU this part is moot.

Writes `OUT/solver_benchmark.json` (every raw number, device, versions, each point's config),
`OUT/solver_benchmark.png` and `OUT/solver_benchmark.md` (the printed tables).
"""

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from _timing import (
    Variant,
    aot_compile,
    blas_info,
    environment,
    load_average,
    memory_of,
    openblas_libraries,
    time_group,
)

from nfd_sde import Config
from nfd_sde._data import teacher_stream
from nfd_sde._finite_training import evaluate, init_optimizer, make_network, sgd_step
from nfd_sde._limit_plan import FIELD_BIAS, RNG_COST, plan_limit
from nfd_sde._limit_solver import _jit_step, build_solver
from nfd_sde._resnet import layer_indices
from solvers import KeyedGaussianMatrices

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPRESENTATIONS = ("field", "weight")
DRIVER_TARGET = 1.25


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size the run visits. Sweep points at M = grid_depth_steps are grid points too."""

    batch: int = 4
    eval_size: int = 4
    dim: int = 8
    sweep_particles: tuple[int, ...] = (256, 1024)
    sweep_depth_steps: tuple[int, ...] = (4, 16)
    sweep_stored: tuple[int, ...] = (16, 1024)
    grid_particles: tuple[int, ...] = (256, 1024, 4096)
    grid_stored: tuple[int, ...] = (16, 128, 1024)
    grid_depth_steps: int = 4
    repeats: int = 7
    budget_s: float = 3.0


QUICK = Sizes(
    sweep_particles=(64,),
    sweep_depth_steps=(2,),
    sweep_stored=(8,),
    grid_particles=(64,),
    grid_stored=(8, 16),
    grid_depth_steps=2,
    repeats=3,
    budget_s=0.3,
)


def base_config(sizes: Sizes, *, stored: int) -> Config:
    if stored % sizes.batch:
        raise ValueError(f"stored pairs {stored} must be a multiple of the batch {sizes.batch}")
    return Config().replace(
        model={"dim": sizes.dim},
        training={"steps": stored // sizes.batch, "batch": sizes.batch},
        data={"eval_size": sizes.eval_size},
    )


def _inputs(stream, k: int):
    f32 = jnp.float32
    return (
        jnp.asarray(stream.x_train[k], f32),
        jnp.asarray(stream.y_train[k], f32),
        jnp.asarray(stream.x_eval, f32),
    )


def _plan(config: Config, stream):
    return plan_limit(
        config,
        dim=stream.dim,
        steps=stream.steps,
        batch=stream.batch,
        eval_size=stream.x_eval.shape[0],
    )


def _lapack_calls(compiled) -> int:
    """LAPACK custom calls in the optimised HLO (those run on OpenBLAS on a CPU)."""
    try:
        return compiled.compiled.as_text().count('custom_call_target="lapack_')
    except Exception:  # backends that do not expose the text
        return -1


def compile_solver(sizes, particles, depth_steps, stored, representation, driver):
    """The compiled step of one solver config, its arguments and what describes it."""
    config = base_config(sizes, stored=stored).replace(
        solver={
            "particles": particles,
            "depth_steps": depth_steps,
            "representation": representation,
            "driver": driver,
            "memory_limit_gb": 1e6,
        }
    )
    stream = teacher_stream(config)
    plan = _plan(config, stream)
    auto = _plan(config.replace(solver={"representation": "auto"}), stream)
    key_solver, key_state = jax.random.split(jax.random.key(0))
    solver = build_solver(config, stream, key=key_solver, plan=plan)
    last = stream.steps - 1
    args = ((solver, jnp.int32(last), *_inputs(stream, last)), solver.init_state(key=key_state))
    args_k0 = ((solver, jnp.int32(0), *_inputs(stream, 0)), solver.init_state(key=key_state))
    compiled, compile_times = aot_compile(_jit_step, *args)
    info = {
        "particles": particles,
        "depth_steps": depth_steps,
        "stored_pairs": stored,
        "steps": stream.steps,
        "batch": sizes.batch,
        "eval_size": sizes.eval_size,
        "dim": sizes.dim,
        "representation": representation,
        "driver": driver,
        "timed_step_k": last,
        **compile_times,
        "lapack_calls": _lapack_calls(compiled),
        "memory": {**memory_of(compiled), "plan_bytes_needed": plan.bytes_needed},
        "plan": {
            "cost_field": plan.cost_field,
            "cost_weight": plan.cost_weight,
            "auto_representation": auto.representation,
        },
    }
    return info, _stepper(compiled, args), _stepper(compiled, args_k0)


def _stepper(compiled, args):
    """Repeated calls of the compiled step as `solve_limit` makes them: the state is donated,
    so each call gets the previous call's state."""
    inputs, state = args
    current = [state]

    def call():
        current[0], out = compiled(inputs, current[0])
        return out

    return call


def measure_rng_cost(sizes, particles):
    """The weight space's Gaussian-matrix cost on this device, in multiply-adds: time of one
    N x N draw of the solver's own matrix source, per number, over the time of the N x N by
    N x (2B + P) matmul that uses it, per multiply-add (the unit of `_limit_plan`'s model)."""
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


def compile_finite(sizes, width, depth):
    config = base_config(sizes, stored=sizes.batch).replace(
        network={"width": width, "depth": depth, "backward": "decoupled"}
    )
    stream = teacher_stream(config)
    model = make_network(config, key=jax.random.key(0))
    optimizer, opt_state = init_optimizer(config, model)
    x_batch, y_batch, x_eval = _inputs(stream, 0)
    y_eval = jnp.asarray(stream.y_eval, jnp.float32)
    static = {
        "loss": config.training.loss,
        "layers": layer_indices(config.run.kernel_depths, depth),
    }
    step_args = (model, opt_state, x_batch, y_batch)
    step_c, step_compile = aot_compile(sgd_step, *step_args, optimizer=optimizer, **static)
    eval_c, eval_compile = aot_compile(evaluate, model, x_eval, y_eval, **static)
    info = {
        "width": width,
        "depth": depth,
        "batch": sizes.batch,
        "eval_size": sizes.eval_size,
        "backward": "decoupled",
        "sgd_step": {**step_compile, "memory": memory_of(step_c)},
        "evaluate": {**eval_compile, "memory": memory_of(eval_c)},
        "compile_s": step_compile["compile_s"] + eval_compile["compile_s"],
    }
    calls = (
        lambda: step_c(*step_args, optimizer=optimizer, **static),
        lambda: eval_c(model, x_eval, y_eval, **static),
    )
    return info, calls


def measure_size(sizes, particles, depth_steps, stored, *, drivers, finite, fill_check, blas1):
    """Every variant of one (N, M, K*B), compiled, then timed in interleaved rounds."""
    variants, infos = [], {}
    for rep in REPRESENTATIONS:
        for driver in drivers:
            info, call, call_k0 = compile_solver(sizes, particles, depth_steps, stored, rep, driver)
            name = f"{rep}/{driver}"
            infos[name] = info
            variants.append(Variant(name, call))
            use_blas1 = blas1 and info["lapack_calls"] > 0
            if use_blas1:
                variants.append(Variant(f"{name}/blas1", call, blas=1))
            if fill_check and driver == "diffrax":
                # compared with the k = K-1 call under the same BLAS threads (the less noisy)
                variants.append(Variant(f"{name}/k0", call_k0, blas=1 if use_blas1 else None))
            print(
                f"  compiled N={particles:5d} M={depth_steps:3d} K*B={stored:5d} {rep:6s} "
                f"{driver:7s} in {info['compile_s']:5.1f} s "
                f"(trace {info['trace_s']:.1f} s, XLA {info['xla_compile_s']:.1f} s)",
                flush=True,
            )
    finite_info = None
    if finite:
        finite_info, (step_call, eval_call) = compile_finite(sizes, particles, depth_steps)
        variants += [Variant("finite/sgd_step", step_call), Variant("finite/evaluate", eval_call)]
    timings = time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)
    load = load_average()
    points = []
    for name, info in infos.items():
        timing = timings[name]
        point = {**info, **timing, "blas_threads": "default", "load_average": load}
        point["throughput_pair_steps_per_s"] = (
            particles * (sizes.batch + sizes.eval_size) * depth_steps / timing["min_s"]
        )
        if f"{name}/blas1" in timings:
            point["blas1"] = timings[f"{name}/blas1"]
        if f"{name}/k0" in timings:
            same = point["blas1"] if "blas1" in point else timing
            point["k0"] = {
                **timings[f"{name}/k0"],
                "blas_threads": "1" if "blas1" in point else "default",
                "over_last": timings[f"{name}/k0"]["min_s"] / same["min_s"],
            }
        points.append(point)
        extra = (
            f", 1 BLAS thread {point['blas1']['min_s'] * 1e3:9.2f} ms" if "blas1" in point else ""
        )
        print(
            f"  N={particles:5d} M={depth_steps:3d} K*B={stored:5d} {name:14s}: min "
            f"{timing['min_s'] * 1e3:9.2f} ms, median {timing['median_s'] * 1e3:9.2f} ms "
            f"({len(timing['times_s'])} reps){extra}",
            flush=True,
        )
    if finite_info is not None:
        step_t, eval_t = timings["finite/sgd_step"], timings["finite/evaluate"]
        finite_info["sgd_step"].update(step_t)
        finite_info["evaluate"].update(eval_t)
        finite_info["min_s"] = step_t["min_s"] + eval_t["min_s"]
        finite_info["median_s"] = step_t["median_s"] + eval_t["median_s"]
        finite_info["timed_with_stored_pairs"] = stored
        print(
            f"  finite width={particles:5d} depth={depth_steps:3d}: sgd_step "
            f"{step_t['min_s'] * 1e3:8.2f} ms + evaluate {eval_t['min_s'] * 1e3:8.2f} ms",
            flush=True,
        )
    return points, finite_info


# ---------------------------------------------------------------------------------------------
# Analysis


def model_costs(point: dict[str, Any], field_bias: float, rng_cost: float) -> tuple[float, float]:
    """The cost model of `_limit_plan` (its docstring's formula) with chosen constants."""
    m, n_part, s = point["depth_steps"], point["particles"], point["stored_pairs"]
    new, b = point["batch"] + point["eval_size"], point["batch"]
    shared = 2.0 * m * n_part * s * (new + b)
    field = field_bias * (2 * shared + m * s**2 * (new + b))
    weight = shared + m * n_part**2 * (new + b) + 2 * m * n_part**2 * rng_cost
    return field, weight


def crossover(stored: list[int], ratios: list[float]) -> dict[str, Any]:
    """The K*B where field/weight first reaches 1 (log-log interpolation between grid points)."""
    logs = np.log(np.asarray(ratios))
    if logs[0] >= 0:
        return {"stored_pairs": None, "text": f"<= {stored[0]} (weight faster everywhere)"}
    for i in range(len(stored) - 1):
        if logs[i] < 0 <= logs[i + 1]:
            a, b = math.log(stored[i]), math.log(stored[i + 1])
            value = float(math.exp(a - logs[i] * (b - a) / (logs[i + 1] - logs[i])))
            return {"stored_pairs": value, "text": f"~{value:.0f}"}
    return {"stored_pairs": None, "text": f"> {stored[-1]} (field faster everywhere)"}


def fit_constants(grid: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """(FIELD_BIAS, RNG_COST) minimising the squared log error of the model's field/weight cost
    ratio against the measured time ratio `key` over the grid (log-spaced search), with the
    fraction of grid points where `auto` would then pick the measured faster one."""
    measured = np.log([g[key] for g in grid])

    def score(bias, rng):
        predicted = np.log([np.divide(*model_costs(g, bias, rng)) for g in grid])
        return float(np.mean((predicted - measured) ** 2)), float(
            np.mean((predicted <= 0) == (measured < 0))
        )

    biases, rngs = np.logspace(-2, 3, 101), np.logspace(0, 4, 41)
    err, bias, rng = min((score(b, r)[0], b, r) for r in rngs for b in biases)
    # a best fit at the edge of the searched range is poorly determined by the grid
    at_edge = bool(bias in (biases[0], biases[-1]) or rng in (rngs[0], rngs[-1]))
    err_bias, bias_only = min((score(b, RNG_COST)[0], b) for b in biases)
    current = score(FIELD_BIAS, RNG_COST)
    return {
        "current": {
            "FIELD_BIAS": FIELD_BIAS,
            "RNG_COST": RNG_COST,
            "rms_log_error": math.sqrt(current[0]),
            "agreement": current[1],
        },
        "fitted": {
            "FIELD_BIAS": float(bias),
            "RNG_COST": float(rng),
            "rms_log_error": math.sqrt(err),
            "agreement": score(bias, rng)[1],
            "at_search_edge": at_edge,
        },
        "fitted_bias_only": {
            "FIELD_BIAS": float(bias_only),
            "RNG_COST": RNG_COST,
            "rms_log_error": math.sqrt(err_bias),
            "agreement": score(bias_only, RNG_COST)[1],
        },
    }


def run(sizes: Sizes) -> dict[str, Any]:
    env = environment()
    print(
        f"device {env['device']['platform']} ({env['device']['kind']}), CPU "
        f"{env['host']['cpu_model']} x {env['host']['cpu_cores']} cores, jax "
        f"{env['versions']['jax']}, load average {env['load_average_start']}",
        flush=True,
    )
    start = time.perf_counter()
    m_grid = sizes.grid_depth_steps
    # every (N, M, K*B) with what it needs; sweep sizes at M = m_grid are grid sizes too
    plan: dict[tuple[int, int, int], dict[str, Any]] = {}
    for n in sizes.grid_particles:
        for s in sizes.grid_stored:
            plan[n, m_grid, s] = {"drivers": ["diffrax"], "finite": False, "fill_check": False}
    for n in sizes.sweep_particles:
        for m in sizes.sweep_depth_steps:
            for i, s in enumerate(sizes.sweep_stored):
                plan[n, m, s] = {
                    "drivers": ["diffrax", "scan"],
                    "finite": i == 0,
                    "fill_check": True,
                }
    # jaxlib's CPU LAPACK kernels load scipy's OpenBLAS on first use; load it now to see it
    jax.block_until_ready(jnp.linalg.cholesky(jnp.eye(2)))
    blas1 = jax.devices()[0].platform == "cpu" and bool(openblas_libraries())
    env["openblas_start"] = blas_info()
    points, finite_points = [], []
    for (n, m, s), needs in plan.items():
        print(f"size N={n} M={m} K*B={s}", flush=True)
        new_points, finite_info = measure_size(sizes, n, m, s, blas1=blas1, **needs)
        points += new_points
        if finite_info is not None:
            finite_points.append(finite_info)
    print("Gaussian matrix draw vs matmul (weight space)", flush=True)
    rng = measure_rng_cost(sizes, max(sizes.grid_particles))
    total = time.perf_counter() - start
    env["load_average_end"] = load_average()
    env["openblas"] = blas_info()
    lookup = {
        (p["particles"], p["depth_steps"], p["stored_pairs"], p["representation"], p["driver"]): p
        for p in points
    }

    grid = []
    for n in sizes.grid_particles:
        for s in sizes.grid_stored:
            field = lookup[n, m_grid, s, "field", "diffrax"]
            weight = lookup[n, m_grid, s, "weight", "diffrax"]
            row = {
                "particles": n,
                "depth_steps": m_grid,
                "stored_pairs": s,
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
            grid.append(row)
    analysis = {}
    for key in ("ratio", "ratio_blas1"):
        if not all(key in g for g in grid):
            continue
        analysis[key] = {
            "agreement": float(np.mean([(g[key] < 1) == (g["auto"] == "field") for g in grid])),
            "crossover": {
                str(n): crossover(
                    list(sizes.grid_stored), [g[key] for g in grid if g["particles"] == n]
                )
                for n in sizes.grid_particles
            },
            "constants": fit_constants(grid, key),
        }

    sweep = []
    for n in sizes.sweep_particles:
        for m in sizes.sweep_depth_steps:
            for s in sizes.sweep_stored:
                for rep in REPRESENTATIONS:
                    d, c = lookup[n, m, s, rep, "diffrax"], lookup[n, m, s, rep, "scan"]
                    row = {
                        "particles": n,
                        "depth_steps": m,
                        "stored_pairs": s,
                        "representation": rep,
                        "diffrax_min_s": d["min_s"],
                        "diffrax_median_s": d["median_s"],
                        "scan_min_s": c["min_s"],
                        "scan_median_s": c["median_s"],
                        "diffrax_over_scan": d["min_s"] / c["min_s"],
                        "compile_diffrax_s": d["compile_s"],
                        "compile_scan_s": c["compile_s"],
                        "throughput": d["throughput_pair_steps_per_s"],
                        "k0_over_last": d["k0"]["over_last"],
                    }
                    if "blas1" in d and "blas1" in c:
                        row["diffrax_blas1_min_s"] = d["blas1"]["min_s"]
                        row["scan_blas1_min_s"] = c["blas1"]["min_s"]
                        row["diffrax_over_scan_blas1"] = d["blas1"]["min_s"] / c["blas1"]["min_s"]
                    sweep.append(row)

    finite = []
    for net in finite_points:
        n, m = net["width"], net["depth"]
        for s in sizes.sweep_stored:
            row = {
                "particles": n,
                "depth_steps": m,
                "stored_pairs": s,
                "finite_min_s": net["min_s"],
                "finite_sgd_step_min_s": net["sgd_step"]["min_s"],
                "finite_evaluate_min_s": net["evaluate"]["min_s"],
            }
            for rep in REPRESENTATIONS:
                point = lookup[n, m, s, rep, "diffrax"]
                row[f"{rep}_min_s"] = point["min_s"]
                row[f"{rep}_over_finite"] = point["min_s"] / net["min_s"]
                if "blas1" in point:
                    row[f"{rep}_blas1_over_finite"] = point["blas1"]["min_s"] / net["min_s"]
            row["auto"] = lookup[n, m, s, "field", "diffrax"]["plan"]["auto_representation"]
            finite.append(row)

    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "total_wall_s": total,
        "throughput_counts": "particles x (batch + eval) new forward pairs x depth steps per s",
        "grid": grid,
        "grid_analysis": analysis,
        "rng_cost": rng,
        "sweep": sweep,
        "finite": finite,
        "solver_points": points,
        "finite_points": finite_points,
    }


# ---------------------------------------------------------------------------------------------
# Report


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g}" if seconds < 1e-2 else f"{seconds * 1e3:.0f}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: dict[str, Any]) -> str:
    env, sizes = results["environment"], results["sizes"]
    out = [
        f"device: {env['device']['platform']} ({env['device']['kind']}); CPU "
        f"{env['host']['cpu_model']}, {env['host']['cpu_cores']} cores; load average "
        f"{env['load_average_start']} -> {env['load_average_end']}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"sizes: batch B={sizes['batch']}, eval P={sizes['eval_size']}, dim={sizes['dim']}, "
        f"float32, decoupled backward, ReLU; total wall {results['total_wall_s']:.0f} s",
        "",
        "### 1. Per-step time (diffrax driver), compile time, memory",
        "",
    ]
    rows = []
    for p in results["solver_points"]:
        if p["driver"] != "diffrax":
            continue
        mem = p["memory"]
        xla = mem.get("xla_total_bytes")
        rows.append(
            [
                p["particles"],
                p["depth_steps"],
                p["stored_pairs"],
                p["representation"],
                _ms(p["min_s"]),
                _ms(p["median_s"]),
                _ms(p["blas1"]["min_s"]) if "blas1" in p else "-",
                f"{p['compile_s']:.1f}",
                f"{p['throughput_pair_steps_per_s']:.3g}",
                "-" if xla is None else f"{xla / 1e6:.3g}",
                f"{mem['plan_bytes_needed'] / 1e6:.3g}",
            ]
        )
    out.append(
        table(
            [
                "N",
                "M",
                "K*B",
                "repr.",
                "min ms",
                "median ms",
                "min ms, 1 BLAS thread",
                "compile s",
                "pair-steps/s",
                "XLA MB",
                "plan MB",
            ],
            rows,
        )
    )
    fill = [r["k0_over_last"] for r in results["sweep"]]
    out.append(
        f"\nstep at k=0 / step at k=K-1 (same executable): median {np.median(fill):.2f}, "
        f"range {min(fill):.2f}..{max(fill):.2f}"
    )
    out += ["", "### 2. diffrax / scan driver (min times)", ""]
    has_blas1 = any("diffrax_over_scan_blas1" in r for r in results["sweep"])
    out.append(
        table(
            ["N", "M", "K*B", "repr.", "diffrax ms", "scan ms", "diffrax/scan"]
            + (["diffrax/scan, 1 BLAS thread"] if has_blas1 else [])
            + ["compile diffrax / scan s"],
            [
                [
                    r["particles"],
                    r["depth_steps"],
                    r["stored_pairs"],
                    r["representation"],
                    _ms(r["diffrax_min_s"]),
                    _ms(r["scan_min_s"]),
                    f"{r['diffrax_over_scan']:.2f}"
                    + (" (miss)" if r["diffrax_over_scan"] > DRIVER_TARGET else ""),
                ]
                + (
                    [
                        f"{r['diffrax_over_scan_blas1']:.2f}"
                        + (" (miss)" if r["diffrax_over_scan_blas1"] > DRIVER_TARGET else "")
                        if "diffrax_over_scan_blas1" in r
                        else "-"
                    ]
                    if has_blas1
                    else []
                )
                + [f"{r['compile_diffrax_s']:.1f} / {r['compile_scan_s']:.1f}"]
                for r in results["sweep"]
            ],
        )
    )
    ratios = np.array([r["diffrax_over_scan"] for r in results["sweep"]])
    out.append(
        f"\ndiffrax/scan (default threads): median {np.median(ratios):.2f}, max "
        f"{ratios.max():.2f}; {int(np.sum(ratios <= DRIVER_TARGET))}/{len(ratios)} within "
        f"{DRIVER_TARGET}x"
    )
    grid = results["grid"]
    n_values = sorted({g["particles"] for g in grid})
    s_values = sorted({g["stored_pairs"] for g in grid})
    lookup = {(g["particles"], g["stored_pairs"]): g for g in grid}
    titles = {"ratio": "default BLAS threads", "ratio_blas1": "field space with 1 BLAS thread"}
    for key, analysis in results["grid_analysis"].items():
        out += [
            "",
            f"### 3. field / weight time ratio at M={grid[0]['depth_steps']}, {titles[key]} "
            "(< 1: field faster; [auto's choice])",
            "",
        ]
        out.append(
            table(
                ["N \\ K*B", *map(str, s_values), "crossover K*B"],
                [
                    [
                        n,
                        *(f"{lookup[n, s][key]:.2g} [{lookup[n, s]['auto'][0]}]" for s in s_values),
                        analysis["crossover"][str(n)]["text"],
                    ]
                    for n in n_values
                ],
            )
        )
        c = analysis["constants"]
        out.append(
            f"\nauto picks the faster representation at {analysis['agreement']:.0%} of the "
            f"{len(grid)} grid points (FIELD_BIAS={FIELD_BIAS}, RNG_COST={RNG_COST}; rms log "
            f"error of the modelled ratio {c['current']['rms_log_error']:.2f}). Best fit: "
            f"FIELD_BIAS={c['fitted']['FIELD_BIAS']:.3g}, RNG_COST={c['fitted']['RNG_COST']:.3g} "
            + (
                "(at the edge of the searched range: poorly determined; FIELD_BIAS/RNG_COST "
                f"= {c['fitted']['FIELD_BIAS'] / c['fitted']['RNG_COST']:.3g}) "
                if c["fitted"]["at_search_edge"]
                else ""
            )
            + f"(rms log error {c['fitted']['rms_log_error']:.2f}, agreement "
            f"{c['fitted']['agreement']:.0%}); FIELD_BIAS alone: "
            f"{c['fitted_bias_only']['FIELD_BIAS']:.3g} (rms log error "
            f"{c['fitted_bias_only']['rms_log_error']:.2f}, agreement "
            f"{c['fitted_bias_only']['agreement']:.0%})"
        )
    rng = results["rng_cost"]
    out.append(
        f"\nweight-space matrices at N={rng['particles']}: one N x N normal draw "
        f"{_ms(rng['draw']['min_s'])} ms vs the N x N @ N x {rng['matmul_columns']} matmul "
        f"{_ms(rng['matmul']['min_s'])} ms, i.e. RNG_COST ~ {rng['rng_cost_estimate']:.3g} "
        "multiply-adds per number on this device (the model uses "
        f"{RNG_COST})"
    )
    out += [
        "",
        "### 4. solver / finite decoupled ResNet of width N, depth M (sgd_step + evaluate)",
        "",
    ]
    out.append(
        table(
            [
                "N",
                "M",
                "K*B",
                "finite ms",
                "field ms",
                "weight ms",
                "field/finite",
                "field (1 BLAS thr.)/finite",
                "weight/finite",
                "auto",
            ],
            [
                [
                    r["particles"],
                    r["depth_steps"],
                    r["stored_pairs"],
                    _ms(r["finite_min_s"]),
                    _ms(r["field_min_s"]),
                    _ms(r["weight_min_s"]),
                    f"{r['field_over_finite']:.2g}",
                    f"{r['field_blas1_over_finite']:.2g}"
                    if "field_blas1_over_finite" in r
                    else "-",
                    f"{r['weight_over_finite']:.2g}",
                    r["auto"],
                ]
                for r in results["finite"]
            ],
        )
    )
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    grid = results["grid"]
    n_values = sorted({g["particles"] for g in grid})
    s_values = sorted({g["stored_pairs"] for g in grid})
    lookup = {(g["particles"], g["stored_pairs"]): g for g in grid}
    keys = list(results["grid_analysis"])
    fig, axes = plt.subplots(2, 2, figsize=(14, 11))
    ax_time, ax_driver, *ax_ratios = axes.flat
    for ax in ax_ratios[len(keys) :]:
        ax.set_axis_off()
    ax = ax_time
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(s_values)))
    series = [("field_min_s", "-o", "field"), ("weight_min_s", "--s", "weight")]
    if "ratio_blas1" in keys:
        series.append(("field_blas1_min_s", ":^", "field, 1 BLAS thread"))
    for s, colour in zip(s_values, colours):
        for key, style, label in series:
            ax.plot(
                n_values,
                [lookup[n, s][key] * 1e3 for n in n_values],
                style,
                color=colour,
                label=f"{label}, K*B={s}",
            )
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="particles N",
        ylabel="time per training step (ms, min)",
        title=f"limit solver step, M={grid[0]['depth_steps']} (diffrax)",
    )
    ax.legend(fontsize=6, ncol=2)
    titles = {"ratio": "field / weight", "ratio_blas1": "field (1 BLAS thread) / weight"}
    for ax, key in zip(ax_ratios, keys):
        ratio = np.array([[math.log2(lookup[n, s][key]) for s in s_values] for n in n_values])
        bound = max(1.0, float(np.abs(ratio).max()))
        image = ax.imshow(ratio, cmap="coolwarm", vmin=-bound, vmax=bound, origin="lower")
        for i, n in enumerate(n_values):
            for j, s in enumerate(s_values):
                g = lookup[n, s]
                agrees = (g[key] < 1) == (g["auto"] == "field")
                ax.text(
                    j,
                    i,
                    f"{g[key]:.2g}\nauto: {g['auto']}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="k" if agrees else "m",
                )
        ax.set_xticks(range(len(s_values)), [str(s) for s in s_values])
        ax.set_yticks(range(len(n_values)), [str(n) for n in n_values])
        ax.set(
            xlabel="stored pairs K*B",
            ylabel="particles N",
            title=f"{titles[key]}\nauto picks the faster at "
            f"{results['grid_analysis'][key]['agreement']:.0%} (magenta: it does not)",
        )
        fig.colorbar(image, ax=ax, label="log2 time ratio")
    ax = ax_driver
    sweep = results["sweep"]
    labels = [
        f"{r['representation'][0]} N{r['particles']} M{r['depth_steps']} S{r['stored_pairs']}"
        for r in sweep
    ]
    x = np.arange(len(sweep))
    ax.bar(x - 0.2, [r["diffrax_over_scan"] for r in sweep], 0.4, label="default threads")
    if all("diffrax_over_scan_blas1" in r for r in sweep if r["representation"] == "field"):
        ax.bar(
            x + 0.2,
            [r.get("diffrax_over_scan_blas1", np.nan) for r in sweep],
            0.4,
            label="1 BLAS thread (field)",
        )
    ax.axhline(DRIVER_TARGET, color="r", ls="--", label=f"target {DRIVER_TARGET}")
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
        f"{env['device']['platform']} ({env['host']['cpu_model']}, {env['host']['cpu_cores']} "
        f"cores), jax {env['versions']['jax']}, load average {env['load_average_start']}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument(
        "--out", default="benchmarks/results/", help="output folder (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    results = run(sizes)
    results["quick"] = args.quick
    text = report(results)
    print("\n" + text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "solver_benchmark.json").open("w") as fh:
        json.dump(results, fh, indent=1)
    (out / "solver_benchmark.md").write_text(text + "\n")
    plot(results, out / "solver_benchmark.png")
    print(f"\nwrote {out / 'solver_benchmark.json'}, solver_benchmark.md and solver_benchmark.png")


if __name__ == "__main__":
    main()
