"""Before a limit solve: which noise representation, where its particles live, whether it fits.

Every registered representation that serves the solve's backward mode (`solvers.REPRESENTATIONS`,
`SolverConfig.representations`) states its cost per training step and its memory at the
problem's sizes (`solvers.ProblemSizes`; the cost model is in `solvers._representation_costs`).
The plan asks them all, once: `auto` takes the cheapest that fits, a named representation only
that one, and the plan says which and why.

Where the particles live (memory per device, `solver.memory_limit_gb`, resolved by
`nfd_sde.model.memory_limit_gb`):
  resident: the particles are split over `solver.devices` devices (their particle axis; the
            pairs x pairs factors replicated) and the whole history is on them;
  streamed: when that does not fit and the representation can stream, the per-particle history
            (stored features, gradient paths and the representation's own history, white noise or
            the two-sided field space's revealed products: groups x steps x particles x pairs) is kept in host memory and each depth step reads it in
            blocks of particles, on one device (`solver.streaming`: through host callbacks,
            `solvers.HostParticles`, or copied in the compiled step, `solvers.PinnedParticles`);
            the blocks are as few as fit. Everything else (the new pairs' paths, the factors, the weight-space
            matrices) stays on the device.
A representation may also refuse sizes it cannot represent (`refusal`: field space past as many
pairs as particles). A problem that fits with none of its representations, or whose history does
not fit in host memory, is refused with the amount and the knobs that reduce it.

Weight space's dense accumulated updates (`solver.weight_updates`, `ProblemSizes.updates`) stay
on the device: where they do not fit resident, the plan applies the stored pairs and says so.
A solve that records its reuse coupling (`coupling_gap`: `record_coupling`) also holds the new
products and their coupling parts on the whole grid; the plan counts them.
"""

import dataclasses

import jax

from solvers import (
    HISTORY_STORES,
    STORED_PAIRS,
    UPDATE_FORMS,
    AbstractRepresentation,
    AbstractUpdateForm,
    ProblemSizes,
)

from ..model import (
    Config,
    block_of,
    host_memory_bytes,
    lr_exponent,
    memory_limit_gb,
    supported_representations,
)
from ._plan_devices import devices_for, fewest_blocks


@dataclasses.dataclass(frozen=True)
class LimitPlan:
    """`kind`: the chosen representation; `sizes`: the sizes it was costed at; `costs`: every
    candidate's cost per step by name; `bytes_needed`: the estimated peak per device in the
    chosen `mode`; `history_bytes`: the per-particle history of all groups as one buffer;
    `host_bytes`: what a streamed solve keeps in host memory; `reason`: why this
    representation, this mode and this many devices."""

    kind: type[AbstractRepresentation]
    sizes: ProblemSizes
    costs: dict[str, float]
    bytes_needed: int
    devices: int = 1
    mode: str = "resident"
    blocks: int = 1
    history_bytes: int = 0
    host_bytes: int = 0
    reason: str = ""

    @property
    def representation(self) -> str:
        """The chosen representation's name (`solver.representation`)."""
        return self.kind.name

    @property
    def updates(self) -> AbstractUpdateForm:
        """The form in which the chosen representation keeps the accumulated weight updates."""
        return self.kind.updates(self.sizes)

    @property
    def stored_pairs(self) -> int:
        return self.sizes.stored

    @property
    def new_pairs(self) -> int:
        return self.sizes.new

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
            f"plan: {self.kind.label} space, {where}, about {self.gigabytes:.3g} GB per "
            f"device; {self.reason}"
        )


