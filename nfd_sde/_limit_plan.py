"""Before a limit solve: which noise representation is cheaper, and whether the problem fits.

Cost model per training step (multiply-adds, both sweeps, M depth steps, N particles, S stored
training pairs, n = B + P new pairs per forward sweep, B per backward sweep):
  shared (learning drifts):   2 M N S (n + B)
  field space (+ conditional noise): 2 M N S (n + B) + M S^2 (n + B)
  weight space (+ Gaussian matrices): M N^2 (n + B) + 2 M N^2 * RNG_COST
The `auto` representation picks the smaller; `FIELD_BIAS` scales the field cost to match
measured ratios (see benchmarks/README.md).
"""

import dataclasses

from ._config import Config

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


def plan_limit(config: Config, *, dim: int, steps: int, batch: int, eval_size: int) -> LimitPlan:
    """Choose the representation and estimate peak memory; refuse what will not fit."""
    solver = config.solver
    n_part, m = solver.particles, solver.depth_steps
    stored, new = steps * batch, batch + eval_size
    shared = 2.0 * m * n_part * stored * (new + batch)
    cost_field = FIELD_BIAS * (2 * shared + m * stored**2 * (new + batch))
    cost_weight = shared + m * n_part**2 * (new + batch) + 2 * m * n_part**2 * RNG_COST
    if solver.representation != "auto":
        representation = solver.representation
    elif solver.backward == "standard":
        representation = "weight"
    else:
        representation = "field" if cost_field <= cost_weight else "weight"
    itemsize = 8 if config.run.dtype == "float64" else 4
    history = 2 * m * n_part * stored
    paths = 3 * (m + 1) * n_part * new
    params = n_part * (dim + config.model.outputs)
    extra = (
        2 * m * n_part * (stored + new) + 2 * m * stored**2
        if representation == "field"
        else 2 * n_part**2
    )
    # the jitted step keeps an input and an output copy of the state
    bytes_needed = int(itemsize * (2 * (history + params) + paths + 2 * extra))
    plan = LimitPlan(representation, stored, new, cost_field, cost_weight, bytes_needed)
    limit = solver.memory_limit_gb * 1e9
    if bytes_needed > limit:
        raise ValueError(
            f"the limit solve needs about {plan.gigabytes:.2f} GB "
            f"(solver.memory_limit_gb={solver.memory_limit_gb}): the stored history grows like "
            f"particles x depth_steps x steps*batch = {n_part} x {m} x {stored}. Reduce "
            "solver.particles, solver.depth_steps, training.steps or training.batch, use "
            "solver.representation='weight' for long runs, or raise solver.memory_limit_gb"
        )
    return plan
