"""Particles across devices and memory: throughput against N, against the device count, and
streamed (history in host memory, particle blocks) against resident, with the bytes a step
moves against the device's measured memory bandwidth (roofline fraction).

    .venv/bin/python benchmarks/particles.py [--quick] [--out DIR] [--log2n 10,11,...,15]
        [--devices-log2n 14] [--streamed-log2n 13]

One limit step of one particle system (field space, the decoupled ReLU default config,
B = 4, P = 4, K*B = 128 stored training pairs plus the P eval anchors, M = 16, float32), built
and compiled through the public API (`plan_limit`, `build_groups`, `jit_step`), timed in
interleaved rounds (`_timing.time_group`), its memory from XLA's memory analysis.

* Throughput = N x (K*B) x M / time per step: particle-pair-depth-steps per second.
* Bytes per step (a lower bound): the step reads each depth step's slice of the per-particle
  history where its algorithm needs it, 10 x M x N x S x 4 bytes (forward sweep: features twice,
  gradient paths, stored white noise; backward sweep: the same four; the factor append:
  features and gradient paths), S = K*B + P stored pairs. Roofline fraction = (bytes / time) /
  the bandwidth of a jitted copy of a 256 MB array measured here.
* Devices: the same step with the particles split over 1, 2, 4, 8 devices. On a CPU these are
  virtual devices (`--xla_force_host_platform_device_count=8`, set below before JAX starts):
  they share the same cores, so this measures correctness (the outputs against one device)
  and the overhead of the split, not a speed-up.
* Streamed against resident: the same step with the history in host memory, in 1, 4 and 16
  particle blocks per depth step, its blocks brought to the device by host callbacks
  (`solver.streaming = "callbacks"`) or inside the compiled step from the device's host memory
  space (`"memory_kinds"`). On a CPU host and device memory are the same and XLA copies a
  host-memory argument whole at the step's entry, so the memory-kinds rows measure overhead
  there, not streaming.

Every point starts from an empty history (the work of a step does not depend on its values), so
"max rel. diff" compares the first step's outputs only; `tests/test_sharding.py` and
`tests/test_streamed.py` compare whole solves.
"""

import argparse
import dataclasses
import os
import time

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ["XLA_FLAGS"] = flags.strip()

import jax  # noqa: E402  (after XLA_FLAGS)
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _timing import (  # noqa: E402
    Variant,
    aot_compile,
    environment,
    header,
    memory_of,
    ms,
    start,
    table,
    time_group,
    write_outputs,
)

from nfd_sde import load_config, load_stream  # noqa: E402
from nfd_sde.limit import build_groups, jit_step, plan_limit  # noqa: E402
from solvers import HISTORY_STORES  # noqa: E402

HISTORY_READS = 10  # history slices a field-space step reads (module docstring)


@dataclasses.dataclass(frozen=True)
class Sizes:
    log2n: tuple[int, ...] = (10, 11, 12, 13, 14, 15)
    devices_log2n: int = 14
    streamed_log2n: int = 13
    steps: int = 32  # K, with B = 4: K*B = 128
    depth_steps: int = 16
    blocks: tuple[int, ...] = (1, 4, 16)
    repeats: int = 5
    budget_s: float = 20.0


QUICK = Sizes(
    log2n=(8,), devices_log2n=8, streamed_log2n=8, steps=4, depth_steps=4, blocks=(4,), repeats=2
)


def config_for(sizes: Sizes, particles: int, **solver):
    overrides = [
        "solver.groups=1",
        "solver.levels=1",
        "solver.representation=field",
        f"solver.particles={particles}",
        f"solver.depth_steps={sizes.depth_steps}",
        f"training.steps={sizes.steps}",
        "training.batch=4",
        "data.eval_size=4",
        "solver.memory_limit_gb=1e6",
    ]
    return load_config(None, overrides).replace(solver=solver)