def plan_limit(
    config: Config,
    *,
    dim: int,
    steps: int,
    batch: int,
    eval_size: int,
    available_devices: int | None = None,
    record_coupling: bool = False,
) -> LimitPlan:
    """Choose the representation, the devices and where the history lives (module docstring),
    estimate the peak memory per device; refuse what will not fit. `available_devices`
    defaults to `len(jax.devices())`; `record_coupling`: the step also computes the reuse
    coupling's record (`coupling_gap`), which holds every new product and its coupling part on
    the whole grid, both directions."""
    config = config.replace(solver={"memory_limit_gb": memory_limit_gb(config)})
    solver = config.solver
    _check_levels(config)
    stored = steps * batch + (eval_size if solver.control_variates and steps else 0)
    block = block_of(config)
    sizes = ProblemSizes(
        solver.particles,
        solver.depth_steps,
        stored,
        batch + eval_size,
        batch,
        weights=len(block.weight_groups),
        stored_arrays=len(block.stored),
        updates=UPDATE_FORMS[solver.weight_updates],
    )
    costs = {r.name: r.cost(sizes) for r in solver.representations}
    candidates = sorted(solver.representations, key=lambda r: costs[r.name])
    devices, where = devices_for(solver.devices, solver.particles, available_devices)
    refusals = []
    for kind in candidates:
        refusal = kind.refusal(sizes)
        if refusal is not None:
            refusals.append((kind, refusal))
            continue
        try:
            plan = _place(config, kind, sizes, dim, devices, record_coupling)
        except ValueError as error:
            refusals.append((kind, str(error)))
            continue
        return dataclasses.replace(
            plan,
            costs=costs,
            reason=f"{_choice(solver, kind, candidates, costs, refusals, sizes)}; {where}"
            + (f"; {plan.reason}" if plan.reason else ""),
        )
    if len(refusals) == 1:
        raise ValueError(_with_alternatives(refusals[0][1], refusals[0][0], solver))
    raise ValueError(
        "no representation fits: " + "; ".join(f"{k.label} space: {e}" for k, e in refusals)
    )


def _choice(solver, kind, candidates, costs, refusals, sizes) -> str:
    """Why `kind`: it was asked for, or it is the cheapest that fits (`costs` by name); the
    costlier ones that could not represent the solve anyway are said to be out, not costed."""
    if solver.representation_named:
        return f"solver.representation='{solver.representation}'"
    out = dict(refusals) or {
        r: why for r in candidates if r is not kind and (why := r.refusal(sizes)) is not None
    }
    base = costs[kind.name]  # 0 without stored pairs: then there is nothing to compare
    ratios = ", ".join(
        f"{r.label} {costs[r.name] / base:.3g}"
        for r in candidates
        if r is not kind and base and r not in out
    )
    why = f"auto: {kind.label} space is the cheapest for {solver.mode.description}"
    if refusals:
        why = f"auto: {kind.label} space, the cheapest that fits for {solver.mode.description}"
    if out:
        first, reason = next(iter(out.items()))
        why += f" ({first.label} space is out: {reason})"
    return f"{why} (cost relative to it: {ratios})" if ratios else why


def _with_alternatives(message: str, kind, solver) -> str:
    """A refusal, naming the representations the mode also allows when one was asked for."""
    others = [r.name for r in supported_representations(solver.mode) if r.name != kind.name]
    if not solver.representation_named or not others:
        return message
    return f"{message}; or try solver.representation='{others[0]}'"


