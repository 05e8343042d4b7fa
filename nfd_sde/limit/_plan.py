"""Before a limit solve: which noise representation is cheaper, and whether the problem fits.

Cost model per training step (multiply-adds, both sweeps, M depth steps, N particles, S stored
training pairs, n = B + P new pairs per forward sweep, B per backward sweep, w initial weight
matrices per block: 1 for one-layer blocks, 2 for two-layer blocks):
  shared (learning drifts):   2 w M N S (n + B)
  field space (+ conditional noise): 2 shared + w M S^2 (n + B)
  weight space (+ Gaussian matrices): shared + w M N^2 (n + B) + 2 w M N^2 * RNG_COST
The `auto` representation picks the smaller; `FIELD_BIAS` scales the field cost to match
measured ratios (see benchmarks/README.md). Standard backprop needs weight space.
"""

import dataclasses

from ..model import Config, block_of

RNG_COST = 8.0
FIELD_BIAS = 1.0


@dataclasses.dataclass(frozen=True)
class LimitPlan:
    representation: str
    stored_pairs: int
    new_pairs: int
    cost_field: float
    cost_weight: float
    bytes_needed: int

    @property
    def gigabytes(self) -> float:
        return self.bytes_needed / 1e9


def limit_costs(
    *,
    particles: int,
    depth_steps: int,
    stored: int,
    batch: int,
    eval_size: int,
    weights: int = 1,
    field_bias: float = FIELD_BIAS,
    rng_cost: float = RNG_COST,
) -> tuple[float, float]:
    """The cost model of the module docstring: (field cost, weight cost) per training step, in
    multiply-adds, for `weights` initial matrices per block."""
    n_part, m, w, new = particles, depth_steps, weights, batch + eval_size
    shared = 2.0 * w * m * n_part * stored * (new + batch)
    field = field_bias * (2 * shared + w * m * stored**2 * (new + batch))
    weight = shared + w * (m * n_part**2 * (new + batch) + 2 * m * n_part**2 * rng_cost)
    return field, weight


def plan_limit(config: Config, *, dim: int, steps: int, batch: int, eval_size: int) -> LimitPlan:
    """Choose the representation and estimate peak memory; refuse what will not fit."""
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
    )
    if solver.representation != "auto":
        representation = solver.representation
    elif solver.backward == "standard":
        representation = "weight"
    else:
        representation = "field" if cost_field <= cost_weight else "weight"
    _check_levels(config)
    itemsize = 8 if config.run.dtype == "float64" else 4
    history = arrays * m * n_part * stored
    paths = 3 * (m + 1) * n_part * new * (2 if block.has_first else 1)
    params = n_part * (dim + config.model.outputs)
    extra = (
        w * (2 * m * n_part * (stored + new) + 2 * m * stored**2)
        if representation == "field"
        else 2 * w * n_part**2
    )
    # the jitted step keeps an input and an output copy of every group's state
    bytes_needed = int(solver.groups * itemsize * (2 * (history + params) + paths + 2 * extra))
    plan = LimitPlan(representation, stored, new, cost_field, cost_weight, bytes_needed)
    limit = solver.memory_limit_gb * 1e9
    if bytes_needed > limit:
        raise ValueError(
            f"the limit solve needs about {plan.gigabytes:.2f} GB "
            f"(solver.memory_limit_gb={solver.memory_limit_gb}): the stored history grows like "
            f"groups x particles x depth_steps x steps*batch = {solver.groups} x {n_part} x {m} x "
            f"{stored}. Reduce solver.groups, solver.particles, solver.depth_steps, "
            "training.steps or training.batch, use "
            "solver.representation='weight' for long runs, or raise solver.memory_limit_gb"
        )
    return plan


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
            "(docs/two_layer_limit.md), so there is nothing to extrapolate to. Set "
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
