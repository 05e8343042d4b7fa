"""What a representation costs per training step and what it keeps, for planning a solve.

Each representation states its own cost and memory from the same `ProblemSizes`
(`AbstractRepresentation.cost`, `.memory`); a planner asks every registered representation
(`solvers.REPRESENTATIONS`) and compares. Cost per training step in multiply-adds, both sweeps,
M depth steps, N particles, S stored training pairs, n new pairs per forward sweep, B per
backward sweep, w initial weight matrices per block:
  shared (the learning drifts, every representation): 2 w M N S (n + B)
  field space:            FIELD_BIAS (2 shared + w M S^2 (n + B))
  two-sided field space:  FIELD_BIAS (TWO_SIDED_COST shared + 2 w M S^2 (n + B)): each product
                          also solves against the other side and projects its fresh noise off it,
                          and the step's products are recomputed once to be stored
  weight space:           drifts + w M N^2 (n + B) + 2 w M N^2 RNG_COST (drawing the matrices;
                          none with dense updates, which keep the matrices drawn once),
                          its drifts those of the form `updates` keeps the accumulated weight
                          updates in (`solvers._accumulated_updates`): the stored pairs (shared)
                          or dense N x N matrices per depth step, w M N^2 (n + 2 B) whatever S
`FIELD_BIAS` and `RNG_COST` are fitted to measured step times (benchmarks/README.md).
"""

import dataclasses

from ._accumulated_updates import STORED_PAIRS, AbstractUpdateForm

RNG_COST = 8.0
FIELD_BIAS = 1.0
TWO_SIDED_COST = 8.0


@dataclasses.dataclass(frozen=True)
class ProblemSizes:
    """The sizes a plan compares representations at (`stored_arrays`: the per-particle arrays
    each stored pair keeps, features and gradients); `field_bias`, `rng_cost`: the cost model's
    fitted constants (module docstring); `updates`: the form in which a representation that
    may keep its accumulated weight updates dense (weight space) keeps them."""

    particles: int
    depth_steps: int
    stored: int
    new: int
    batch: int
    weights: int = 1
    stored_arrays: int = 1
    field_bias: float = FIELD_BIAS
    rng_cost: float = RNG_COST
    updates: AbstractUpdateForm = STORED_PAIRS

    @property
    def shared(self) -> float:
        """The learning drifts' multiply-adds, common to every representation."""
        n, m, w, s = self.particles, self.depth_steps, self.weights, self.stored
        return 2.0 * w * m * n * s * (self.new + self.batch)

    @property
    def factor_cost(self) -> float:
        """One pass over the pairs x pairs factors: w M S^2 (n + B)."""
        return self.weights * self.depth_steps * self.stored**2 * (self.new + self.batch)


@dataclasses.dataclass(frozen=True)
class RepresentationMemory:
    """Elements per particle group: `history`, what the representation adds to the
    per-particle history (streamed with it); `replicated`, the pairs x pairs factors every
    device holds; `working`, everything else it keeps on the device during a step;
    `streamed_working`, what a step streamed from host memory holds on the device besides."""

    history: int = 0
    replicated: int = 0
    working: int = 0
    streamed_working: int = 0