def _place(
    config: Config,
    kind,
    sizes: ProblemSizes,
    dim: int,
    devices: int,
    record_coupling: bool = False,
) -> LimitPlan:
    """`kind`'s plan resident on `devices`, or streamed from host memory, or a ValueError that
    says what it needs."""
    solver = config.solver
    block = block_of(config)
    n_part, m, stored, new = sizes.particles, sizes.depth_steps, sizes.stored, sizes.new
    itemsize = 8 if config.run.dtype == "float64" else 4
    history = len(block.stored) * m * n_part * stored
    paths = 3 * (m + 1) * n_part * new * len(block.weight_groups)  # a state path per group
    # the coupling's record: new products and coupling parts, 2 directions (XLA: 3.3 per weight)
    recorded = 4 * m * n_part * new * len(block.weight_groups) if record_coupling else 0
    params = n_part * (dim + config.model.outputs)
    memory = kind.memory(sizes)
    groups = solver.groups
    # the jitted step keeps an input and an output copy of every group's state
    resident = groups * itemsize * (2 * (history + params) + paths + recorded + 2 * memory.working)
    shared = groups * itemsize * 2 * memory.replicated  # replicated on every device
    per_device = (resident - shared) // devices + shared
    limit = solver.memory_limit_gb * 1e9
    history_bytes = groups * itemsize * (history + memory.history)
    if per_device <= limit:
        return LimitPlan(kind, sizes, {}, per_device, devices, "resident", 1, history_bytes)
    if kind.updates(sizes).memory(sizes):  # kept updates stay resident, or the pairs are used
        pairs = dataclasses.replace(sizes, updates=STORED_PAIRS)
        plan = _place(config, kind, pairs, dim, devices, record_coupling)
        dense = (
            f"its accumulated weight updates as {kind.updates(sizes).name} matrices "
            f"(solver.weight_updates) need {per_device / 1e9:.3g} GB per device, more than "
            f"solver.memory_limit_gb={solver.memory_limit_gb}: they are applied from the stored "
            "pairs"
        )
        return dataclasses.replace(plan, reason=f"{dense}; {plan.reason}" if plan.reason else dense)
    if not kind.streamable:
        raise ValueError(
            f"the {kind.label}-space solve ({solver.mode.description}) needs about "
            f"{per_device / 1e9:.3g} GB per device, more than solver.memory_limit_gb="
            f"{solver.memory_limit_gb}, and its history cannot be streamed from host memory: "
            "reduce solver.groups, solver.particles, solver.depth_steps, training.steps or "
            "training.batch, or raise solver.memory_limit_gb"
        )
    # streamed: the per-particle history in host memory, blocks of it on one device
    # the new pairs' paths and what is computed from them (activations, entries, controls):
    # twice the paths' bytes covers what XLA's memory analysis measures (benchmarks/README.md)
    fixed = groups * itemsize * (2 * params + 2 * paths + 2 * (memory.working - memory.history))
    fixed += groups * itemsize * (memory.streamed_working + recorded)
    store = HISTORY_STORES[solver.streaming]
    per_particle = groups * itemsize * 4 * store.buffered * max(stored, 1)  # blocks in flight
    blocks = fewest_blocks(n_part, int((limit - fixed) // per_particle))
    streamed = fixed + per_particle * (n_part // blocks)
    if streamed > limit or not stored:  # (no stored pairs: no history to stream)
        raise ValueError(
            f"the limit solve needs about {per_device / 1e9:.3g} GB per device "
            f"(solver.memory_limit_gb={solver.memory_limit_gb}), and about "
            f"{streamed / 1e9:.3g} GB even with its history in host memory (the new pairs' "
            f"paths and, in weight space, the N x N matrices stay on the device): the stored "
            f"history grows like groups x particles x depth_steps x steps*batch = {groups} x "
            f"{n_part} x {m} x {stored}. Reduce solver.groups, solver.particles, "
            "solver.depth_steps, training.steps or training.batch, or raise "
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
        f"time ({store.transport})"
    )
    if (caveat := store.caveat(jax.default_backend())) is not None:
        reason += f"; {caveat}"
    return LimitPlan(
        kind, sizes, {}, streamed, 1, "streamed", blocks, history_bytes, history_bytes, reason
    )


def _check_levels(config: Config) -> None:
    """Extrapolation in depth needs a limit to extrapolate to, and kernels recorded at depth
    times that are grid points of every level."""
    solver = config.solver
    if solver.levels == 1:
        return
    for group in block_of(config).weight_groups:
        if (exponent := lr_exponent(config, group)) > 0:
            raise ValueError(
                f"{config.model.block} blocks with training.{group.exponent}={exponent} > 0 have "
                f"no infinite-depth limit: {group.limit}'s update (at eta L^c) enters the backward "
                "pass (and, with standard backprop, the forward pass) coherently and grows like "
                "L^c (docs/two_layer.md): nothing to extrapolate to. Set solver.levels=1 for the "
                "n -> infinity limit of the depth-M network, or c <= 0"
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
