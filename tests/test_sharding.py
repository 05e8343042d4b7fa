"""Particles split over devices give the one-device numbers.

The checks run in a subprocess that sees 8 virtual CPU devices (`tests/_sharding_checks.py`;
the XLA flag must be set before JAX starts) and has joined a one-process distributed run.

Tolerance 1e-10 relative to each array's largest entry, in float64: the sharded and the
one-device solves draw the same noise (random draws do not depend on the sharding) and differ
only in the order of the sums in the particle averages (a local sum per device, then an
all-reduce), about 1e-16 relative per kernel entry; the kernels' Schur complements are
factorised with a relative jitter of 1e-6 (`solver.jitter`), which bounds how much the
factorisations amplify that, to about 1e-16 / 1e-6 = 1e-10. Measured: about 1e-14. The
ensemble members do not interact, so they must agree to float64 round-off of the same
operations (1e-12).
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream, read_result
from nfd_sde.limit import plan_limit, solve_limit

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-10


@pytest.fixture(scope="module")
def report():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    done = subprocess.run(
        [sys.executable, "-m", "tests._sharding_checks"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_sharded_solve_gives_the_one_device_numbers(report):
    assert report["processes"] == 1  # the multi-host runtime (jax.distributed) was joined
    assert report["solve"]["devices"] == 8
    assert report["solve"]["difference"] < TOLERANCE


def test_a_sharded_two_sided_solve_gives_the_one_device_numbers(report):
    """Standard backprop in field space: the extra particle averages (against the other side's
    stored products and inputs) are all-reduced like the others; same tolerance."""
    assert report["standard"]["devices"] == 8
    assert report["standard"]["difference"] < TOLERANCE


def test_weight_space_steps_are_sharded_by_particles(report):
    weight = report["weight"]
    assert weight["devices"] == 8
    assert weight["difference"] < TOLERANCE
    # stacked states: (groups, particles, dim) and (groups, steps, particles, stored)
    assert weight["readin_spec"] == "P(None, 'particles')"
    assert weight["history_spec"] == "P(None, None, 'particles')"
    assert weight["history_shard_shape"] == [2, 2, 64 // 8, 6]
    # the dense accumulated updates (groups, steps, particles, particles): rows split
    assert weight["updates_spec"] == "P(None, None, 'particles')"
    assert weight["updates_shard_shape"] == [2, 2, 64 // 8, 64]
    assert weight["updates_difference"] < TOLERANCE
    assert weight["outputs_replicated"]  # particle averages: all-reduced, on every device


def test_a_vmapped_finite_ensemble_is_split_over_devices(report):
    ensemble = report["ensemble"]
    assert ensemble["input_devices"] == ensemble["output_devices"] == 8
    assert ensemble["output_spec"] == "P('ensemble',)"
    assert ensemble["difference"] < 1e-12
    # the transfer sweep's seeds: vmapped and split over the devices = one run per key
    assert ensemble["transfer_difference"] < 1e-12


def test_the_device_count_is_checked_before_any_work():
    config = load_config(None, ["solver.particles=96", "solver.devices=4"])
    sizes = {"dim": 8, "steps": 4, "batch": 4, "eval_size": 8}
    assert plan_limit(config, **sizes, available_devices=8).devices == 4
    with pytest.raises(ValueError, match=r"solver.devices=4, but JAX sees 2 device"):
        plan_limit(config, **sizes, available_devices=2)
    odd = config.replace(solver={"particles": 90})
    with pytest.raises(ValueError, match="does not divide solver.particles=90"):
        plan_limit(odd, **sizes, available_devices=8)
    # "all": the most visible devices that split the particles evenly
    every = config.replace(solver={"devices": "all"})
    assert plan_limit(every, **sizes, available_devices=8).devices == 8
    assert plan_limit(every, **sizes, available_devices=5).devices == 4
    with pytest.raises(ValueError, match='solver.devices=0: must be "all"'):
        config.replace(solver={"devices": 0})


@pytest.mark.slow
def test_two_processes_give_the_one_process_numbers(tmp_path):
    """`nfd-sde --distributed` in two processes of 2 virtual devices each (one mesh of 4, sums
    exchanged through Gloo), against the same solve in this process on one device."""
    overrides = ["solver.driver=scan", "run.dtype=float64", "training.steps=2"]
    sizes = ["--particles", "64", "--depth-steps", "4", "--groups", "2", "--levels", "1"]
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "nfd_sde._cli", "--distributed", "--coordinator"]
            + [f"localhost:{port}", "--num-processes", "2", "--process-id", str(i), "solve"]
            + sizes
            + [f"--set={o}" for o in overrides]
            + ["--out", str(tmp_path / "multi")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = [p.communicate(timeout=900)[0] for p in processes]
    assert all(p.returncode == 0 for p in processes), logs
    multi = read_result(tmp_path / "multi" / "result.json")
    assert multi.producer["devices"] == 4
    config = load_config(None, [*overrides, "solver.particles=64", "solver.depth_steps=4"])
    config = config.replace(solver={"groups": 2, "levels": 1, "devices": 1})
    single = solve_limit(config, load_stream(config), key=jax.random.key(config.run.seed))
    want = np.asarray(single.f_eval)
    np.testing.assert_allclose(multi.f_eval, want, rtol=0, atol=TOLERANCE * np.abs(want).max())
