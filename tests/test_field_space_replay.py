"""Field space replayed by hand: an independent NumPy Euler-Maruyama of the particle system.

For a tiny problem (16 particles, more than the 10 pairs a kernel ever holds; 3 depth steps,
3 SGD steps, 2 outputs, tanh, non-constant depth profiles, gamma0 != 1, trained U and v), the
test rebuilds the field-space scheme of spec section 2 from its equations: the forward step
m -> m+1 with phi(H_m), the stored G^j_{m+1} and the particle kernels; the backward step
m+1 -> m with Gam from G_{m+1}, phi(H^j_m) and phi'(H_m); the noise of every new (step, input)
pair as the growing Cholesky factor of the particle kernel applied to the stored and new
standard increments, guarded as `solver.jitter` says (symmetrise, clip negative eigenvalues, add
jitter times the mean diagonal); every scale from the spec, not from the library. It feeds the
replay the solver's own standard increments (the keyed white noise) and initial U, v, so the two
compute the same numbers: float64, agreement to 1e-12 relative (measured 2e-15; round-off of
~10^3 operations, with room for a different LAPACK). Both drivers (diffrax through
`solve_limit`, the `lax.scan` scheme through the seed ensemble of `tests/_limit_helpers.py`) are
checked against it, which also checks that an ensemble member is the `solve_limit` run of its
key.
"""

import math

import jax
import numpy as np
import pytest

from nfd_sde import load_config, load_stream
from nfd_sde.limit import build_solver, plan_for, solve_limit
from tests._limit_helpers import limit_ensemble

JITTER = 1e-6
SEED = 11


def _config(driver, *overrides):
    return load_config(
        None,
        [
            # one particle system on one depth grid, no control variates: the scheme itself
            "solver.groups=1",
            "solver.levels=1",
            "solver.control_variates=false",
            "model.activation=tanh",
            "model.dim=3",
            "model.outputs=2",
            "model.gamma0=1.5",
            "model.beta_profile=[[0, 1.4], [1, 0.6]]",
            "model.lr_profile=[[0, 0.5], [1, 2.0]]",
            "training.eta=0.9",
            "training.eta_U=0.5",
            "training.eta_v=2.0",
            "training.steps=3",
            "training.batch=2",
            "data.eval_size=2",
            "solver.particles=16",
            "solver.depth_steps=3",
            "solver.representation=field",
            f"solver.driver={driver}",
            f"solver.jitter={JITTER}",
            "run.dtype=float64",
            "run.kernel_depths=[0.0, 0.5, 1.0]",
            *overrides,
        ],
    )


def _guarded_cholesky(matrix, scale):
    sym = 0.5 * (matrix + matrix.T)
    values, vectors = np.linalg.eigh(sym)
    clipped = (vectors * np.maximum(values, 0.0)) @ vectors.T
    return np.linalg.cholesky(0.5 * (clipped + clipped.T) + JITTER * scale * np.eye(len(matrix)))


class _Noise:
    """One initial weight matrix's products at one depth step: the stored pairs' inputs, their
    standard increments and the growing lower-triangular factor of their kernel."""

    def __init__(self, particles):
        self.inputs = np.zeros((particles, 0))
        self.white = np.zeros((particles, 0))
        self.factor = np.zeros((0, 0))

    def rows(self, new):
        n = len(new)
        if not self.inputs.shape[1]:
            rows = np.zeros((new.shape[1], 0))
        else:
            cross = new.T @ self.inputs / n
            rows = np.linalg.solve(self.factor, cross.T).T
        joint = new.T @ new / n
        return rows, _guarded_cholesky(joint - rows @ rows.T, max(np.mean(np.diag(joint)), 1e-300))

    def product(self, new, white):
        rows, block = self.rows(new)
        return self.white @ rows.T + white @ block.T

    def append(self, new, white):
        rows, block = self.rows(new)
        s, b = self.factor.shape[0], new.shape[1]
        factor = np.zeros((s + b, s + b))
        factor[:s, :s], factor[s:, :s], factor[s:, s:] = self.factor, rows, block
        self.factor = factor
        self.inputs = np.concatenate([self.inputs, new], axis=1)
        self.white = np.concatenate([self.white, white], axis=1)