def bandwidth(size_bytes: int = 256 * 2**20) -> float:
    """Bytes per second of a jitted copy (read + write) of a float32 array on device 0."""
    x = jnp.ones(size_bytes // 4, jnp.float32)
    copy = jax.jit(lambda a: a * 1.0001)
    jax.block_until_ready(copy(x))
    best = min(_timed(lambda: copy(x)) for _ in range(5))
    return 2 * size_bytes / best


def _timed(call) -> float:
    tick = time.perf_counter()
    jax.block_until_ready(call())
    return time.perf_counter() - tick


def compile_point(config, *, plan=None):
    """(info, call, first outputs) of one step: the plan, compiled at k = K-1, memory."""
    stream = load_stream(config)
    sizes = {"dim": stream.dim, "steps": stream.steps, "batch": 4, "eval_size": 4}
    plan = plan or plan_limit(config, **sizes)
    solvers, states = build_groups(config, stream, key=jax.random.key(0), plan=plan, refinement=1)
    k = stream.steps - 1
    x = tuple(jnp.asarray(a, jnp.float32) for a in (stream.x_train[k], stream.y_train[k]))
    inputs = (solvers, jnp.int32(k), *x, jnp.asarray(stream.x_eval, jnp.float32))
    compiled, compile_times = aot_compile(jit_step, inputs, states)
    memory = memory_of(compiled)
    current = [states]

    def call():
        current[0], out = compiled(inputs, current[0])
        return out

    first = jax.device_get(call())
    info = {
        "particles": config.solver.particles,
        "depth_steps": config.solver.depth_steps,
        "stored_pairs": plan.stored_pairs,
        "devices": plan.devices,
        "placement": plan.mode
        + (f" ({config.solver.streaming.replace('_', ' ')})" if plan.mode == "streamed" else ""),
        "blocks": plan.blocks,
        "plan_bytes_needed": plan.bytes_needed,
        "history_bytes": plan.history_bytes,
        **compile_times,
        "memory": memory,
    }
    return info, call, first


def measured(info, timing, sizes: Sizes, copy_bandwidth: float) -> dict:
    n, m, s = info["particles"], info["depth_steps"], info["stored_pairs"]
    bytes_moved = HISTORY_READS * m * n * s * 4
    point = {**info, **timing}
    point["throughput"] = n * (sizes.steps * 4) * m / timing["min_s"]
    point["bytes_per_step"] = bytes_moved
    point["roofline_fraction"] = bytes_moved / timing["min_s"] / copy_bandwidth
    return point


def time_points(named: dict, sizes: Sizes) -> dict:
    variants = [Variant(name, call) for name, (_, call, _) in named.items()]
    return time_group(variants, repeats=sizes.repeats, budget_s=sizes.budget_s)


def difference(a, b) -> float:
    worst = 0.0
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        if not y.size:  # (an output this configuration leaves empty)
            continue
        worst = max(worst, float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(y))), 1e-30)))
    return worst


def run(sizes: Sizes) -> dict:
    env = environment()
    start(env)
    began = time.perf_counter()
    copy_bandwidth = bandwidth()
    print(f"copy bandwidth {copy_bandwidth / 1e9:.3g} GB/s", flush=True)

    # 1. throughput against N, one device
    by_n = {}
    for log2n in sizes.log2n:
        by_n[f"N=2^{log2n}"] = compile_point(config_for(sizes, 2**log2n, devices=1))
        print(f"  compiled N=2^{log2n}", flush=True)
    timings = time_points(by_n, sizes)
    n_points = [measured(by_n[k][0], timings[k], sizes, copy_bandwidth) for k in by_n]

    # 2. the same step split over 1, 2, 4, 8 devices
    counts = [d for d in (1, 2, 4, 8) if d <= len(jax.devices())]
    by_devices = {
        f"devices={d}": compile_point(config_for(sizes, 2**sizes.devices_log2n, devices=d))
        for d in counts
    }
    timings = time_points(by_devices, sizes)
    reference = by_devices["devices=1"][2]
    device_points = []
    for name, (info, _, first) in by_devices.items():
        point = measured(info, timings[name], sizes, copy_bandwidth)
        point["difference_from_one_device"] = difference(first, reference)
        point["time_over_one_device"] = timings[name]["min_s"] / timings["devices=1"]["min_s"]
        device_points.append(point)

    # 3. streamed (history in host memory) against resident, one device
    config = config_for(sizes, 2**sizes.streamed_log2n, devices=1)
    stream = load_stream(config)
    base = plan_limit(config, dim=stream.dim, steps=stream.steps, batch=4, eval_size=4)
    by_mode = {"resident": compile_point(config, plan=base)}
    for streaming in HISTORY_STORES:  # every way a streamed history reaches the device
        label = streaming.replace("_", " ")
        for blocks in sizes.blocks:
            # the plan's own choice needs a memory limit; here the blocks are set by hand
            streamed = dataclasses.replace(base, mode="streamed", blocks=blocks, bytes_needed=0)
            by_mode[f"{label}/{blocks}"] = compile_point(
                config.replace(solver={"streaming": streaming}), plan=streamed
            )
    timings = time_points(by_mode, sizes)
    mode_points = []
    for name, (info, _, first) in by_mode.items():
        point = measured(info, timings[name], sizes, copy_bandwidth)
        point["difference_from_resident"] = difference(first, by_mode["resident"][2])
        point["time_over_resident"] = timings[name]["min_s"] / timings["resident"]["min_s"]
        mode_points.append(point)

    env["load_average_end"] = os.getloadavg()
    return {
        "environment": env,
        "sizes": dataclasses.asdict(sizes),
        "copy_bandwidth_bytes_per_s": copy_bandwidth,
        "by_particles": n_points,
        "by_devices": device_points,
        "by_placement": mode_points,
        "total_wall_s": time.perf_counter() - began,
    }


