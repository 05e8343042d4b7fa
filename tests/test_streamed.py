"""Memory-bounded solves: a history that does not fit in `solver.memory_limit_gb` is
kept in host memory and streamed to the device in particle blocks, with the resident numbers,
in the one-sided field space and in the two-sided one of standard backprop.

Tolerance 1e-10 relative to each array's largest entry, in float64: a streamed solve computes
the same particle averages as a sum over blocks in a fixed order instead of one product, about
1e-16 relative per kernel entry, and the factorisations' relative jitter of 1e-6 bounds how much
that is amplified (1e-16 / 1e-6); measured about 1e-15.
"""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.limit import build_groups, jit_step, plan_limit, solve_limit
from solvers import PinnedParticles

PROBLEM = [
    "solver.particles=128",
    "solver.depth_steps=4",
    "solver.groups=2",
    "solver.levels=1",
    "solver.driver=scan",
    "solver.representation=field",
    "training.steps=12",
    "training.batch=2",
    "data.eval_size=2",
    "run.dtype=float64",
]


def _plan(config, stream):
    """The plan, with the coupling's record where `_compiled_step` records it."""
    eval_size = stream.x_eval.shape[0]
    sizes = dict(dim=stream.dim, steps=stream.steps, batch=stream.batch, eval_size=eval_size)
    return plan_limit(config, **sizes, record_coupling=_records(config))


def _records(config) -> bool:
    return config.solver.backward == "standard"


def _inputs(solvers, stream, k):
    x = map(jnp.asarray, (stream.x_train[k], stream.y_train[k], stream.x_eval))
    return (solvers, jnp.int32(k), *x)


def _compiled_step(config, stream, plan):
    """The groups' solvers and states placed as `plan` says, their step compiled, and (XLA's
    memory for one step: arguments + outputs + temporaries, less what the donated state
    shares; the bytes of the history buffers in host memory). A standard-backprop solver
    records its reuse coupling (as `coupling_gap` does). Call under `enable_x64`."""
    solvers, states = build_groups(config, stream, key=jax.random.key(0), plan=plan, refinement=1)
    if _records(config):
        solvers = dataclasses.replace(solvers, record_coupling=True)
    compiled = jit_step.lower(_inputs(solvers, stream, 0), states).compile()
    stats = compiled.compiled.memory_analysis()
    used = (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )
    host = solvers.host.nbytes if solvers.host is not None else 0
    return solvers, states, compiled, (used, host)


def _device_bytes(config, stream, plan) -> tuple[int, int]:
    with jax.enable_x64(config.run.dtype == "float64"):
        return _compiled_step(config, stream, plan)[-1]


# with standard backprop's reuse-coupling record (no depth steps unless the solver records it)
OUTPUTS = (
    "f_train",
    "f_eval",
    "feature_train",
    "feature_eval",
    "grad_train",
    "controls",
    "coupling",
)


def _every_step(config, stream, plan):
    """Every SGD step's outputs (stacked on a leading step axis, NumPy) from one compiled step
    placed as `plan` says, (device bytes, host bytes) as `_compiled_step`, and the step itself:
    whether it calls back to the host, whether its initial state was committed to the device,
    the final state."""
    with jax.enable_x64(config.run.dtype == "float64"):
        solvers, states, step, sizes = _compiled_step(config, stream, plan)
        callbacks = re.search(r'custom_call_target="[^"]*callback', step.compiled.as_text())
        committed = all(leaf.committed for leaf in jax.tree.leaves(states))
        outputs = []
        for k in range(stream.steps):
            states, out = step(_inputs(solvers, stream, k), states)
            outputs.append(jax.tree.map(np.asarray, out))
    run = {"callbacks": bool(callbacks), "committed": committed, "states": states}
    return jax.tree.map(lambda *a: np.stack(a), *outputs), sizes, run


def _assert_same_outputs(want, got, *, recorded):
    """Every output of `OUTPUTS` equal to the module docstring's tolerance; with `recorded`,
    the coupling record holds every depth step and is not zero (so its comparison can fail)."""
    if recorded:
        assert want.coupling.shape[-2] > 0 and np.abs(want.coupling).max() > 0
    for name in OUTPUTS:
        for a, b in zip(jax.tree.leaves(getattr(want, name)), jax.tree.leaves(getattr(got, name))):
            assert a.shape == b.shape, name
            if a.size:
                atol = 1e-10 * np.abs(a).max()
                np.testing.assert_allclose(b, a, rtol=0, atol=atol, err_msg=name)


def test_a_history_over_the_limit_is_streamed_in_blocks_with_the_resident_numbers():
    config = load_config(None, PROBLEM)
    stream = load_stream(config)
    resident_plan = _plan(config, stream)
    assert resident_plan.mode == "resident"
    limit_gb = 0.3 * resident_plan.bytes_needed / 1e9
    bounded = config.replace(solver={"memory_limit_gb": limit_gb})
    plan = _plan(bounded, stream)
    assert plan.mode == "streamed" and plan.blocks == 4, plan.describe()
    assert "kept in host memory" in plan.describe()

    device, host = _device_bytes(bounded, stream, plan)
    limit = limit_gb * 1e9
    assert host == plan.history_bytes > limit  # the history as one buffer would not fit
    assert device <= limit, (device, limit)  # measured: what the streamed step holds

    resident = solve_limit(config, stream, key=jax.random.key(0))
    streamed = solve_limit(bounded, stream, key=jax.random.key(0))
    assert streamed.producer["placement"] == "streamed"
    for name in ("f_eval", "f_train", "loss_eval"):
        want, got = np.asarray(getattr(resident, name)), np.asarray(getattr(streamed, name))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())
    for name in ("feature_eval", "grad_train"):
        want, got = resident.kernels[name], streamed.kernels[name]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * np.abs(want).max())