def _replay(config, stream, readin, readout, white):
    """The field-space particle system of spec section 2, step by step, in NumPy."""
    model, training = config.model, config.training
    n, steps = len(readin), config.solver.depth_steps
    k_steps, batch, dim = stream.x_train.shape
    dt = 1.0 / steps
    t = np.arange(steps) * dt
    with jax.enable_x64(True):  # profiles are jax functions: evaluate them in float64
        beta = np.asarray(model.beta_profile(t), float)
        lr = np.asarray(model.lr_profile(t), float)
    eta = training.eta * model.gamma0
    drift = eta * training.eta_W * lr * beta**2 / batch
    points = [int(math.floor(s * steps + 0.5)) for s in config.run.kernel_depths]
    forward = [_Noise(n) for _ in range(steps)]
    backward = [_Noise(n) for _ in range(steps)]
    features = [np.zeros((n, 0)) for _ in range(steps)]  # phi(H^j_m)
    grads = [np.zeros((n, 0)) for _ in range(steps)]  # G^j_{m+1}
    out = {k: [] for k in ("f_train", "f_eval", "feature_train", "feature_eval", "grad_train")}

    def forward_path(x, noise):
        path = [readin @ x.T / math.sqrt(dim)]
        for m in range(steps):
            a = np.tanh(path[-1])
            learned = grads[m] @ (features[m].T @ a / n)
            z = forward[m].product(a, noise[m])
            path.append(path[-1] + beta[m] * math.sqrt(dt) * z - drift[m] * dt * learned)
        return path

    def gram(a):
        return a.T @ a / n

    for k in range(k_steps + 1):
        x = stream.x_eval if k == k_steps else np.concatenate([stream.x_train[k], stream.x_eval])
        path = forward_path(x, white["forward"][k])
        f = np.tanh(path[-1]).T @ readout / n / model.gamma0
        out["f_eval"].append(f[-len(stream.x_eval) :])
        out["feature_eval"].append(
            [gram(np.tanh(path[p][:, -len(stream.x_eval) :])) for p in points]
        )
        if k == k_steps:
            break
        out["f_train"].append(f[:batch])
        out["feature_train"].append([gram(np.tanh(path[p][:, :batch])) for p in points])
        chi = f[:batch] - stream.y_train[k]  # MSE
        h = [p[:, :batch] for p in path]
        g_path = [None] * (steps + 1)
        g_path[steps] = (readout @ chi.T) * (1.0 - np.tanh(h[steps]) ** 2)
        for m in reversed(range(steps)):
            g, multiplier = g_path[m + 1], 1.0 - np.tanh(h[m]) ** 2
            learned = features[m] @ (grads[m].T @ g / n)
            z = backward[m].product(g, white["backward"][k][m])
            g_path[m] = g + multiplier * (beta[m] * math.sqrt(dt) * z - drift[m] * dt * learned)
        out["grad_train"].append([gram(g_path[p]) for p in points])
        readin = readin - eta * training.eta_U / batch * g_path[0] @ stream.x_train[k] / math.sqrt(
            dim
        )
        readout = readout - eta * training.eta_v / batch * np.tanh(h[steps]) @ chi
        for m in range(steps):
            forward[m].append(np.tanh(h[m]), white["forward"][k][m][:, :batch])
            backward[m].append(g_path[m + 1], white["backward"][k][m])
            features[m] = np.concatenate([features[m], np.tanh(h[m])], axis=1)
            grads[m] = np.concatenate([grads[m], g_path[m + 1]], axis=1)
    return {k: np.asarray(v) for k, v in out.items()}


def _replayed(config):
    stream = load_stream(config)
    with jax.enable_x64(True):
        key_solver, key_state = jax.random.split(jax.random.key(SEED))
        solver = build_solver(config, stream, key=key_solver, plan=plan_for(config, stream))
        state = solver.init_state(key=key_state)
        pairs = stream.batch + len(stream.x_eval)
        white = {
            "forward": [
                np.asarray(solver.representation.new_white("forward", k, pairs, "float64")["W"])
                for k in range(stream.steps)
            ]
            + [
                np.asarray(
                    solver.representation.new_white(
                        "forward", stream.steps, len(stream.x_eval), "float64"
                    )["W"]
                )
            ],
            "backward": [
                np.asarray(
                    solver.representation.new_white("backward", k, stream.batch, "float64")["W"]
                )
                for k in range(stream.steps)
            ],
        }
        readin, readout = np.asarray(state.readin), np.asarray(state.readout)
    return stream, _replay(config, stream, readin, readout, white)


@pytest.fixture(scope="module")
def replayed():
    return _replayed(_config("diffrax"))


def _assert_same(run, replay, tol=1e-12):
    for name, want in replay.items():
        got = np.asarray(run[name])
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max(), err_msg=name)


def test_solve_limit_is_the_hand_written_scheme(replayed):
    stream, replay = replayed
    result = solve_limit(_config("diffrax"), stream, key=jax.random.key(SEED))
    run = {"f_train": result.f_train, "f_eval": result.f_eval, **result.kernels}
    _assert_same(run, replay)
    # the problem trains: outputs move far beyond the tolerance
    assert np.abs(replay["f_eval"][-1] - replay["f_eval"][0]).max() > 0.05


def test_scan_driver_in_a_seed_ensemble_is_the_hand_written_scheme(replayed):
    stream, replay = replayed
    run = limit_ensemble(_config("scan"), stream, [SEED])
    _assert_same({k: v[0] for k, v in run.items()}, replay)


# A history longer than one block of the triangular solve (`solvers._triangular.BLOCK` = 128
# slots): 9 steps of 16 pairs = 144 slots, 160 particles (more than the stored and eval pairs, as field space requires). The
# blocked solve inverts 128 x 128 diagonal tiles explicitly, which amplifies round-off by the
# tiles' condition number (jitter 1e-6 relative: up to ~1e3 on the factor), so 1e-12 becomes
# 1e-9 here; a wrong row or a skipped block is an O(1) error.
LONG = ("training.steps=9", "training.batch=16", "solver.particles=160")


def test_long_history_solve_is_the_hand_written_scheme():
    config = _config("diffrax", *LONG)
    stream, replay = _replayed(config)
    assert stream.steps * stream.batch > 128
    result = solve_limit(config, stream, key=jax.random.key(SEED))
    run = {"f_train": result.f_train, "f_eval": result.f_eval, **result.kernels}
    _assert_same(run, replay, tol=1e-9)
