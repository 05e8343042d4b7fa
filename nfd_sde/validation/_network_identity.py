"""The exact cross-check between the limit and the finite network.

With M = L depth steps and N = n particles, the weight-space limit fed a network's own initial
weights (U, v and every W(0), with the network's own backward weights: W(0)^T for standard
backprop, W~(0) = W(0) + D for the decoupled one) computes exactly what the network computes,
step by step: every product with W(0) is the network's matmul and every learned term is the
network's accumulated update acting on its features. `limit_from_network` builds that solver and
state.
"""

import dataclasses

import equinox as eqx
import jax

from solvers import StoredMatrices, TwoSidedFieldSpace, WeightSpace

from ..finite import ResNet
from ..limit import LimitSolver, LimitState, build_solver, plan_for
from ..model import Config, DataStream


def limit_from_network(
    config: Config, stream: DataStream, network: ResNet
) -> tuple[LimitSolver, LimitState]:
    """A weight-space solver and initial state whose random draws are `network`'s weights.

    `config.solver` must ask for the weight representation with `depth_steps` = the network's
    depth and `particles` = its width."""
    plan = plan_for(config, stream)
    if plan.kind is not WeightSpace:
        raise ValueError("the network identity needs solver.representation='weight'")
    if (config.solver.depth_steps, config.solver.particles) != (network.depth, network.width):
        raise ValueError(
            "the network identity needs solver.depth_steps = network depth and "
            "solver.particles = network width"
        )
    solver = build_solver(config, stream, key=jax.random.key(0), plan=plan)
    forward, backward = {}, {}
    offsets = network.backward_offsets
    for group in solver.block.weight_groups:
        matrices = network.hidden[group.parameter]
        name = group.limit
        forward[name] = StoredMatrices(matrices)
        backward[name] = (
            forward[name]
            if offsets is None
            else StoredMatrices(matrices + offsets[group.parameter])
        )
    solver = eqx.tree_at(lambda s: s.representation, solver, WeightSpace(forward, backward))
    state = solver.init_state(key=jax.random.key(1))
    state = eqx.tree_at(lambda s: (s.readin, s.readout), state, (network.readin, network.readout.T))
    return solver, state


def field_limit_from_network(
    config: Config, stream: DataStream, network: ResNet, *, coupling: bool = True
) -> tuple[LimitSolver, LimitState]:
    """A two-sided field-space solver (standard backprop) whose fresh noise is `network`'s own
    initial weights: each new product's unrevealed part is G P a / sqrt(n) with G = W(0), so,
    since W(0) = W* + P_B W(0) P_A exactly, the solve computes what the network computes.

    `config.solver` must ask for field space and standard backprop with `depth_steps` = the
    network's depth and `particles` = its width; the network must use standard backprop."""
    plan = plan_for(config, stream)
    if plan.kind is not TwoSidedFieldSpace:
        raise ValueError(
            "the field-space network identity needs solver.representation='field' and "
            "solver.backward='standard'"
        )
    if (config.solver.depth_steps, config.solver.particles) != (network.depth, network.width):
        raise ValueError(
            "the network identity needs solver.depth_steps = network depth and "
            "solver.particles = network width"
        )
    solver = build_solver(config, stream, key=jax.random.key(0), plan=plan)
    if network.backward_offsets is not None:
        raise ValueError("the field-space network identity needs a standard-backprop network")
    fresh = {
        group.limit: StoredMatrices(network.hidden[group.parameter])
        for group in solver.block.weight_groups
    }
    representation = dataclasses.replace(solver.representation, fresh=fresh, coupling=coupling)
    solver = eqx.tree_at(lambda s: s.representation, solver, representation)
    state = solver.init_state(key=jax.random.key(1))
    state = eqx.tree_at(lambda s: (s.readin, s.readout), state, (network.readin, network.readout.T))
    return solver, state
