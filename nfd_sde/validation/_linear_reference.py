"""The exact N -> infinity value of the M-step decoupled NFD scheme for a linear activation.

With phi(h) = h, the decoupled NFD system of spec section 2 on an M-step grid is linear in jointly
Gaussian sources with deterministic coefficients: every kernel (Phi, Gam), every output f and so
every chi = ell'(f, y) is an expectation, hence a number, and every particle quantity (U, V,
H^k_m(x), G^k_m(x)) is a linear combination of
  * the coordinates of U^0 (dim of them) and V^0 (outputs of them), i.i.d. N(0, 1), and
  * the values of the initial weights' products: at depth step m, W(0) a / sqrt(n) -> Z_m(a) and
    W~(0)^T g / sqrt(n) -> Z~_m(g), two independent isonormal Gaussian fields (E[Z_m(a) Z_m(b)] =
    E[a b]), independent across m and of U^0, V^0.
So each particle quantity is represented exactly by its coordinate vector over independent standard
Gaussians, an expectation E[a b] is the dot product of two vectors, and Z_m(a) is a linear isometry
from the span of the inputs the field has seen onto fresh coordinates (Gram-Schmidt: the same
growing Cholesky factor as field space, without particles). Eval inputs are fed through the same
fields, so they are conditioned on every earlier pair and on each other, as in the finite network.

The recursion is the scheme of `nfd_sde.limit` (forward step m reads phi(H_m) and the stored
G^j_{m+1}; backward step m+1 -> m reads Gam from G_{m+1} and phi(H^j_m); coefficients at t_m), with
the scales of spec sections 1-2 restated here from the spec, not read from `nfd_sde.model._scales`,
so the reference shares no code with the solver beyond the config and the loss derivative. It has
no Monte Carlo error and no discretisation mismatch: solver results at N particles differ from it
by Monte Carlo error (and an O(1/N) bias) only. Cost: O(K (B + P) M D^2) with D the number of
coordinates, at most dim + outputs + M (K + 1)(2B + P); milliseconds for test-sized problems.
"""

import math

import jax
import numpy as np

from ..model import Config, DataStream, Result, loss_of, run_meta, to_dict


class _IsonormalField:
    """Z(a) for coordinate vectors a: <Z(a), Z(b)> = <a, b>, Z linear, values on fresh
    coordinates. `basis` is an orthonormal basis of the inputs seen so far; basis vector i maps to
    coordinate `coords[i]`."""

    def __init__(self, space: "_Coordinates"):
        self.space = space
        self.basis = np.zeros((0, space.size))
        self.coords: list[int] = []

    def __call__(self, a: np.ndarray) -> np.ndarray:
        coefficients = np.zeros(len(self.coords))
        residual = a.copy()
        for _ in range(2):  # Gram-Schmidt twice: orthogonal to round-off
            c = self.basis @ residual
            residual -= c @ self.basis
            coefficients += c
        norm = float(np.linalg.norm(residual))
        out = np.zeros(self.space.size)
        out[self.coords] = coefficients
        if norm > 1e-12 * max(float(np.linalg.norm(a)), 1e-300):
            self.basis = np.vstack([self.basis, residual / norm])
            self.coords.append(self.space.fresh())
            out[self.coords[-1]] = norm
        return out


class _Coordinates:
    """Hands out fresh independent standard Gaussian coordinates."""

    def __init__(self, size: int):
        self.size, self.used = size, 0

    def fresh(self) -> int:
        if self.used == self.size:
            raise RuntimeError("out of coordinates")
        self.used += 1
        return self.used - 1


