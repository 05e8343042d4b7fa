"""The exact cross-check between the limit and the finite network.

With M = L depth steps and N = n particles, the weight-space limit fed a network's own initial
weights (U, v and every W(0), with the network's own backward weights: W(0)^T for standard
backprop, W~(0) = W(0) + D for the decoupled one) computes exactly what the network computes,
step by step: every product with W(0) is the network's matmul and every learned term is the
network's accumulated update acting on its features. `limit_from_network` builds that solver and
state.
"""

import equinox as eqx
import jax

from solvers import StoredMatrices, WeightSpace

from ..finite import ResNet
from ..limit import LimitSolver, LimitState, build_solver
from ..model import Config, DataStream


def limit_from_network(
    config: Config, stream: DataStream, network: ResNet
) -> tuple[LimitSolver, LimitState]:
    """A weight-space solver and initial state whose random draws are `network`'s weights.

    `config.solver` must ask for the weight representation with `depth_steps` = the network's
    depth and `particles` = its width."""
    if config.solver.representation != "weight":
        raise ValueError("the network identity needs solver.representation='weight'")
    if (config.solver.depth_steps, config.solver.particles) != (network.depth, network.width):
        raise ValueError(
            "the network identity needs solver.depth_steps = network depth and "
            "solver.particles = network width"
        )
    solver = build_solver(config, stream, key=jax.random.key(0))
    forward, backward = {}, {}
    for name, (weight, offset) in solver.block.network_weights.items():
        matrices = getattr(network, weight)
        forward[name] = StoredMatrices(matrices)
        offsets = getattr(network, offset)
        backward[name] = forward[name] if offsets is None else StoredMatrices(matrices + offsets)
    solver = eqx.tree_at(lambda s: s.representation, solver, WeightSpace(forward, backward))
    state = solver.init_state(key=jax.random.key(1))
    state = eqx.tree_at(lambda s: (s.readin, s.readout), state, (network.readin, network.readout.T))
    return solver, state
