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
* Second step, backward conditioning (`second_step_gradient_moment`). Decoupled, linear phi and
  readout, U and v frozen, beta = 1, MSE; step 0 trains on x_0, step 1 on x_1 with
  <x_0, x_1> = 0 and |x|^2/d = 1 (a minibatch of B copies of one input is the same problem).
  Write r = 1 + 1/L, dt = 1/L, and chi_0, chi_1 for the two steps' loss derivatives (as n ->
  infinity chi_0 = -y_0 and chi_1 = -y_1: H^1_0(x_1) is independent of step 0, and the learning
  drift of step 1's forward pass is proportional to Phi^{01} = E[H^0 H^1] = 0 at every depth, so
  f^1(x_1) = 0). Step 0's backward path is G^0_m = chi_0 Gamma_m with Gamma_L = V and
  Gamma_m = Gamma_{m+1} + sqrt(dt) Z~_m(Gamma_{m+1}), E[Gamma_m^2] = r^{L-m}, all independent of
  the forward path H^0. Step 1's backward path is
      G^1_m = G^1_{m+1} + sqrt(dt) Z~_m(G^1_{m+1}) - eta dt H^0_m Gam^{01}_{m+1},  G^1_L = chi_1 V.
  The initial backward weights' product Z~_m is linear in its input and, conditioned on the
  stored history, reproduces Z~_m(Gamma_{m+1}) on the part of G^1 along Gamma, so
  G^1 = chi_1 Gamma + P with P_L = 0,
      P_m = P_{m+1} + sqrt(dt) Z~_m(P_{m+1}) - eta dt gamma_m H^0_m,   E[Gamma P] = 0,
  and gamma_m = Gam^{01}_{m+1} = chi_0 chi_1 r^{L-m-1}. With E[H^0_m H^0_j] = r^{min(m, j)} and
  E[H^0_m P_{m+1}] = -eta chi_0 chi_1 (r^{L-1} - r^m), summing the variance recursion
  E[P_m^2] = r E[P_{m+1}^2] + eta^2 dt^2 gamma_m^2 r^m - 2 eta dt gamma_m E[H^0_m P_{m+1}] gives
      E[(G^1_m)^2] = chi_1^2 r^{L-m}
                     + eta^2 chi_0^2 chi_1^2 r^{L-m-1} ((1 - t_m)(2 + dt) r^{L-1} - 2 (r^L - r^m))
      -> chi_1^2 e^{1-t} + 2 eta^2 chi_0^2 chi_1^2 (e - t e^{2-t})          (L -> infinity).
  Backward noise drawn without conditioning on the stored history (a wrong system) keeps only
  the shared V in Gam^{01}: gamma_m = chi_0 chi_1, and the second term becomes
  eta^2 chi_0^2 chi_1^2 dt^2 sum_{j >= m} r^{2j - m} (1 + 2 (L - 1 - j))
      -> eta^2 chi_0^2 chi_1^2 ((e^{2-t} - e^t)/2 - (1 - t) e^t)
  (at t = 0: 2e = 5.44 against (e^2 - 3)/2 = 2.19). Both agree with `linear_reference` to
  round-off (tests/test_backward_conditioning.py).
* Two-layer blocks, one SGD step: the first internal layer's feature change
  Delta u_l = Delta W_{l,1} phi(h_{l-1}) / sqrt(n) carries the branch factor 1/sqrt(L) once and
  the learning-rate correction L^c, so it scales like L^{c - 1/2}.
"""

import math

import numpy as np

from ..model import AbstractBackwardMode, backward_mode


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
    backward: "str | AbstractBackwardMode",
    *,
    eta: float,
    y: float = 1.0,
    depth: int | None = None,
    beta: float = 1.0,
) -> float:
    """f^1 - f^0 after one SGD step in the linear first-step problem (see module docstring); the
    mode's own closed form (`AbstractBackwardMode.linear_first_step`)."""
    return eta * y * backward_mode(backward).linear_first_step(beta**2, depth)


def second_step_gradient_moment(
    t: float | np.ndarray,
    *,
    eta: float,
    chi0: float,
    chi1: float,
    depth: int | None = None,
    conditioned_backward: bool = True,
) -> np.ndarray:
    """E[(G^1_t)^2] of the second-step backward-conditioning problem (module docstring): the
    gradient kernel of step 1 at depth time t, given the two steps' loss derivatives chi0, chi1.
    `conditioned_backward=False` gives the value of the wrong system whose backward noise ignores
    the stored history. At depth L, `t` should be a multiple of 1/L."""
    t = np.asarray(t, dtype=float)
    c2 = (eta * chi0 * chi1) ** 2
    if depth is None:
        base = chi1**2 * np.exp(1.0 - t)
        if conditioned_backward:
            return base + 2.0 * c2 * (math.e - t * np.exp(2.0 - t))
        return base + c2 * ((np.exp(2.0 - t) - np.exp(t)) / 2.0 - (1.0 - t) * np.exp(t))
    dt, r = 1.0 / depth, 1.0 + 1.0 / depth
    m = np.rint(t * depth)
    base = chi1**2 * r ** (depth - m)
    if conditioned_backward:
        gain = (1.0 - m * dt) * (2.0 + dt) * r ** (depth - 1) - 2.0 * (r**depth - r**m)
        return base + c2 * r ** (depth - m - 1) * gain
    j = np.arange(depth)
    terms = r ** (2 * j) * (1.0 + 2.0 * (depth - 1 - j))
    tails = np.cumsum(terms[::-1])[::-1]  # sum over j >= m
    tail = np.where(m < depth, tails[np.minimum(m, depth - 1).astype(int)], 0.0)
    return base + c2 * dt**2 * r ** (-m) * tail


def first_layer_change_exponent(first_layer_exponent: float) -> float:
    """The exponent of L in the first internal layer's one-step feature change: c - 1/2."""
    return first_layer_exponent - 0.5


def two_layer_first_step_change(
    backward: "str | AbstractBackwardMode",
    *,
    eta: float,
    y: float = 1.0,
    depth: int,
    exponent: float,
) -> float:
    """f^1 - f^0 for two-layer blocks in the first-step problem (spec section 5), as n -> infinity
    at depth L with the first layer learning at eta L^c (`AbstractBackwardMode.two_layer_first_step`):

        decoupled: eta y ((1 + 1/L)^L - 1)          (every c: W~_{l,2} is independent of W_{l,2})
        standard:  eta y (1 + 1/L)^(L-1) (1 + L^c)  (W_{l,2} W_{l,2}^T / n -> I makes the first
                                                     layer's update coherent: L^c per unit depth)
    """
    return eta * y * backward_mode(backward).two_layer_first_step(depth, exponent)
