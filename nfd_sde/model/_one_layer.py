"""The one-layer residual block of spec section 1 and its NFD limit (spec section 2).

Finite network: h_l = h_{l-1} + s_l W_l a_{l-1} / sqrt(n), a = phi(h) (pre) or h (post),
s_l = beta(t_{l-1}) / sqrt(L).

Limit, step m (t_m = m/M, coefficients read at t_m), for the new (step k, input x) pairs:

    H_{m+1} = H_m + beta_m sqrt(dt) Z_m - drift_m dt sum_{stored j} G^j_{m+1} Phi^{j.}_m
    G_m     = G_{m+1} + phi'(H_m) [beta_m sqrt(dt) Z~_m - drift_m dt sum_j phi(H^j_m) Gam^{j.}_{m+1}]

Z = W(0) phi(H_m) and Z~ = W~(0)^T G_{m+1} are the initial weights' products (`LimitContext`),
Phi and Gam the particle kernels between stored and new pairs. drift_m carries the minibatch mean
1/B. The stored history is phi(H^j_m) (`features`) and G^j_{m+1} (`grads`), exactly what layer
m + 1's weight update g_l phi(h_{l-1})^T is made of (the sums over j are that accumulated update
applied to phi(H_m) and G_{m+1}, `LimitContext.updates`), so at M = L this is the n -> infinity limit of
the depth-L decoupled network.
"""

import jax.numpy as jnp

from solvers import signed_root

from ._blocks import AbstractBlock
from ._branch_matmul import branch_matmul
from ._weight_groups import WeightGroup


class OneLayer(AbstractBlock):
    name = "one_layer"
    weight_groups = (WeightGroup("W", "hidden", ("features", "grads")),)
    stored = ("features", "grads")

    def branch(self, phi, a, layer, matmul_scale):
        weights = layer.weights["hidden"]
        return layer.scale * branch_matmul(a, weights, layer.offset("hidden"), matmul_scale)

    def forward_state(self, h0):
        return h0

    def stream(self, path):
        return path

    def forward_increment(self, h, m, dt, ctx):
        a = ctx.phi(h)
        drift_rate = ctx.coefficients.drift[m] * ctx.coefficients.gains["W"]
        drift = -drift_rate * ctx.updates.forward("W", m, a)
        noise = ctx.coefficients.beta[m] * signed_root(dt) * ctx.forward["W"](m, a)
        return drift * dt + noise

    def backward_state(self, g_end):
        return g_end

    def gradients(self, path):
        return path

    def backward_increment(self, g, m, dt, ctx, forward):
        multiplier = ctx.phi.derivative(forward[m])
        drift_rate = ctx.coefficients.drift[m] * ctx.coefficients.gains["W"]
        drift = drift_rate * multiplier * ctx.updates.backward("W", m, g)
        noise = ctx.coefficients.beta[m] * multiplier * ctx.backward["W"](m, g)
        return drift * dt + noise * jnp.sqrt(jnp.abs(dt))

    def history_entries(self, phi, forward, backward):
        return {"features": phi(forward[:-1]), "grads": backward[1:]}