def _row(p) -> list:
    xla = p["memory"].get("xla_total_bytes")
    return [
        p["particles"],
        p["devices"],
        p["placement"] + (f"/{p['blocks']}" if p["placement"].startswith("streamed") else ""),
        ms(p["min_s"]),
        ms(p["median_s"]),
        f"{p['compile_s']:.1f}",
        f"{p['throughput']:.3g}",
        f"{p['bytes_per_step'] / 1e6:.3g}",
        f"{p['roofline_fraction']:.3f}",
        "-" if xla is None else f"{xla / 1e6:.3g}",
        f"{p['plan_bytes_needed'] / 1e6:.3g}" if p["plan_bytes_needed"] else "-",
    ]


COLUMNS = ["N", "devices", "placement", "min ms", "median ms", "compile s", "pair-steps/s"]
COLUMNS += ["MB moved", "roofline", "XLA MB", "plan MB"]


def report(results: dict) -> str:
    sizes = results["sizes"]
    shown = {"K*B": sizes["steps"] * 4, "M": sizes["depth_steps"], "B": 4, "P": 4}
    out = header(results["environment"], shown, results["total_wall_s"])
    out.append(
        f"copy bandwidth (jitted 256 MB copy, read + write): "
        f"{results['copy_bandwidth_bytes_per_s'] / 1e9:.3g} GB/s"
    )
    out += ["", "### Throughput against particles (one device)", ""]
    out.append(table(COLUMNS, [_row(p) for p in results["by_particles"]]))
    out += ["", "### Particles split over devices", ""]
    rows = [
        [*_row(p), f"{p['time_over_one_device']:.2f}", f"{p['difference_from_one_device']:.2g}"]
        for p in results["by_devices"]
    ]
    out.append(table([*COLUMNS, "time / 1 device", "max rel. diff"], rows))
    out += ["", "### Streamed (history in host memory) against resident", ""]
    rows = [
        [
            *_row(p),
            f"{p['history_bytes'] / 1e6:.3g}",
            f"{p['time_over_resident']:.2f}",
            f"{p['difference_from_resident']:.2g}",
        ]
        for p in results["by_placement"]
    ]
    out.append(table([*COLUMNS, "history MB", "time / resident", "max rel. diff"], rows))
    return "\n".join(out)


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument("--out", default="benchmarks/results/", help="output folder")
    parser.add_argument("--log2n", help="the N sweep, N = 2^each of these comma-separated integers")
    parser.add_argument("--devices-log2n", type=int, help="N = 2^this for the device sweep")
    parser.add_argument("--streamed-log2n", type=int, help="N = 2^this for streamed/resident")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse(argv)
    sizes = QUICK if args.quick else Sizes()
    if args.log2n is not None:
        sizes = dataclasses.replace(sizes, log2n=tuple(int(v) for v in args.log2n.split(",")))
    for name in ("devices_log2n", "streamed_log2n"):
        if getattr(args, name) is not None:
            sizes = dataclasses.replace(sizes, **{name: getattr(args, name)})
    results = run(sizes)
    results["quick"] = args.quick
    write_outputs(args.out, "particles", results, report(results))


if __name__ == "__main__":
    main()
