"""How much memory one device may use: `solver.memory_limit_gb`, the one bound both producers
are planned against (the limit's particles, `nfd_sde.limit.plan_limit`, and the finite
network's weights, `nfd_sde.finite.plan_finite`), resolved here for both.

"auto" is 75% of the smallest memory the visible devices report (GPUs do), else 8 GB (a CPU
reports none; its memory is the host's).
"""

import os

import jax

from ._config import Config

AUTO_FRACTION, AUTO_DEFAULT_GB = 0.75, 8.0


def memory_limit_gb(config: Config) -> float:
    """`config.solver.memory_limit_gb` in GB, "auto" resolved (`device_memory_gb`)."""
    limit = config.solver.memory_limit_gb
    return device_memory_gb() if limit == "auto" else float(limit)


def device_memory_gb() -> float:
    """solver.memory_limit_gb="auto": 75% of the smallest memory the visible devices report
    (GPUs do), else 8 GB (a CPU reports none; its memory is the host's)."""
    limits = []
    for device in jax.devices():
        try:
            stats = device.memory_stats() or {}
        except Exception:  # backends without memory statistics
            stats = {}
        if stats.get("bytes_limit"):
            limits.append(stats["bytes_limit"])
    return round(AUTO_FRACTION * min(limits) / 1e9, 2) if limits else AUTO_DEFAULT_GB


def host_memory_bytes() -> int | None:
    """This host's physical memory, where the operating system says."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
