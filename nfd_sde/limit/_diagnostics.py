"""Diagnostics read off the particles after a solve (not part of the Result schema)."""

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ..model import Config, DataStream, TwoLayer, block_of
from ._groups import build_groups, run_groups
from ._measured_plan import plan_for


def first_layer_changes(config: Config, stream: DataStream, *, key: PRNGKeyArray) -> np.ndarray:
    """Two-layer blocks: the first internal layer's learned change after all of `stream`'s
    steps, Delta u_m = Delta W_{m+1,1} phi(H^0_m) / sqrt(n), rms over particles and step 0's
    minibatch (whose features are stored), at every depth step m; (groups, M). One depth level:
    the n -> infinity limit of the depth-M network, which finite networks of depth L = M
    approach (`experiments.run_collapse` measures them the same way)."""
    if not isinstance(block_of(config), TwoLayer):
        raise ValueError("first-layer changes need model.block='two_layer'")
    config = config.replace(solver={"levels": 1})
    plan = plan_for(config, stream)
    with jax.enable_x64(config.run.dtype == "float64"):
        solvers, states = build_groups(config, stream, key=key, plan=plan, refinement=1)
        state = run_groups(solvers, states, stream, dtype=config.run.dtype, progress=False)[
            "final_state"
        ]
        batch, dt = stream.batch, 1.0 / config.solver.depth_steps

        def rms_change(solver, state):
            history, updates = state.history, solver.accumulated_updates(state)

            def at(m):
                step0 = history["features"][m][:, :batch]
                change = solver.block.learned_internal(updates, solver.coefficients, m, step0, dt)
                return jnp.sqrt(jnp.mean(change**2))

            return jax.vmap(at)(jnp.arange(solver.grid.steps))

        return np.asarray(jax.jit(jax.vmap(rms_change))(solvers, state))
