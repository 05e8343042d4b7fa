"""A block's limit increments as depth terms (diffrax's term interface), for the schemes of
`solvers`: the forward sweep of new pairs, and the backward sweep of their loss-gradient paths."""

from jaxtyping import PyTree

from solvers import AbstractDepthTerm, DepthGrid

from ..model import AbstractBlock, LimitContext


class ForwardTerm(AbstractDepthTerm):
    block: AbstractBlock
    context: LimitContext
    grid: DepthGrid

    def increment(self, y, m, dt):
        return self.block.forward_increment(y, m, dt, self.context)


class BackwardTerm(AbstractDepthTerm):
    block: AbstractBlock
    context: LimitContext
    grid: DepthGrid
    forward: PyTree

    def increment(self, y, m, dt):
        return self.block.backward_increment(y, m, dt, self.context, self.forward)