STANDARD = [
    "solver.particles=128",
    "solver.depth_steps=2",
    "solver.groups=1",
    "solver.levels=1",
    "solver.driver=scan",
    "solver.representation=field",
    "solver.backward=standard",
    "training.steps=12",
    "training.batch=2",
    "data.eval_size=2",
    "run.dtype=float64",
]


@pytest.mark.parametrize(
    "block, fraction",
    [("one_layer", 0.49), pytest.param("two_layer", 0.455, marks=pytest.mark.slow)],
)
def test_a_two_sided_history_is_streamed_in_blocks_with_the_resident_numbers(block, fraction):
    """Standard backprop in field space (`solvers.TwoSidedFieldSpace`, whose history holds the
    revealed products C, D besides the stored inputs) over the memory limit is planned streamed,
    not refused, and 12 SGD steps of minibatches of 2 (with control variates: step 0's eval
    pairs stored too) in 4 particle blocks give every step's outputs, kernels and control
    statistics of the resident solve (tolerance: the module docstring). XLA's memory analysis
    of the streamed step is under the limit."""
    config = load_config(None, [*STANDARD, f"model.block={block}"])
    stream = load_stream(config)
    resident_plan = _plan(config, stream)
    assert resident_plan.mode == "resident" and config.solver.control_variates
    limit_gb = fraction * resident_plan.bytes_needed / 1e9
    bounded = config.replace(solver={"memory_limit_gb": limit_gb})
    plan = _plan(bounded, stream)
    assert plan.representation == "field"
    assert plan.mode == "streamed" and plan.blocks == 4, plan.describe()

    want, _, _ = _every_step(config, stream, resident_plan)
    got, (device, host), run = _every_step(bounded, stream, plan)
    assert run["callbacks"]  # (so the check that the memory-kinds step has none can fail)
    assert host == plan.history_bytes
    assert device <= limit_gb * 1e9, (device, limit_gb * 1e9)
    _assert_same_outputs(want, got, recorded=_records(config))
    scale = np.abs(want.f_eval).max()
    assert np.abs(want.f_eval[-1] - want.f_eval[0]).max() > 1e-2 * scale  # it trained


def test_the_automatic_memory_limit():
    """solver.memory_limit_gb = "auto" (the default): 75% of what the devices report (a GPU
    does; a CPU does not, so 8 GB here), resolved in the plan; other strings are refused."""
    from nfd_sde.limit import device_memory_gb

    assert load_config(None, []).solver.memory_limit_gb == "auto"
    reported = [d.memory_stats() for d in jax.devices()]
    if not any(stats and stats.get("bytes_limit") for stats in reported):
        assert device_memory_gb() == 8.0
    sizes = {"dim": 8, "steps": 4, "batch": 4, "eval_size": 4}
    auto = plan_limit(load_config(None, []), **sizes)
    fixed = plan_limit(load_config(None, [f"solver.memory_limit_gb={device_memory_gb()}"]), **sizes)
    assert auto == fixed
    with pytest.raises(ValueError, match='must be "auto"'):
        load_config(None, ["solver.memory_limit_gb=lots"])


@pytest.mark.parametrize(
    "problem, fraction", [(PROBLEM, 0.3), (STANDARD, 0.46)], ids=["one_sided", "two_sided"]
)
def test_a_history_in_the_devices_host_memory_is_streamed_without_callbacks(problem, fraction):
    """solver.streaming = "memory_kinds" (`solvers.PinnedParticles`): the history is an array in
    the device's `pinned_host` memory, its blocks moved to the device inside the compiled step.
    Every step's outputs, kernels and control statistics equal the resident solve's (tolerance:
    the module docstring), in the one-sided field space with 2 groups (the groups' histories
    are read by one batched slice, `custom_vmap`) and the two-sided one; the compiled step has
    no host callback (the two-sided "callbacks" step above has, which shows the check can
    fail), and the histories stay in host memory across the steps (donated and updated in
    place), with the initial state placed as the step's outputs are (else `jit_step` compiles
    twice)."""
    config = load_config(None, problem)
    stream = load_stream(config)
    resident_plan = _plan(config, stream)
    limit_gb = fraction * resident_plan.bytes_needed / 1e9
    pinned = config.replace(solver={"memory_limit_gb": limit_gb, "streaming": "memory_kinds"})
    plan = _plan(pinned, stream)
    assert plan.mode == "streamed" and plan.blocks > 1, plan.describe()
    assert "copied inside the compiled step" in plan.describe()
    if jax.default_backend() == "cpu":
        assert "saves no memory there" in plan.describe()

    want, _, _ = _every_step(config, stream, resident_plan)
    got, (_, host), run = _every_step(pinned, stream, plan)
    assert host == plan.history_bytes
    assert not run["callbacks"]
    # placed as the step's outputs are (committed), so the jitted step compiles once
    assert run["committed"]
    _assert_same_outputs(want, got, recorded=_records(config))

    pinned_leaves = jax.tree.leaves(run["states"], is_leaf=lambda x: isinstance(x, PinnedParticles))
    kinds = {x.array.sharding.memory_kind for x in pinned_leaves if isinstance(x, PinnedParticles)}
    assert kinds == {"pinned_host"}
