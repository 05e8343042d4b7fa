"""Closed-form validation problems (spec section 3), exact at finite depth and in the limit.

Every function takes `depth=None` for the continuum (L -> infinity) value and an integer depth L
for the exact value of the depth-L network as n -> infinity (constant beta, so
branch^2 = beta^2 / L). These are shared by the finite-network tests, the limit solver's tests
and the notebooks.

Derivations (linear algebra of independent Gaussian matrices, n -> infinity):

* Forward second moment at init. h_l = h_{l-1} + s W_l phi(h_{l-1}) / sqrt(n) with W_l
  independent of h_{l-1}, so E<h_l, h_l>_n = E<h_{l-1}, h_{l-1}>_n + s^2 E<phi(h), phi(h)>_n.
  Linear phi: factor (1 + beta^2/L) per layer, exact at every width. ReLU: h_{l-1} has centred
  Gaussian coordinates as n -> infinity, so E relu(h)^2 = q/2 and the factor is
  (1 + beta^2/(2L)). Hence q_l = q_0 (1 + c beta^2/L)^l -> q_0 e^{c beta^2 t}, c = 1 or 1/2.
* Backward second moment at init (linear phi, linear readout): g_L = v and
  g_{l-1} = g_l + s B_l^T g_l / sqrt(n), so E<g_l, g_l>_n = (1 + beta^2/L)^{L-l} -> e^{beta^2(1-t)}
  for either backward mode (B_l independent of g_l).
* First SGD step (linear phi, linear readout, U and v frozen, one input with |x|^2/d = 1,
  MSE, f^0 -> 0 so chi = -y). The update of W_l is -eta gamma0 chi s g~_l h_{l-1}^T / sqrt(n)
  (g~ the backward path the network uses), and to first order in the weights the output moves by
  f^1 - f^0 = -eta chi sum_l s^2 <g_l, g~_l>_n <h_{l-1}, h_{l-1}>_n, g the true (standard)
  sensitivity; higher orders carry factors <h, g>_n = O(n^{-1/2}). With <h_{l-1}, h_{l-1}>_n ->
  r^{l-1}, r = 1 + beta^2/L:
    standard:  <g_l, g_l>_n -> r^{L-l}, so
               f^1 - f^0 -> eta y beta^2 r^{L-1}                  -> eta y beta^2 e^{beta^2};
    decoupled: <g_l, g~_l>_n -> 1 (independent W~), so
               f^1 - f^0 -> eta y beta^2 sum_l r^{l-1} / L
                          = eta y (r^L - 1)                       -> eta y (e^{beta^2} - 1)
  (for beta = 1: e and e - 1, the spec's values).
* Two-layer blocks, one SGD step: the first internal layer's feature change
  Delta u_l = Delta W_{l,1} phi(h_{l-1}) / sqrt(n) carries the branch factor 1/sqrt(L) once and
  the learning-rate correction L^c, so it scales like L^{c - 1/2}.
"""

import math

import numpy as np


def _moment_rate(activation: str) -> float:
    rates = {"linear": 1.0, "relu": 0.5}
    if activation not in rates:
        raise ValueError(f"closed forms exist for activation in {tuple(rates)}, not {activation!r}")
    return rates[activation]


def forward_second_moment(
    t: float | np.ndarray, *, activation: str, depth: int | None = None, beta: float = 1.0
) -> np.ndarray:
    """E[h_t^2] / E[h_0^2] at init: (1 + c beta^2 / L)^(t L) at depth L, e^{c beta^2 t} in the
    limit; c = 1 (linear), 1/2 (ReLU). At depth L, `t` should be a multiple of 1/L."""
    rate = _moment_rate(activation) * beta**2
    t = np.asarray(t, dtype=float)
    if depth is None:
        return np.exp(rate * t)
    return (1.0 + rate / depth) ** np.rint(t * depth)


def backward_second_moment(
    t: float | np.ndarray,
    *,
    depth: int | None = None,
    beta: float = 1.0,
    activation: str = "linear",
) -> np.ndarray:
    """E[g_t^2] / E[v^2] at init with a linear readout: (1 + c beta^2/L)^(L - tL),
    e^{c beta^2 (1 - t)} in the limit (either backward mode), c = E[phi'(h)^2] = 1 (linear),
    1/2 (ReLU): each layer adds phi'(h_{l-1}) times noise of variance beta^2 E[g_l^2] / L that is
    independent of it, so E[g_{l-1}^2] = (1 + c beta^2 / L) E[g_l^2]."""
    rate = {"linear": 1.0, "relu": 0.5}.get(activation)
    if rate is None:
        raise ValueError(
            f"closed forms exist for activation in ('linear', 'relu'), not {activation!r}"
        )
    rate *= beta**2
    t = np.asarray(t, dtype=float)
    if depth is None:
        return np.exp(rate * (1.0 - t))
    return (1.0 + rate / depth) ** (depth - np.rint(t * depth))


def first_step_change(
    backward: str, *, eta: float, y: float = 1.0, depth: int | None = None, beta: float = 1.0
) -> float:
    """f^1 - f^0 after one SGD step in the linear first-step problem (see module docstring)."""
    b2 = beta**2
    if depth is None:
        growth = math.exp(b2)
        standard, decoupled = b2 * growth, growth - 1.0
    else:
        ratio = 1.0 + b2 / depth
        standard, decoupled = b2 * ratio ** (depth - 1), ratio**depth - 1.0
    if backward == "standard":
        return eta * y * standard
    if backward == "decoupled":
        return eta * y * decoupled
    raise ValueError(f"backward={backward!r}; choose 'standard' or 'decoupled'")


def first_layer_change_exponent(first_layer_exponent: float) -> float:
    """The exponent of L in the first internal layer's one-step feature change: c - 1/2."""
    return first_layer_exponent - 0.5


def two_layer_first_step_change(
    backward: str, *, eta: float, y: float = 1.0, depth: int, exponent: float
) -> float:
    """f^1 - f^0 for two-layer blocks in the first-step problem (spec section 5), as n -> infinity
    at depth L with the first layer learning at eta L^c:

        decoupled: eta y ((1 + 1/L)^L - 1)          (every c: W~_{l,2} is independent of W_{l,2})
        standard:  eta y (1 + 1/L)^(L-1) (1 + L^c)  (W_{l,2} W_{l,2}^T / n -> I makes the first
                                                     layer's update coherent: L^c per unit depth)
    """
    ratio = 1.0 + 1.0 / depth
    if backward == "decoupled":
        return eta * y * (ratio**depth - 1.0)
    if backward == "standard":
        return eta * y * ratio ** (depth - 1) * (1.0 + depth**exponent)
    raise ValueError(f"backward={backward!r}; choose 'standard' or 'decoupled'")