def linear_reference(
    config: Config, stream: DataStream, *, conditioned_backward: bool = True
) -> Result:
    """The decoupled limit on `config.solver.depth_steps` steps with phi(h) = h, exactly.

    Needs `model.activation = "linear"` (either readout: with phi(h) = h they coincide) and a
    one-layer pre-activation block; any loss, depth profiles, gamma0 and group multipliers.
    `conditioned_backward=False` gives the wrong system in which each SGD step's backward noise is
    drawn afresh instead of conditioned on the stored history (a fresh backward field per step),
    to measure how much a problem depends on that conditioning."""
    model, training = config.model, config.training
    if model.activation != "linear" or model.block != "one_layer" or model.block_order != "pre":
        raise ValueError("the linear reference needs a linear activation and one-layer pre blocks")
    steps, batch, dim = stream.x_train.shape
    outputs, evals = stream.outputs, stream.x_eval.shape[0]
    m_steps = config.solver.depth_steps
    dt = 1.0 / m_steps
    t = np.arange(m_steps) * dt
    with jax.enable_x64(True):  # profiles are jax functions: evaluate them in float64
        beta = np.asarray(model.beta_profile(t), float)
        lr = np.asarray(model.lr_profile(t), float)
    eta = training.eta * model.gamma0  # spec section 2: eta -> eta gamma0 in the limit
    drift = eta * training.eta_W * lr * beta**2 / batch
    space = _Coordinates(dim + outputs + m_steps * (steps + 1) * (2 * batch + evals))
    readin = np.zeros((dim, space.size))
    readout = np.zeros((outputs, space.size))
    for i in range(dim):
        readin[i, space.fresh()] = 1.0
    for c in range(outputs):
        readout[c, space.fresh()] = 1.0
    forward = [_IsonormalField(space) for _ in range(m_steps)]
    backward = [_IsonormalField(space) for _ in range(m_steps)]
    features: list[np.ndarray] = []  # H^j_m, m < M, per stored pair
    grads: list[np.ndarray] = []  # G^j_{m+1}, m < M, per stored pair

    def forward_path(x):
        path = [x @ readin / math.sqrt(dim)]
        for m in range(m_steps):
            h = path[-1]
            learned = sum((g[m] * (f[m] @ h) for f, g in zip(features, grads)), np.zeros_like(h))
            path.append(h + beta[m] * math.sqrt(dt) * forward[m](h) - drift[m] * dt * learned)
        return np.stack(path)

    def backward_path(g_end):
        path = [g_end]
        for m in reversed(range(m_steps)):
            g = path[-1]
            learned = sum((f[m] * (gj[m] @ g) for f, gj in zip(features, grads)), np.zeros_like(g))
            path.append(g + beta[m] * math.sqrt(dt) * backward[m](g) - drift[m] * dt * learned)
        return np.stack(path[::-1])

    points = [int(math.floor(s * m_steps + 0.5)) for s in config.run.kernel_depths]

    def kernels(paths):  # (pairs, points, coords) -> (depths, pairs, pairs)
        return np.stack([paths[:, p] @ paths[:, p].T for p in points])

    loss = loss_of(config)
    f_train, f_eval, feature_train, feature_eval, grad_train = [], [], [], [], []
    for k in range(steps + 1):
        inputs = stream.x_eval if k == steps else np.concatenate([stream.x_train[k], stream.x_eval])
        paths = np.stack([forward_path(x) for x in inputs])
        f = paths[:, -1] @ readout.T / model.gamma0
        f_eval.append(f[-evals:])
        feature_eval.append(kernels(paths[-evals:]))
        if k == steps:
            break
        f_train.append(f[:batch])
        feature_train.append(kernels(paths[:batch]))
        with jax.enable_x64(True):
            chi = np.asarray(loss.derivative(f[:batch], np.asarray(stream.y_train[k], float)))
        if not conditioned_backward:
            backward = [_IsonormalField(space) for _ in range(m_steps)]
        g_paths = np.stack([backward_path(chi[b] @ readout) for b in range(batch)])
        grad_train.append(kernels(g_paths))
        x = stream.x_train[k]
        readin = readin - eta * training.eta_U / batch * x.T @ g_paths[:, 0] / math.sqrt(dim)
        readout = readout - eta * training.eta_v / batch * chi.T @ paths[:batch, -1]
        features.extend(paths[:batch, :-1])
        grads.extend(g_paths[:, 1:])

    f_train, f_eval = np.stack(f_train), np.stack(f_eval)
    with jax.enable_x64(True):
        loss_train = np.asarray(loss(f_train, np.asarray(stream.y_train, float))).mean(axis=-1)
        loss_eval = np.asarray(loss(f_eval, np.asarray(stream.y_eval, float)[None])).mean(axis=-1)
    return Result(
        f_train=f_train,
        f_eval=f_eval,
        loss_train=loss_train,
        loss_eval=loss_eval,
        kernels={
            "t": list(config.run.kernel_depths),
            "layers": points,
            "feature_eval": np.stack(feature_eval),
            "feature_train": np.stack(feature_train),
            "grad_train": np.stack(grad_train),
        },
        config=to_dict(config),
        producer={"kind": "linear_reference", "depth_steps": m_steps},
        meta=run_meta(config, wall_time=0.0),
    )
