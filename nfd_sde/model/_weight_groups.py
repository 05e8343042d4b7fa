"""A block's weight groups: each hidden weight matrix of a residual block, declared once.

A block lists its matrices as `WeightGroup`s (`AbstractBlock.weight_groups`), in the limit's
order (W1 before W2, the output layer last); everything that draws, sizes, scales or trains a
hidden matrix reads that list:

* the finite network (`nfd_sde.finite.ResNet`) keeps one stacked (depth, width, width) array per
  group under its `parameter` name (`ResNet.hidden`, `ResNet.backward_offsets`) and hands the
  block's `branch` one layer of them under the same names (`BlockLayer`);
* the learning rates (`_scales`): `lr_multipliers[parameter]` is the group's muP multiplier
  times L^c, the limit's `StepCoefficients.gains[limit]` is M^c, c = `lr_exponent(config,
  group)` (the `training` field that `exponent` names, or 0); the optimiser trains exactly these
  groups besides U and v (`ResNet.parameter_groups`);
* the memory plans count one N x N matrix per group and layer (`finite.network_bytes`) and one
  Gaussian product per group (`limit.plan_limit`);
* the limit: `limit` names the matrix's products (`LimitContext.forward[limit]`,
  `LimitContext.backward[limit]`), and `conditioning` the stored quantities its new products
  are conditioned on; the same two make up its accumulated update (`update_pair`), which the
  limit's learned terms apply (`LimitContext.updates`).
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class WeightGroup:
    """One hidden weight matrix of a block.

    `limit`: its name in the limit ("W", "W1"); `parameter`: the finite network's name for its
    stacked weights ("hidden", "hidden_first"), also its key in `lr_multipliers`;
    `conditioning`: (forward input, backward input), the stored quantities the matrix multiplied
    before, forward and backward; `exponent`: the `training` field c with which its learning rate
    is eta L^c ("first_layer_exponent"), or None for c = 0.
    """

    limit: str
    parameter: str
    conditioning: tuple[str, str]
    exponent: str | None = None

    @property
    def update_pair(self) -> tuple[str, str]:
        """(output, input): the stored quantities whose products make up the matrix's
        accumulated update, sum_j out^j (in^j)^T / N, as a gradient step g a^T is the backward
        input times the forward input (`solvers.AbstractAccumulatedUpdates`)."""
        forward_input, backward_input = self.conditioning
        return backward_input, forward_input

    def __post_init__(self):
        if self.parameter in ("readin", "readout"):
            raise ValueError(f"weight group {self.limit}: {self.parameter!r} names U or v")
