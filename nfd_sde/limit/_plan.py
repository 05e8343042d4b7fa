"""Before a limit solve: which noise representation is cheaper, and whether the problem fits.

Cost model per training step (multiply-adds, both sweeps, M depth steps, N particles, S stored
training pairs, n = B + P new pairs per forward sweep, B per backward sweep, w initial weight
matrices per block: 1 for one-layer blocks, 2 for two-layer blocks):
  shared (learning drifts):   2 w M N S (n + B)
  field space (+ conditional noise): 2 shared + w M S^2 (n + B)
  two-sided field space (standard backprop): TWO_SIDED_COST shared + 2 w M S^2 (n + B): each
      product also solves against the other side and projects its fresh noise off it, and the
      step's products are recomputed once to be stored (`solvers.TwoSidedFieldSpace`)
  weight space (+ Gaussian matrices): shared + w M N^2 (n + B) + 2 w M N^2 * RNG_COST
The `auto` representation picks the smaller for the requested backward mode; `FIELD_BIAS` scales
the field cost to match measured ratios (see benchmarks/README.md).

Where the particles live (memory per device, `solver.memory_limit_gb`, resolved by
`nfd_sde.model.memory_limit_gb`):
  resident: the particles are split over `solver.devices` devices (their particle axis; the
            pairs x pairs factors replicated) and the whole history is on them;
  streamed: when that does not fit, the per-particle history (stored features, gradient paths
            and white noise, or the two-sided field space's revealed products: groups x steps x
            particles x pairs) is kept in host memory and each depth step reads it in blocks
            of particles (`solvers.HostParticles`), on one device; the blocks are as few as
            fit. Everything else (the new pairs' paths, the factors, the weight-space
            matrices) stays on the device.
A problem that does not fit streamed either, or whose history does not fit in host memory, is
refused with the amount and the knobs that reduce it.
"""

import dataclasses

import jax

from solvers import largest_divisor

from ..model import Config, block_of, host_memory_bytes, memory_limit_gb

RNG_COST = 8.0
FIELD_BIAS = 1.0
TWO_SIDED_COST = 8.0


@dataclasses.dataclass(frozen=True)
class LimitPlan:
    """`bytes_needed`: the estimated peak per device in the chosen `mode`; `history_bytes`: the
    per-particle history of all groups as one buffer; `host_bytes`: what a streamed solve keeps
    in host memory; `reason`: why this mode and this many devices."""

    representation: str
    stored_pairs: int
    new_pairs: int
    cost_field: float
    cost_weight: float
    bytes_needed: int
    devices: int = 1
    mode: str = "resident"
    blocks: int = 1
    history_bytes: int = 0
    host_bytes: int = 0
    reason: str = ""

    @property
    def gigabytes(self) -> float:
        return self.bytes_needed / 1e9

    def describe(self) -> str:
        """One line for the command line, printed before the solve."""
        where = (
            f"resident on {self.devices} device{'s' if self.devices > 1 else ''}"
            if self.mode == "resident"
            else f"streamed from host memory ({self.host_bytes / 1e9:.3g} GB) in "
            f"{self.blocks} particle blocks per depth step"
        )
        return (
            f"plan: {self.representation} space, {where}, about {self.gigabytes:.3g} GB per "
            f"device; {self.reason}"
        )


def limit_costs(
    *,
    particles: int,
    depth_steps: int,
    stored: int,
    batch: int,
    eval_size: int,
    weights: int = 1,
    two_sided: bool = False,
    field_bias: float = FIELD_BIAS,
    rng_cost: float = RNG_COST,
) -> tuple[float, float]:
    """The cost model of the module docstring: (field cost, weight cost) per training step, in
    multiply-adds, for `weights` initial matrices per block; `two_sided`: the field space of
    standard backprop."""
    n_part, m, w, new = particles, depth_steps, weights, batch + eval_size
    shared = 2.0 * w * m * n_part * stored * (new + batch)
    factors = w * m * stored**2 * (new + batch)
    if two_sided:
        field = field_bias * (TWO_SIDED_COST * shared + 2 * factors)
    else:
        field = field_bias * (2 * shared + factors)
    weight = shared + w * (m * n_part**2 * (new + batch) + 2 * m * n_part**2 * rng_cost)
    return field, weight


