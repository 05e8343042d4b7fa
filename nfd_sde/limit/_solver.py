"""The NFD limit solver: what stays fixed during a solve, and the particles' state.

Each particle is one neuron. It carries its input row U (dim,), readout V (outputs,), and, for
every training pair (step j, input b), the quantities its block stores per depth step (for a
one-layer block the features phi(H^j_m) and loss-gradient paths G^j_{m+1}). A field-space solve
also stores each pair's standard increments and the growing Cholesky factors; a weight-space
solve may keep each matrix's accumulated update as an (N, N) matrix per depth step too
(`update_form`, `solvers.DenseMatrices`).

`LimitSolver` holds the block, the representation of the initial weights, the scheme, the grid and
every coefficient; learning rates, gamma0 and the jitter are traced arrays, so a sweep over them
compiles the step once. Only sizes and variants are static, and where the particles live: a
`mesh` splitting the particle axis over devices, or `host` buffers keeping the per-particle
history in host memory (the plan's `resident` and `streamed` modes).
"""

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from solvers import (
    SCHEMES,
    AbstractAccumulatedUpdates,
    AbstractHistoryStore,
    AbstractRepresentation,
    AbstractScheme,
    AbstractStreamedHistory,
    AbstractUpdateForm,
    AxisMesh,
    DepthGrid,
    FieldNoise,
    TwoSidedFieldSpace,
)

from ..model import (
    AbstractActivation,
    AbstractBlock,
    AbstractLoss,
    AbstractReadout,
    Config,
    DataStream,
    StepCoefficients,
    activation_of,
    block_of,
    limit_coefficients,
    limit_rates,
    loss_of,
    readout_of,
)
from ._plan import LimitPlan


class LimitState(eqx.Module):
    """Particles after k SGD steps: parameters, the stored training-pair history, and what the
    control variates need: the initial readout V^0 and the readout features r(H^0_1) and their
    derivatives r'(H^0_1) of the eval inputs at step 0 (V^0 is independent of every step-0
    forward path, so the particle average of V^0 r(H^0_1(x)) has expectation exactly zero).
    `updates`: what the solver's `update_form` keeps of the accumulated weight updates besides
    the history (None, or an (N, N) matrix per weight and depth step)."""

    readin: Float[Array, "particles dim"]
    readout: Float[Array, "particles outputs"]
    history: dict[str, Float[Array, "steps particles stored"] | AbstractStreamedHistory]
    noise: dict[str, FieldNoise] | None
    updates: dict[str, Float[Array, "steps particles particles"]] | None
    initial_readout: Float[Array, "particles outputs"]
    initial_features: tuple[Float[Array, "particles eval"], Float[Array, "particles eval"]]


class LimitSolver(eqx.Module):
    """Everything fixed during a solve: block, representation, the form of the accumulated
    weight updates, scheme, coefficients, sizes."""

    block: AbstractBlock
    representation: AbstractRepresentation
    update_form: AbstractUpdateForm
    scheme: AbstractScheme
    activation: AbstractActivation
    readout_map: AbstractReadout
    loss: AbstractLoss
    grid: DepthGrid
    coefficients: StepCoefficients
    gamma0: Float[Array, ""]
    readin_rate: Float[Array, ""]
    readout_rate: Float[Array, ""]
    jitter: Float[Array, ""]
    particles: int = eqx.field(static=True)
    eval_size: int = eqx.field(static=True)
    dim: int = eqx.field(static=True)
    outputs: int = eqx.field(static=True)
    batch: int = eqx.field(static=True)
    stored: int = eqx.field(static=True)
    anchors: int = eqx.field(static=True)
    kernel_points: tuple[int, ...] = eqx.field(static=True)
    dtype: str = eqx.field(static=True)
    mesh: AxisMesh | None = eqx.field(static=True, default=None)
    host: AbstractHistoryStore | None = eqx.field(static=True, default=None)
    record_coupling: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if self.record_coupling and not isinstance(self.representation, TwoSidedFieldSpace):
            raise ValueError(
                "recording the reuse coupling needs the two-sided field space (standard backprop "
                "with solver.representation='field')"
            )

    def init_state(self, *, key: PRNGKeyArray, group: int = 0) -> LimitState:
        """U^0 and V^0 i.i.d. N(0, 1) per particle; empty history (identity-padded factors),
        on the device or, with `host` buffers, in host memory (`group`: this system's index
        there)."""
        key_in, key_out = jax.random.split(key)
        n, m, s = self.particles, self.grid.steps, self.stored

        def empty(name):  # a separate buffer per field, so the state can be donated
            if self.host is not None:
                return self.host.empty(name, group)
            return jnp.zeros((m, n, s), self.dtype)

        readout = jax.random.normal(key_out, (n, self.outputs), self.dtype)
        noise = self.representation.init_noise(
            self.block.weights, stored=s, dtype=self.dtype, empty=empty
        )
        return LimitState(
            readin=jax.random.normal(key_in, (n, self.dim), self.dtype),
            readout=readout,
            history={name: empty(name) for name in self.block.stored},
            noise=noise,
            updates=self.update_form.init(
                self.block.update_pairs, steps=m, particles=n, dtype=self.dtype
            ),
            initial_readout=jnp.array(readout),
            initial_features=(
                jnp.zeros((n, self.eval_size), self.dtype),
                jnp.zeros((n, self.eval_size), self.dtype),
            ),
        )

    def accumulated_updates(self, state: LimitState) -> AbstractAccumulatedUpdates:
        """Each matrix's accumulated update in `state`, to apply to vectors."""
        return self.update_form.applied(state.history, state.updates, self.block.update_pairs)


