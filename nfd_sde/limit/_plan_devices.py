"""How many devices a limit solve splits its particles over, and in how many blocks a streamed
history is read."""

import jax

from solvers import largest_divisor


def devices_for(requested: int | str, particles: int, available: int | None) -> tuple[int, str]:
    """How many devices split the particles, and why."""
    available = len(jax.devices()) if available is None else available
    if requested == "all":
        count = largest_divisor(particles, available)
        if count == available:
            return count, f"solver.devices='all': the {count} visible device(s)"
        return count, (
            f"solver.devices='all': {count} of the {available} visible devices, the most that "
            f"divide the {particles} particles evenly"
        )
    if requested > available:
        raise ValueError(
            f"solver.devices={requested}, but JAX sees {available} device(s) "
            f"({jax.devices()[0].platform}); set solver.devices='all' or at most {available}. "
            "On a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N (set before JAX "
            "starts) makes N virtual devices"
        )
    if particles % requested:
        raise ValueError(
            f"solver.devices={requested} does not divide solver.particles={particles}: each "
            "device holds particles / devices of them; choose particles a multiple of devices"
        )
    return requested, f"solver.devices={requested}"


def fewest_blocks(particles: int, most_per_block: int) -> int:
    """The fewest blocks of equal size at most `most_per_block` (at least 1) that split the
    particles."""
    divisors = set()
    for d in range(1, int(particles**0.5) + 1):
        if particles % d == 0:
            divisors |= {d, particles // d}
    fitting = [c for c in divisors if particles // c <= max(most_per_block, 1)]
    return min(fitting)