def plan_limit(
    config: Config,
    *,
    dim: int,
    steps: int,
    batch: int,
    eval_size: int,
    available_devices: int | None = None,
) -> LimitPlan:
    """Choose the representation, the devices and where the history lives (module docstring),
    estimate the peak memory per device; refuse what will not fit. `available_devices`
    defaults to `len(jax.devices())`."""
    config = config.replace(solver={"memory_limit_gb": memory_limit_gb(config)})
    solver = config.solver
    block = block_of(config)
    w, arrays = len(block.weights), len(block.stored)
    n_part, m = solver.particles, solver.depth_steps
    stored, new = (
        steps * batch + (eval_size if solver.control_variates and steps else 0),
        batch + eval_size,
    )
    cost_field, cost_weight = limit_costs(
        particles=n_part,
        depth_steps=m,
        stored=stored,
        batch=batch,
        eval_size=eval_size,
        weights=w,
        two_sided=solver.backward == "standard",
    )
    if solver.representation != "auto":
        representation = solver.representation
    else:
        representation = "field" if cost_field <= cost_weight else "weight"
    field_name = "two-sided field" if solver.backward == "standard" else "field"
    choice = (
        f"solver.representation='{solver.representation}'"
        if solver.representation != "auto"
        else f"auto: {field_name if representation == 'field' else 'weight'} space is cheaper "
        f"for {solver.backward} backprop (cost ratio field/weight {cost_field / cost_weight:.3g})"
    )
    _check_levels(config)
    itemsize = 8 if config.run.dtype == "float64" else 4
    history = arrays * m * n_part * stored
    paths = 3 * (m + 1) * n_part * new * (2 if block.has_first else 1)
    params = n_part * (dim + config.model.outputs)
    if representation == "field":
        stored_white, factors = 2 * w * m * n_part * stored, 2 * w * m * stored**2
        extra = stored_white + 2 * w * m * n_part * new + factors
    else:
        stored_white, factors, extra = 0, 0, 2 * w * n_part**2
    groups = solver.groups
    # the jitted step keeps an input and an output copy of every group's state
    resident = groups * itemsize * (2 * (history + params) + paths + 2 * extra)
    devices, why = _devices(solver.devices, n_part, available_devices)
    why = f"{choice}; {why}"
    shared = groups * itemsize * 2 * factors  # replicated on every device
    per_device = (resident - shared) // devices + shared
    sizes = (representation, stored, new, cost_field, cost_weight)
    limit = solver.memory_limit_gb * 1e9
    history_bytes = groups * itemsize * (history + stored_white)
    if per_device <= limit:
        return LimitPlan(*sizes, per_device, devices, "resident", 1, history_bytes, 0, why)
    # streamed: the per-particle history in host memory, blocks of it on one device
    # the new pairs' paths and what is computed from them (activations, entries, controls):
    # twice the paths' bytes covers what XLA's memory analysis measures (benchmarks/README.md)
    fixed = groups * itemsize * (2 * params + 2 * paths + 2 * (extra - stored_white))
    if representation == "field" and solver.backward == "standard":
        # two-sided: the history per particle is the one-sided one's size (the revealed
        # products C, D where that keeps white noise), but the step also holds its own pairs'
        # inputs and revealed products on the whole grid (`TwoSidedFieldSpace.reveal`): XLA
        # measured 3.5-7 (w = 1) and 5-11 (w = 2) M N (B + P) entries more than one-sided
        fixed += groups * itemsize * 2 * (w + arrays) * m * n_part * new
    per_particle = groups * itemsize * 4 * max(stored, 1)  # blocks of the history in flight
    blocks = _fewest_blocks(n_part, int((limit - fixed) // per_particle))
    streamed = fixed + per_particle * (n_part // blocks)
    if streamed > limit or not stored:  # (no stored pairs: no history to stream)
        switch = (
            "use solver.representation='weight' for long runs, "
            if representation == "field"
            else ""
        )
        raise ValueError(
            f"the limit solve needs about {per_device / 1e9:.3g} GB per device "
            f"(solver.memory_limit_gb={solver.memory_limit_gb}), and about "
            f"{streamed / 1e9:.3g} GB even with its history in host memory (the new pairs' "
            f"paths and, in weight space, the N x N matrices stay on the device): the stored "
            f"history grows like groups x particles x depth_steps x steps*batch = {groups} x "
            f"{n_part} x {m} x {stored}. Reduce solver.groups, solver.particles, "
            f"solver.depth_steps, training.steps or training.batch, {switch}or raise "
            "solver.memory_limit_gb"
        )
    host = host_memory_bytes()
    if host is not None and history_bytes > 0.8 * host:
        raise ValueError(
            f"the limit solve's history takes {history_bytes / 1e9:.2f} GB, more than fits on "
            f"the devices (solver.memory_limit_gb={solver.memory_limit_gb}) and more than 80% "
            f"of this host's {host / 1e9:.1f} GB: reduce solver.groups, solver.particles, "
            "solver.depth_steps, training.steps or training.batch"
        )
    reason = (
        f"resident it needs {per_device / 1e9:.3g} GB per device on {devices} device"
        f"{'s' if devices > 1 else ''}, more than solver.memory_limit_gb="
        f"{solver.memory_limit_gb}; so the per-particle history ({history_bytes / 1e9:.3g} GB) "
        f"is kept in host memory and streamed to one device, {n_part // blocks} particles at a "
        "time"
    )
    return LimitPlan(*sizes, streamed, 1, "streamed", blocks, history_bytes, history_bytes, reason)


def _devices(requested: int | str, particles: int, available: int | None) -> tuple[int, str]:
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


def _fewest_blocks(particles: int, most_per_block: int) -> int:
    """The fewest blocks of equal size at most `most_per_block` (at least 1) that split the
    particles."""
    divisors = set()
    for d in range(1, int(particles**0.5) + 1):
        if particles % d == 0:
            divisors |= {d, particles // d}
    fitting = [c for c in divisors if particles // c <= max(most_per_block, 1)]
    return min(fitting)


def _check_levels(config: Config) -> None:
    """Extrapolation in depth needs a limit to extrapolate to, and kernels recorded at depth
    times that are grid points of every level."""
    solver = config.solver
    if solver.levels == 1:
        return
    exponent = config.training.first_layer_exponent
    if config.model.block == "two_layer" and exponent > 0:
        raise ValueError(
            f"two-layer blocks with training.first_layer_exponent={exponent} > 0 have no "
            "infinite-depth limit: the first layer's update enters the backward pass (and, with "
            "standard backprop, the forward pass) coherently and grows like L^c "
            "(docs/two_layer.md), so there is nothing to extrapolate to. Set "
            "solver.levels=1 for the n -> infinity limit of the depth-M network, or c <= 0"
        )
    coarsest = solver.depth_steps // 2 ** (solver.levels - 1)
    off_grid = [
        t for t in config.run.kernel_depths if abs(t * coarsest - round(t * coarsest)) > 1e-9
    ]
    if off_grid:
        raise ValueError(
            f"run.kernel_depths {off_grid} are not grid points of the coarsest level "
            f"({coarsest} depth steps), so the levels record kernels at different depths; use "
            f"multiples of 1/{coarsest} or fewer solver.levels"
        )
