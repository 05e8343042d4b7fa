"""The result schema shared by every producer (finite network, limit solver, later tools).

`result.json` holds:
  f_train    (K, B, C)        outputs on step k's minibatch, before step k's update
  f_eval     (K+1, P, C)      outputs on the eval inputs at every step k = 0..K
  loss_train (K,)             mean loss on step k's minibatch, before its update
  loss_eval  (K+1,)           mean loss on the eval inputs at every step
  kernels    {"t": [...], "feature_eval": (K+1, D, P, P), "feature_train": (K, D, B, B),
              "grad_train": (K, D, B, B), and "layers": the indices l = floor(t L + 1/2) of
              the network's layers or the limit's grid points}   at depth times t (D of them); the gradient kernel
              is that of the loss-gradient paths g_l(x) = gamma0 n d ell(f(x), y) / d h_l
  config     the fully resolved config
  producer   {"kind": "finite" | "limit", plus the producer's own sizes and options}
  meta       seed, device, package versions, wall time, compile time, peak memory, data origin
  status     {"diverged": bool, "first_bad_step": k or null}: k is the first step whose
              outputs, losses or kernels are not finite (NaN and infinities are stored as null)

  stderr     the Monte Carlo standard error of every number above, with the same keys and
             shapes (f_train, f_eval, loss_train, loss_eval, kernels: {...}); null where it is
             not estimated (a finite network, a limit solved with one particle group)
  syserr     the discretisation error, likewise (null for one depth level, whose value is the
             n -> infinity limit of the depth-M network itself)

`status` is derived from the arrays (`Result.status`), so it always agrees with them, and a file
written before it existed reads the same.
"""

import dataclasses
import json
import math
import platform
import resource
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ._config import Config

ARRAY_FIELDS = ("f_train", "f_eval", "loss_train", "loss_eval")
KERNEL_FIELDS = ("feature_eval", "feature_train", "grad_train")
PACKAGES = ("nfd-sde", "jax", "jaxlib", "equinox", "diffrax", "optax", "numpy")


@dataclasses.dataclass
class Result:
    f_train: np.ndarray
    f_eval: np.ndarray
    loss_train: np.ndarray
    loss_eval: np.ndarray
    kernels: dict[str, Any]
    config: dict[str, Any]
    producer: dict[str, Any]
    meta: dict[str, Any]
    stderr: dict[str, Any] | None = None
    syserr: dict[str, Any] | None = None

    @property
    def status(self) -> dict[str, Any]:
        """`{"diverged": bool, "first_bad_step": int | None}`: a diverged run is a result."""
        kernels = [self.kernels[name] for name in KERNEL_FIELDS if name in self.kernels]
        step = first_nonfinite_step(
            self.f_train, self.f_eval, self.loss_train, self.loss_eval, *kernels
        )
        return {"diverged": step is not None, "first_bad_step": step}

    def to_json(self) -> dict[str, Any]:
        return json_ready({**dataclasses.asdict(self), "status": self.status})

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Result":
        values = dict(raw)
        for name in ARRAY_FIELDS:
            values[name] = np.asarray(values[name], dtype=float)
        kernels = dict(values["kernels"])
        for name in KERNEL_FIELDS:
            if name in kernels:
                kernels[name] = np.asarray(kernels[name], dtype=float)
        values["kernels"] = kernels
        for name in ("stderr", "syserr"):
            values[name] = _errors_from_json(values.get(name))
        if values["f_train"].size == 0:
            _shape_no_steps(values)
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls)})


def _errors_from_json(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    if raw is None:
        return None

    def array(value):
        return None if value is None else np.asarray(value, dtype=float)

    errors = {name: array(raw.get(name)) for name in ARRAY_FIELDS}
    errors["kernels"] = {name: array(value) for name, value in (raw.get("kernels") or {}).items()}
    return errors


def interval95(result: Result, name: str) -> np.ndarray | None:
    """Half-width of the 95% band of a limit quantity (`f_eval`, `loss_eval`, ..., or
    `kernels.feature_eval`): t x sqrt(stderr^2 + syserr^2), t the Student quantile for the
    groups' degrees of freedom (`producer["interval95_factor"]`); None without errors."""
    parts = []
    for errors in (result.stderr, result.syserr):
        if errors is None:
            continue
        value = errors["kernels"].get(name[8:]) if name.startswith("kernels.") else errors.get(name)
        if value is not None:
            with np.errstate(over="ignore"):  # a diverged run's errors are huge or not finite
                parts.append(np.square(np.asarray(value, dtype=float)))
    if not parts:
        return None
    factor = result.producer.get("interval95_factor", 1.96)
    return factor * np.sqrt(sum(parts))


def _shape_no_steps(values: dict[str, Any]) -> None:
    """JSON keeps no shape of an empty list: give the step arrays of a run without SGD steps
    their shapes back, (0, B, C) and (0, D, B, B), from the config and the eval outputs."""
    batch = values.get("config", {}).get("training", {}).get("batch")
    if batch is None or values["f_eval"].ndim != 3:
        return
    values["f_train"] = values["f_train"].reshape(0, batch, values["f_eval"].shape[-1])
    kernels = values["kernels"]
    depths = len(kernels.get("t", ()))
    for name in ("feature_train", "grad_train"):
        if name in kernels:
            kernels[name] = kernels[name].reshape(0, depths, batch, batch)


def first_nonfinite_step(*arrays: Any) -> int | None:
    """The first index along the leading (step) axis at which any array holds a value that is
    not finite, or None when every value is finite."""
    first = None
    for array in arrays:
        array = np.asarray(array, dtype=float)
        if array.ndim == 0:
            continue
        finite = np.all(np.isfinite(array), axis=tuple(range(1, array.ndim)))
        if not np.all(finite):
            step = int(np.argmin(finite))
            first = step if first is None else min(first, step)
    return first


def read_result(path: str | Path) -> Result:
    path = Path(path)
    if path.is_dir():
        path = path / "result.json"
    with path.open() as fh:
        return Result.from_json(json.load(fh))


def peak_memory_bytes() -> dict[str, int | None]:
    """Peak host memory of this process, and the accelerator's peak where it reports one."""
    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    try:
        stats = jax.devices()[0].memory_stats() or {}
    except Exception:  # backends without memory statistics
        stats = {}
    return {"host_peak_bytes": host, "device_peak_bytes": stats.get("peak_bytes_in_use")}


def package_versions() -> dict[str, str | None]:
    """Installed versions of this package and the JAX stack (None where absent)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_meta(config: Config, *, wall_time: float, **extra: Any) -> dict[str, Any]:
    """Seed, device, versions, timing and memory, so every number can be reproduced."""
    versions = package_versions()
    device = jax.devices()[0]
    return {
        "seed": config.run.seed,
        "dtype": config.run.dtype,
        "device": {"platform": device.platform, "kind": device.device_kind},
        "python": platform.python_version(),
        "versions": versions,
        "wall_time_s": wall_time,
        "memory": peak_memory_bytes(),
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **extra,
    }


def json_ready(value: Any) -> Any:
    """Plain JSON data: arrays to lists, numpy scalars to Python numbers, non-finite numbers to
    None (read back as NaN by `Result.from_json`)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray | jax.Array):
        return json_ready(np.asarray(value).tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
