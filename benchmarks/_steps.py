"""The compiled training steps the benchmark scripts time: the limit solver's and the finite
ResNet's, built from the public API only.

* `compile_solver`: one limit-solver config's step, compiled ahead of time through the jitted
  boundary `solve_limit` calls (`nfd_sde.limit.jit_step`), with its memory and plan.
* `compile_size`: every (representation, driver) variant of one size (N, M, K*B), as
  `Variant`s ready for `time_group`, with 1-BLAS-thread and k = 0 variants where asked.
* `size_points`: the timings of one size turned into one record per solver config.
* `compile_finite`: the decoupled finite ResNet of width N and depth M, `sgd_step` on the
  minibatch + `evaluate` on the eval inputs (what `train_finite` runs per step).

Every point starts from `init_state` (empty history, identity factors): the work a step does
does not depend on the history's values. The step is timed at k = K - 1; the history buffers are
preallocated to K*B pairs, so its cost does not depend on k (the k = 0 variant checks this).
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from _timing import Variant, aot_compile, load_average, memory_of, openblas_libraries

from nfd_sde.finite import evaluate, init_optimizer, make_network, sgd_step
from nfd_sde.limit import build_solver, jit_step, plan_for
from nfd_sde.model import Config, load_stream, loss_of
from solvers import DepthGrid

REPRESENTATIONS = ("field", "weight")


@dataclasses.dataclass(frozen=True)
class Shape:
    """What every point shares: minibatch B, eval inputs P, input dimension d."""

    batch: int = 4
    eval_size: int = 4
    dim: int = 8


def base_config(shape: Shape, *, stored: int) -> Config:
    """The default config at these sizes, with K = stored / B steps."""
    if stored % shape.batch:
        raise ValueError(f"stored pairs {stored} must be a multiple of the batch {shape.batch}")
    return Config().replace(
        model={"dim": shape.dim},
        training={"steps": stored // shape.batch, "batch": shape.batch},
        data={"eval_size": shape.eval_size},
    )


def blas1_available() -> bool:
    """Whether OpenBLAS threads can be set here: a CPU with an OpenBLAS loaded (jaxlib's CPU
    LAPACK kernels load scipy's on first use, so one Cholesky runs first)."""
    jax.block_until_ready(jnp.linalg.cholesky(jnp.eye(2)))
    return jax.devices()[0].platform == "cpu" and bool(openblas_libraries())


def _inputs(stream, k: int):
    f32 = jnp.float32
    return (
        jnp.asarray(stream.x_train[k], f32),
        jnp.asarray(stream.y_train[k], f32),
        jnp.asarray(stream.x_eval, f32),
    )


def lapack_calls(compiled) -> int:
    """LAPACK custom calls in the optimised HLO (those run on OpenBLAS on a CPU)."""
    try:
        return compiled.compiled.as_text().count('custom_call_target="lapack_')
    except Exception:  # backends that do not expose the text
        return -1


def _stepper(compiled, args):
    """Repeated calls of the compiled step as `solve_limit` makes them: the state is donated,
    so each call gets the previous call's state."""
    inputs, state = args
    current = [state]

    def call():
        current[0], out = compiled(inputs, current[0])
        return out

    return call


def solver_state(build, config, stream, key, plan):
    """A fresh initial state of the solver `build` makes for `config` (one group)."""
    return build(config, stream, key=jax.random.key(0), plan=plan).init_state(key=key)


def compile_solver(
    shape: Shape, particles, depth_steps, stored, representation, driver, backward="decoupled"
):
    """The compiled step of one solver config: (info, call at k = K-1, call at k = 0)."""
    config = base_config(shape, stored=stored).replace(
        solver={
            "particles": particles,
            "depth_steps": depth_steps,
            "representation": representation,
            "driver": driver,
            "backward": backward,
            "levels": 1,
            "memory_limit_gb": 1e6,
        }
    )
    stream = load_stream(config)
    plan = plan_for(config, stream)
    auto = plan_for(config.replace(solver={"representation": "auto"}), stream)
    key_solver, key_state = jax.random.split(jax.random.key(0))
    solver = build_solver(config, stream, key=key_solver, plan=plan)
    last = stream.steps - 1

    def one_group(tree):  # `jit_step` steps stacked groups: one here
        return jax.tree.map(lambda a: a[None], tree)

    solver = one_group(solver)
    state = lambda: one_group(solver_state(build_solver, config, stream, key_state, plan))  # noqa: E731
    args = ((solver, jnp.int32(last), *_inputs(stream, last)), state())
    args_k0 = ((solver, jnp.int32(0), *_inputs(stream, 0)), state())
    compiled, compile_times = aot_compile(jit_step, *args)
    info = {
        "particles": particles,
        "depth_steps": depth_steps,
        "stored_pairs": stored,
        "steps": stream.steps,
        "batch": shape.batch,
        "eval_size": shape.eval_size,
        "dim": shape.dim,
        "representation": solver.representation.name,
        "backward": backward,
        "driver": driver,
        "timed_step_k": last,
        **compile_times,
        "lapack_calls": lapack_calls(compiled),
        "memory": {**memory_of(compiled), "plan_bytes_needed": plan.bytes_needed},
        "plan": {
            "cost_field": auto.costs["field"],
            "cost_weight": auto.costs["weight"],
            "auto_representation": auto.representation,
        },
    }
    return info, _stepper(compiled, args), _stepper(compiled, args_k0)


def compile_size(shape, n, m, s, *, representations, drivers, blas1=False, fill_check=False):
    """Every solver variant of one size, compiled: ({name: info}, [Variant]). Names are
    `rep/driver`, plus `rep/driver/blas1` (same executable, OpenBLAS at 1 thread; only where
    the step makes LAPACK calls) and `rep/driver/k0` (same executable at k = 0)."""
    infos, variants = {}, []
    for rep in representations:
        for driver in drivers:
            info, call, call_k0 = compile_solver(shape, n, m, s, rep, driver)
            name = f"{rep}/{driver}"
            infos[name] = info
            variants.append(Variant(name, call))
            use_blas1 = blas1 and info["lapack_calls"] > 0
            if use_blas1:
                variants.append(Variant(f"{name}/blas1", call, blas=1))
            if fill_check:
                # compared with the k = K-1 call under the same BLAS threads (the less noisy)
                variants.append(Variant(f"{name}/k0", call_k0, blas=1 if use_blas1 else None))
            print(
                f"  compiled N={n:5d} M={m:3d} K*B={s:5d} {rep:6s} {driver:7s} in "
                f"{info['compile_s']:5.1f} s (trace {info['trace_s']:.1f} s, XLA "
                f"{info['xla_compile_s']:.1f} s)",
                flush=True,
            )
    return infos, variants


def size_points(infos, timings, shape: Shape) -> list[dict[str, Any]]:
    """One record per solver config of a timed size: its info, its times (default BLAS
    threads), throughput, and the `blas1` and `k0` times where they were taken."""
    load = load_average()
    points = []
    for name, info in infos.items():
        timing = timings[name]
        point = {**info, **timing, "blas_threads": "default", "load_average": load}
        point["throughput_pair_steps_per_s"] = (
            info["particles"]
            * (shape.batch + shape.eval_size)
            * info["depth_steps"]
            / timing["min_s"]
        )
        if f"{name}/blas1" in timings:
            point["blas1"] = timings[f"{name}/blas1"]
        if f"{name}/k0" in timings:
            same = point.get("blas1", timing)
            point["k0"] = {
                **timings[f"{name}/k0"],
                "blas_threads": "1" if "blas1" in point else "default",
                "over_last": timings[f"{name}/k0"]["min_s"] / same["min_s"],
            }
        points.append(point)
        extra = f", 1 BLAS thread {ms_text(point['blas1']['min_s'])}" if "blas1" in point else ""
        print(
            f"  N={info['particles']:5d} M={info['depth_steps']:3d} K*B={info['stored_pairs']:5d}"
            f" {name:14s}: min {ms_text(timing['min_s'])}, median "
            f"{ms_text(timing['median_s'])} ({len(timing['times_s'])} reps){extra}",
            flush=True,
        )
    return points


def ms_text(seconds: float) -> str:
    return f"{seconds * 1e3:9.2f} ms"


def compile_finite(shape: Shape, width: int, depth: int):
    """The decoupled finite ResNet's step and eval, compiled: (info, [Variant, Variant])."""
    config = base_config(shape, stored=shape.batch).replace(
        network={"width": width, "depth": depth, "backward": "decoupled"}
    )
    stream = load_stream(config)
    model = make_network(config, key=jax.random.key(0))
    optimizer, opt_state = init_optimizer(config, model)
    x_batch, y_batch, x_eval = _inputs(stream, 0)
    y_eval = jnp.asarray(stream.y_eval, jnp.float32)
    static = {
        "loss": loss_of(config),
        "layers": DepthGrid(depth).point_indices(config.run.kernel_depths),
    }
    step_args = (model, opt_state, x_batch, y_batch)
    step_c, step_compile = aot_compile(sgd_step, *step_args, optimizer=optimizer, **static)
    eval_c, eval_compile = aot_compile(evaluate, model, x_eval, y_eval, **static)
    info = {
        "width": width,
        "depth": depth,
        "batch": shape.batch,
        "eval_size": shape.eval_size,
        "backward": "decoupled",
        "sgd_step": {**step_compile, "memory": memory_of(step_c)},
        "evaluate": {**eval_compile, "memory": memory_of(eval_c)},
        "compile_s": step_compile["compile_s"] + eval_compile["compile_s"],
    }
    variants = [
        Variant("finite/sgd_step", lambda: step_c(*step_args, optimizer=optimizer, **static)),
        Variant("finite/evaluate", lambda: eval_c(model, x_eval, y_eval, **static)),
    ]
    return info, variants


def finite_point(info, timings) -> dict[str, Any]:
    """The finite network's record (a new one; `info` is left as it is): time per step =
    `sgd_step` + `evaluate`."""
    step_t, eval_t = timings["finite/sgd_step"], timings["finite/evaluate"]
    point = {
        **info,
        "sgd_step": {**info["sgd_step"], **step_t},
        "evaluate": {**info["evaluate"], **eval_t},
        "min_s": step_t["min_s"] + eval_t["min_s"],
        "median_s": step_t["median_s"] + eval_t["median_s"],
    }
    print(
        f"  finite width={info['width']:5d} depth={info['depth']:3d}: sgd_step "
        f"{ms_text(step_t['min_s'])} + evaluate {ms_text(eval_t['min_s'])}",
        flush=True,
    )
    return point