def constrain_state(state: LimitState, mesh: AxisMesh | None) -> LimitState:
    """Inside a traced function: one particle system's state laid out with its particle axis
    split over `mesh` (factors replicated); as it is without a mesh."""
    if mesh is None:
        return state

    def on(x, axis):
        return x if isinstance(x, AbstractStreamedHistory) else mesh.constrain(x, axis)

    noise = state.noise
    if noise is not None:
        noise = {k: FieldNoise(on(v.white, 1), on(v.factor, None)) for k, v in noise.items()}
    updates = state.updates
    if updates is not None:  # the matrices' rows split, as the particles are
        updates = {k: on(v, 1) for k, v in updates.items()}
    return LimitState(
        readin=on(state.readin, 0),
        readout=on(state.readout, 0),
        history={name: on(a, 1) for name, a in state.history.items()},
        noise=noise,
        updates=updates,
        initial_readout=on(state.initial_readout, 0),
        initial_features=tuple(on(a, 0) for a in state.initial_features),
    )


def build_solver(
    config: Config,
    stream: DataStream,
    *,
    key: PRNGKeyArray,
    plan: LimitPlan,
    refinement: int = 1,
    mesh: AxisMesh | None = None,
    host: AbstractHistoryStore | None = None,
) -> LimitSolver:
    """The limit solver for `config` on `stream`'s sizes; `key` draws the noise keys.

    `refinement` r draws every noise on a grid r times finer than `solver.depth_steps` and sums
    it, so solves on nested grids from the same key share their Brownian paths. `mesh` splits
    the particles over devices; `host` keeps their history in host memory."""
    if config.model.block_order != "pre":
        raise ValueError(
            "the NFD limit solver covers pre-activation blocks (model.block_order='pre'); "
            "post-activation blocks are studied with the finite network"
        )
    solver_cfg = config.solver
    grid = DepthGrid(solver_cfg.depth_steps)
    dtype = config.run.dtype
    block = block_of(config)
    representation = plan.kind.build(
        block.weights,
        key=key,
        grid=grid,
        particles=solver_cfg.particles,
        reuse=solver_cfg.mode.reuses_forward_weights,
        dtype=dtype,
        refinement=refinement,
        mesh=mesh,
    )
    if plan.updates.keeps_matrices:  # kept beside the dense updates: drawn once, not per step
        representation = representation.with_matrices_kept(grid.steps)
    rates = limit_rates(config, dtype)
    # with control variates, step 0's eval pairs are stored too (`_step._store_eval`)
    anchors = stream.x_eval.shape[0] if config.solver.control_variates and stream.steps else 0
    return LimitSolver(
        block=block,
        representation=representation,
        update_form=plan.updates,
        scheme=SCHEMES[solver_cfg.driver](),
        activation=activation_of(config),
        readout_map=readout_of(config),
        loss=loss_of(config),
        grid=grid,
        coefficients=limit_coefficients(config, steps=grid.steps, batch=stream.batch, dtype=dtype),
        gamma0=rates["gamma0"],
        readin_rate=rates["readin"],
        readout_rate=rates["readout"],
        jitter=jnp.asarray(solver_cfg.jitter, dtype),
        particles=solver_cfg.particles,
        eval_size=stream.x_eval.shape[0],
        dim=stream.dim,
        outputs=stream.outputs,
        batch=stream.batch,
        stored=stream.steps * stream.batch + anchors,
        anchors=anchors,
        kernel_points=grid.point_indices(config.run.kernel_depths),
        dtype=dtype,
        mesh=mesh,
        host=host,
    )
