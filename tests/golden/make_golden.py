"""Writes tests/golden/golden.npz: float64 results of `solve`, `train` and `compare` on small
configs. `tests/test_golden.py` reproduces every array to 1e-12, so a change that is meant to
move no number (a refactor) is checked against the numbers of the code before it.

    .venv/bin/python tests/golden/make_golden.py      # rewrite only when a number is meant to move
"""

import tempfile
from pathlib import Path

import jax
import numpy as np

import nfd_sde

HERE = Path(__file__).resolve().parent
BASE = [
    "model.activation=tanh",
    "model.dim=4",
    "model.outputs=2",
    "training.eta=0.7",
    "training.steps=3",
    "training.batch=2",
    "data.eval_size=3",
    "network.width=24",
    "network.depth=4",
    "solver.particles=96",
    "solver.depth_steps=4",
    # one particle system on one depth grid without control variates: the solve as it was
    # before groups, levels and control variates existed
    "solver.groups=1",
    "solver.levels=1",
    "solver.control_variates=false",
    "run.dtype=float64",
    "run.kernel_depths=[0.0, 0.5, 1.0]",
]
SOLVES = {
    "solve_field": ["solver.representation=field"],
    "solve_weight": ["solver.representation=weight"],
    "solve_weight_standard": ["solver.representation=weight", "solver.backward=standard"],
    "solve_scan": ["solver.representation=field", "solver.driver=scan"],
    "solve_relu_profiles": [
        "model.activation=relu",
        "model.beta_profile=[[0, 1.5], [1, 0.5]]",
        "model.lr_profile=[[0, 0.5], [1, 2]]",
        "solver.representation=field",
    ],
    "solve_cross_entropy": ["training.loss=cross_entropy", "model.outputs=3"],
}
TRAINS = {
    "train_decoupled": ["network.backward=decoupled"],
    "train_standard": ["network.backward=standard"],
    "train_two_layer": ["model.block=two_layer", "training.first_layer_exponent=0.5"],
    "train_two_layer_decoupled": ["model.block=two_layer", "network.backward=decoupled"],
    "train_post": ["model.block_order=post", "model.activation=relu"],
    "train_gamma0_linear": ["model.gamma0=2.0", "model.readout=linear"],
}
FIELDS = ("f_train", "f_eval", "loss_train", "loss_eval")
KERNELS = ("feature_eval", "feature_train", "grad_train")


def arrays(result, prefix):
    out = {f"{prefix}/{name}": np.asarray(getattr(result, name)) for name in FIELDS}
    out |= {f"{prefix}/{name}": np.asarray(result.kernels[name]) for name in KERNELS}
    return out


def compute() -> dict[str, np.ndarray]:
    out = {}
    for name, extra in SOLVES.items():
        config = nfd_sde.load_config(None, [*BASE, *extra])
        result = nfd_sde.solve_limit(config, nfd_sde.load_stream(config), key=jax.random.key(7))
        out |= arrays(result, name)
    for name, extra in TRAINS.items():
        config = nfd_sde.load_config(None, [*BASE, *extra])
        result = nfd_sde.train_finite(config, nfd_sde.load_stream(config), key=jax.random.key(8))
        out |= arrays(result, name)
    config = nfd_sde.load_config(None, BASE)
    with tempfile.TemporaryDirectory() as runs:
        data = nfd_sde.run_compare(
            config,
            nfd_sde.load_stream(config),
            **COMPARE,
            key=jax.random.key(9),
            out_dir=runs,
        )
        out |= compare_arrays(data, nfd_sde.experiments.read_compare_runs(runs))
    return out


# The golden numbers were written by the first design of `compare` (one limit on M = 4 steps for
# every depth, `train_finite` per seed, no common noise, no antithetic pairs); these options
# reproduce that computation.
COMPARE = dict(widths=[8, 16], depths=[2, 4], seeds=2, particles=64, depth_steps=4, limit_seeds=2)
COMPARE |= dict(common_noise=False, antithetic=False, vmap_seeds=False)


def compare_arrays(data, runs) -> dict[str, np.ndarray]:
    (limit,) = data["limits"]
    out = {"compare/limit_f_eval": np.asarray(limit["f_eval"])}
    for i, f_eval in enumerate(limit["solve_f_eval"]):
        out[f"compare/limit_seed{i}_f_eval"] = np.asarray(f_eval)
    for mode in ("decoupled", "standard"):
        for width in COMPARE["widths"]:
            for depth in COMPARE["depths"]:
                for seed in range(COMPARE["seeds"]):
                    run = runs[f"{mode}_n{width}_L{depth}_seed{seed}"]
                    tag = f"compare/{mode}_n{width}_L{depth}_s{seed}"
                    out[f"{tag}/f_eval"] = np.asarray(run["f_eval"][0])
                    out[f"{tag}/f_train"] = np.asarray(run["f_train"][0])
    return out


if __name__ == "__main__":
    np.savez(HERE / "golden.npz", **compute())
    print(f"wrote {HERE / 'golden.npz'}")
