"""Sharded against one-device runs, in a process that sees 8 virtual CPU devices.

`XLA_FLAGS=--xla_force_host_platform_device_count=8` must be set before JAX starts, so
`tests/test_sharding.py` runs this module in a subprocess (`python -m tests._sharding_checks`)
and reads the JSON it prints last. The process first joins a one-process distributed run
(`jax.distributed.initialize`, the multi-host code path), then compares, for field space (the
whole `solve_limit`, one- and two-sided), weight space (two jitted steps) and a vmapped finite-network ensemble, the
sharded numbers with the one-device ones (largest difference relative to the largest entry) and
reports the layout the sharded arrays had.
"""

import json
import os
import socket
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from nfd_sde import load_config, load_stream
from nfd_sde.finite import (
    EvalLoss,
    make_network,
    mup_multipliers,
    train_losses,
    train_losses_ensemble,
    train_scan,
)
from nfd_sde.limit import build_groups, jit_step, plan_limit, solve_limit
from nfd_sde.model import loss_of
from solvers import shard_leading_axis

SMALL = [
    "solver.particles=64",
    "solver.depth_steps=2",
    "solver.groups=2",
    "solver.levels=1",
    "solver.driver=scan",
    "training.steps=2",
    "training.batch=2",
    "data.eval_size=2",
    "run.dtype=float64",
]


def relative(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.size == 0 and b.size == 0:  # e.g. a step's coupling record when none is taken
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-300))


def solve_check(backward: str = "decoupled") -> dict:
    """Field space: the whole solve on 8 devices and on 1 (one-sided for decoupled backward
    weights, two-sided for standard backprop)."""
    config = load_config(
        None, [*SMALL, "solver.representation=field", f"solver.backward={backward}"]
    )
    stream = load_stream(config)
    results = {}
    for devices in (8, 1):
        case = config.replace(solver={"devices": devices})
        results[devices] = solve_limit(case, stream, key=jax.random.key(0))
    sharded, single = results[8], results[1]
    differences = [relative(getattr(sharded, n), getattr(single, n)) for n in ("f_eval", "f_train")]
    differences += [relative(sharded.kernels[k], single.kernels[k]) for k in ("feature_eval",)]
    return {
        "difference": max(differences),
        "devices": sharded.producer["devices"],
        "f_eval": np.asarray(single.f_eval).tolist(),
    }


def step_check(representation: str) -> dict:
    """Two jitted steps of the stacked groups on 8 devices and on 1: outputs, and the layout
    (particle axis split, outputs replicated)."""
    config = load_config(None, [*SMALL, f"solver.representation={representation}"])
    stream = load_stream(config)
    runs = {}
    with jax.enable_x64(True):
        for devices in (8, 1):
            case = config.replace(solver={"devices": devices})
            plan = plan_limit(case, dim=stream.dim, steps=2, batch=2, eval_size=2)
            solvers, states = build_groups(
                case, stream, key=jax.random.key(0), plan=plan, refinement=1
            )
            outputs = []
            for k in range(2):
                x = (stream.x_train[k], stream.y_train[k], stream.x_eval)
                states, out = jit_step((solvers, jnp.int32(k), *map(jnp.asarray, x)), states)
                outputs.append(out)
            runs[devices] = (plan, states, outputs)
    plan, states, outputs = runs[8]
    history = states.history["features"]
    updates = states.updates["W"]  # the dense accumulated updates (solver.weight_updates)
    pairs = zip(jax.tree.leaves(outputs), jax.tree.leaves(runs[1][2]))
    return {
        "difference": max(
            max(relative(a, b) for a, b in pairs), relative(states.readout, runs[1][1].readout)
        ),
        "devices": plan.devices,
        "readin_spec": str(states.readin.sharding.spec),
        "history_spec": str(history.sharding.spec),
        "history_shard_shape": list(history.sharding.shard_shape(history.shape)),
        "updates_spec": str(updates.sharding.spec),
        "updates_shard_shape": list(updates.sharding.shard_shape(updates.shape)),
        "updates_difference": relative(updates, runs[1][1].updates["W"]),
        "outputs_replicated": all(a.sharding.is_fully_replicated for a in jax.tree.leaves(outputs)),
    }


def ensemble_check() -> dict:
    """A vmapped `train_scan` over 8 seeds, the seeds split over the devices by
    `solvers.shard_leading_axis`, against the same call on one device."""
    config = load_config(
        None, ["network.width=16", "network.depth=2", "training.steps=3", "run.dtype=float64"]
    )
    stream = load_stream(config)
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(0), 8)
        models = eqx.filter_vmap(lambda key: make_network(config, key=key))(keys)
        args = (
            mup_multipliers(config, make_network(config, key=keys[0])),
            jnp.asarray(config.training.eta),
            *map(jnp.asarray, (stream.x_train, stream.y_train, stream.x_eval, stream.y_eval)),
        )
        train = eqx.filter_vmap(
            lambda model: train_scan(model, *args, loss=loss_of(config), recorder=EvalLoss())
        )
        _, steps_one, losses_one = train(models)
        sharded = shard_leading_axis(models)
        _, steps_sharded, losses_sharded = train(sharded)
        # the transfer sweep's trainer shards its seeds itself: against one run per key
        vmapped = train_losses_ensemble(config, stream, keys=keys)
        per_key = [train_losses(config, stream, key=k).loss_eval for k in keys]
    return {
        "transfer_difference": relative(vmapped.loss_eval, np.stack(per_key)),
        "difference": max(
            relative(losses_sharded, losses_one), relative(steps_sharded.outputs, steps_one.outputs)
        ),
        "input_devices": len(sharded.readin.sharding.device_set),
        "output_devices": len(losses_sharded.sharding.device_set),
        "output_spec": str(losses_sharded.sharding.spec),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    jax.distributed.initialize(f"localhost:{free_port()}", num_processes=1, process_id=0)
    assert len(jax.devices()) == 8, (os.environ.get("XLA_FLAGS"), jax.devices())
    report, times = {"processes": jax.process_count()}, {}
    for name, check in (
        ("solve", solve_check),
        ("standard", lambda: solve_check("standard")),
        ("weight", lambda: step_check("weight")),
        ("ensemble", ensemble_check),
    ):
        tick = time.perf_counter()
        report[name] = check()
        times[name] = round(time.perf_counter() - tick, 1)
    report["seconds"] = times
    print(json.dumps(report))
