"""Shared timing helpers for the benchmark scripts (STYLE.md rule 20).

* `environment()`: device, CPU model, core count, package versions, load average.
* `aot_compile(jitted, *args, **kwargs)`: ahead-of-time trace + XLA compile of an
  `eqx.filter_jit` function, timed separately from any call.
* `time_group(variants)`: wall time of repeated calls, each ended by `jax.block_until_ready`,
  of several callables timed in interleaved rounds (A, B, A, B, ...), so that a ratio compares
  calls made under the same machine load; min and median over the rounds.
* `blas_threads(n)`: temporarily set the thread count of the OpenBLAS that jaxlib's CPU LAPACK
  kernels (Cholesky, eigh, triangular solves) call through scipy.
* `memory_of(compiled)`: XLA's static memory analysis of one executable, plus the device's
  peak (where the backend reports one) and the process's peak RSS.
* `parse_args`, `write_outputs`, `table`, `ms`, `header`: the command line every script takes
  (`--quick`, `--out`) and how each writes what it measured (JSON, markdown).
"""

import argparse
import contextlib
import ctypes
import dataclasses
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from nfd_sde.experiments import write_json, write_text
from nfd_sde.model import package_versions


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def environment() -> dict[str, Any]:
    """Everything needed to read the numbers: device, host, versions, current load."""
    versions = package_versions()
    devices = jax.devices()
    return {
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
        },
        "host": {
            "cpu_model": cpu_model(),
            "cpu_cores": os.cpu_count(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "versions": versions,
        "jax_enable_x64": bool(jax.config.jax_enable_x64),
        "thread_env": {
            name: os.environ.get(name)
            for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "XLA_FLAGS")
        },
        "load_average_start": load_average(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def aot_compile(jitted, *args, **kwargs) -> tuple[Any, dict[str, float]]:
    """`jitted.lower(*args, **kwargs).compile()`, timing tracing and XLA compilation apart."""
    start = time.perf_counter()
    lowered = jitted.lower(*args, **kwargs)
    traced = time.perf_counter()
    compiled = lowered.compile()
    done = time.perf_counter()
    return compiled, {
        "trace_s": traced - start,
        "xla_compile_s": done - traced,
        "compile_s": done - start,
    }


@dataclasses.dataclass
class Variant:
    """One callable of a group; `blas` is the OpenBLAS thread count to call it with (None:
    leave it as it is)."""

    name: str
    call: Callable[[], Any]
    blas: int | None = None


def time_group(
    variants: list[Variant], *, repeats: int, budget_s: float, min_repeats: int = 2
) -> dict[str, dict[str, Any]]:
    """`time_calls` for several callables at once, in interleaved rounds: one warm-up call
    each, then rounds of one call each until `repeats` rounds, or `budget_s` spent after at
    least `min_repeats` rounds."""
    results = {v.name: {"times_s": []} for v in variants}

    def timed(variant):
        with blas_threads(variant.blas):
            tick = time.perf_counter()
            jax.block_until_ready(variant.call())
            return time.perf_counter() - tick

    spent = 0.0
    for variant in variants:
        results[variant.name]["first_call_s"] = timed(variant)
        spent += results[variant.name]["first_call_s"]
    rounds = 0
    while rounds < repeats and (rounds < min_repeats or spent < budget_s):
        for variant in variants:
            elapsed = timed(variant)
            results[variant.name]["times_s"].append(elapsed)
            spent += elapsed
        rounds += 1
    for timing in results.values():
        timing["min_s"] = min(timing["times_s"])
        timing["median_s"] = statistics.median(timing["times_s"])
    return results


_BLAS_SYMBOLS = (
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads", "openblas_get_num_threads"),
)


def openblas_libraries() -> list[tuple[str, Any, Any]]:
    """(path, set_num_threads, get_num_threads) of every OpenBLAS loaded in this process
    (Linux: read from /proc/self/maps); empty where none is found."""
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted(
                {line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line}
            )
    except OSError:
        return []
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in _BLAS_SYMBOLS:
            if hasattr(lib, setter) and hasattr(lib, getter):
                set_fn, get_fn = getattr(lib, setter), getattr(lib, getter)
                set_fn.argtypes, get_fn.restype = [ctypes.c_int], ctypes.c_int
                found.append((path, set_fn, get_fn))
                break
    return found


def blas_info() -> list[dict[str, Any]]:
    return [
        {"library": os.path.basename(path), "threads": int(get())}
        for path, _, get in openblas_libraries()
    ]


@contextlib.contextmanager
def blas_threads(count: int | None):
    """Run the block with every loaded OpenBLAS limited to `count` threads (None: unchanged)."""
    if count is None:
        yield
        return
    libraries = openblas_libraries()
    before = [get() for _, _, get in libraries]
    for _, set_fn, _ in libraries:
        set_fn(count)
    try:
        yield
    finally:
        for (_, set_fn, _), threads in zip(libraries, before):
            set_fn(threads)


def memory_of(compiled) -> dict[str, int | None]:
    """XLA's memory analysis of one executable (arguments, outputs, temporaries; exact per
    executable on every backend), the device's peak bytes in use (GPU/TPU; cumulative over the
    process) and the process's peak resident set (cumulative; includes host copies)."""
    inner = getattr(compiled, "compiled", compiled)
    out: dict[str, int | None] = {}
    try:
        stats = inner.memory_analysis()
        for name in (
            "argument_size_in_bytes",
            "output_size_in_bytes",
            "temp_size_in_bytes",
            "alias_size_in_bytes",
            "generated_code_size_in_bytes",
        ):
            out[name] = int(getattr(stats, name))
        out["xla_total_bytes"] = (
            out["argument_size_in_bytes"]
            + out["output_size_in_bytes"]
            + out["temp_size_in_bytes"]
            - out["alias_size_in_bytes"]
        )
    except Exception:  # backends without a memory analysis
        out["xla_total_bytes"] = None
    try:
        device_stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics (CPU)
        device_stats = {}
    out["device_peak_bytes"] = device_stats.get("peak_bytes_in_use")
    out["host_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return out


# ---------------------------------------------------------------------------------------------
# Command line and output


def parse_args(doc: str, argv: list[str] | None = None) -> argparse.Namespace:
    """`--quick` (tiny sizes: checks the script runs) and `--out DIR`, for every script."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: check the script runs")
    parser.add_argument(
        "--out", default="benchmarks/results/", help="output folder (default: %(default)s)"
    )
    return parser.parse_args(argv)


def start(env: dict[str, Any]) -> None:
    """Print where the run happens, before any timing."""
    print(
        f"device {env['device']['platform']} ({env['device']['kind']}), CPU "
        f"{env['host']['cpu_model']} x {env['host']['cpu_cores']} cores, jax "
        f"{env['versions']['jax']}, load average {env['load_average_start']}",
        flush=True,
    )


def header(env: dict[str, Any], sizes: dict[str, Any], total_s: float) -> list[str]:
    """The lines that open every report: device, host load, versions, sizes, wall time."""
    shown = ", ".join(f"{k}={v}" for k, v in sizes.items() if not isinstance(v, list | tuple))
    return [
        f"device: {env['device']['platform']} ({env['device']['kind']}); CPU "
        f"{env['host']['cpu_model']}, {env['host']['cpu_cores']} cores; load average "
        f"{env['load_average_start']} -> {env.get('load_average_end')}",
        "versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"sizes: {shown}; float32, decoupled backward, ReLU; total wall {total_s:.0f} s",
    ]


def ms(seconds: float) -> str:
    """Milliseconds with 3 significant digits below 10 ms, whole ones above."""
    return f"{seconds * 1e3:.3g}" if seconds < 1e-2 else f"{seconds * 1e3:.0f}"


def table(header_row: list[str], rows: list[list[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header_row) + " |", "|" + "---|" * len(header_row)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_outputs(out: str | Path, name: str, results: dict[str, Any], text: str) -> Path:
    """Print the report and write `OUT/NAME.json` (every raw number) and `OUT/NAME.md` (the
    report), each through the package's one atomic writer. Returns OUT."""
    print("\n" + text)
    out = Path(out)
    write_json(out / f"{name}.json", results)
    write_text(out / f"{name}.md", text + "\n")
    print(f"\nwrote {out / name}.json and {name}.md", flush=True)
    return out
