"""Before a finite network is built: whether training it fits in the memory of one device.

The bound is `solver.memory_limit_gb`, the one the limit's plan uses (`nfd_sde.limit.plan_limit`),
resolved in one place (`nfd_sde.model.memory_limit_gb`; "auto": 75% of what a GPU reports, else
8 GB). Memory model, per member (one network; an antithetic pair is two), for width n, depth L,
w hidden matrices per block (its weight groups, `AbstractBlock.weight_groups`: 1 for one-layer,
2 for two-layer blocks), r = depth_refinement, itemsize s:

  weights:     copies x w L n^2 x s, copies = 4 (the weights before and after a step, their
               gradient and the update) + 4 for the decoupled backward offsets + r (the draws
               of a depth-rL network the initial weights are summed from);
  activations: 8 x (batch + eval_size) x (w L + 1) x n x s (features, pre-activations and
               their gradients at every layer, and the step's records of them);
  in and out:  4 x n (dim + outputs) x s.

XLA's memory analysis of one compiled SGD step (arguments, outputs and temporaries) measures
0.4-0.5 of the weights' part and 0.6-0.7 of the activations' (CPU; tests/test_finite_plan.py
checks that the plan bounds it within a factor of 3). The weights' part is also what sizes the
seed ensembles' chunks (`default_chunk`). A network
that does not fit is refused before anything is allocated, with what it needs, the limit and
what to reduce.
"""

import dataclasses

from ..model import Config, block_of, memory_limit_gb

COPIES = 4  # weights before and after a step, gradient, update
ACTIVATIONS = 8  # per layer and input: features, pre-activations, their gradients, records


def network_bytes(config: Config, *, depth_refinement: int = 1, antithetic: bool = False) -> int:
    """The weights' part of the memory model (module docstring), per key: one network, or an
    antithetic pair."""
    network = config.network
    matrices = _blocks_matrices(config) * network.width**2
    copies = COPIES * network.mode.weight_copies + depth_refinement
    return (2 if antithetic else 1) * copies * matrices * _itemsize(config)


@dataclasses.dataclass(frozen=True)
class FinitePlan:
    """`bytes_needed`: the estimated peak of training `members` networks at once on one device;
    `limit_gb`: the bound it was checked against (`solver.memory_limit_gb`, resolved)."""

    bytes_needed: int
    limit_gb: float
    members: int = 1

    @property
    def gigabytes(self) -> float:
        return self.bytes_needed / 1e9

    def describe(self) -> str:
        many = f" ({self.members} networks at once)" if self.members > 1 else ""
        return (
            f"plan: finite network{many} about {self.gigabytes:.3g} GB of "
            f"solver.memory_limit_gb={self.limit_gb:g}"
        )


def plan_finite(
    config: Config,
    *,
    batch: int,
    eval_size: int,
    members: int = 1,
    depth_refinement: int = 1,
    antithetic: bool = False,
) -> FinitePlan:
    """Estimate the peak memory of training `members` keys' networks of `config.network` at once
    (module docstring) and refuse, with a ValueError that says what to reduce, what exceeds
    `solver.memory_limit_gb`."""
    network, model = config.network, config.model
    pairs = 2 if antithetic else 1
    s = _itemsize(config)
    weights = network_bytes(config, depth_refinement=depth_refinement, antithetic=antithetic)
    layers = _blocks_matrices(config) + 1
    activations = pairs * ACTIVATIONS * (batch + eval_size) * layers * network.width * s
    ends = pairs * 4 * network.width * (model.dim + model.outputs) * s
    needed = members * (weights + activations + ends)
    limit = memory_limit_gb(config)
    if needed <= limit * 1e9:
        return FinitePlan(needed, limit, members * pairs)
    per_block = len(block_of(config).weight_groups)
    blocks = f"{per_block} matrices per block, " if per_block > 1 else ""
    offsets = "backward offsets, " if network.mode.has_backward_offsets else ""
    many = f" x {members * pairs} networks trained at once" if members * pairs > 1 else ""
    reduce = "network.width or network.depth"
    if activations > weights:
        reduce += ", training.batch or data.eval_size"
    if members > 1:
        reduce += ", the networks trained at once (seeds per chunk)"
    if config.run.dtype == "float64":
        reduce += ", use run.dtype='float32'"
    raise ValueError(
        f"the finite network needs about {needed / 1e9:.3g} GB per device "
        f"(solver.memory_limit_gb={limit:g}): its weights, {offsets}gradients and updates grow "
        f"like depth x width^2 = {network.depth} x {network.width}^2 ({blocks}"
        f"{weights / pairs / 1e9:.3g} GB), its activations like (batch + eval) x depth x width"
        f"{many}. Reduce {reduce}, or raise solver.memory_limit_gb"
    )


def _blocks_matrices(config: Config) -> int:
    """w L: the hidden matrices of the network, one per weight group of each block."""
    return config.network.depth * len(block_of(config).weight_groups)


def _itemsize(config: Config) -> int:
    return 8 if config.run.dtype == "float64" else 4
