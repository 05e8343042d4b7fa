"""The two-layer residual block (spec sections 1 and 5) and its decoupled limit.

Finite network: u_l = W_{l,1} a_{l-1} / sqrt(n), h_l = h_{l-1} + s_l W_{l,2} phi(u_l) / sqrt(n),
s_l = beta(t_{l-1}) / sqrt(L); W_{l,1} learns at eta L^c (c = `training.first_layer_exponent`, the
exponent its weight group declares).

Limit, step m, for the new pairs (docs/two_layer.md derives every term; at M = L this is the
n -> infinity limit of the depth-L network, term by term):

    U_m     = Z1_m - e_m L^c sum_j Q^j_m <phi(H^j_m), phi(H_m)>
    H_{m+1} = H_m + beta_m sqrt(dt) Z2_m - drift_m dt sum_j G^j_{m+1} <phi(U^j_m), phi(U_m)>
    R_m     = Z~2_m - e_m sum_j phi(U^j_m) <G^j_{m+1}, G_{m+1}>
    Q_m     = phi'(U_m) R_m
    G_m     = G_{m+1} + phi'(H_m) [beta_m sqrt(dt) Z~1_m - drift_m L^c dt sum_j phi(H^j_m) <Q^j_m, Q_m>]

with <., .> particle kernels, e_m = rate_m beta_m sqrt(dt) (rate: the bare learning rate with its
1/B), drift_m = rate_m beta_m^2, and the initial weights' products Z1 = W1(0) phi(H) and
Z2 = W2(0) phi(U) (forward, O(1) values; Z2 enters as a Brownian increment), Z~2 = W~2(0)^T G and
Z~1 = W~1(0)^T Q (backward). The internal feature U is an O(1) conditional Gaussian field; the
learned part of U is O(L^{c - 1/2}) (the collapse at c < 1/2). The stored history is
phi(H^j_m), phi(U^j_m), G^j_{m+1} and Q^j_m; the sums over j are the accumulated updates of W1
(Q phi(H)^T) and W2 (G phi(U)^T) applied to vectors (`LimitContext.updates`).
"""

import jax.numpy as jnp

from solvers import signed_root

from ._blocks import AbstractBlock
from ._branch_matmul import branch_matmul
from ._weight_groups import WeightGroup


class TwoLayer(AbstractBlock):
    name = "two_layer"
    weight_groups = (
        WeightGroup("W1", "hidden_first", ("features", "q"), exponent="first_layer_exponent"),
        WeightGroup("W2", "hidden", ("phi_u", "grads")),
    )
    stored = ("features", "phi_u", "grads", "q")

    def internal(self, a, first, first_offset, matmul_scale):
        """u_l = W_{l,1} a_{l-1} / sqrt(n): the first internal layer's pre-activation."""
        return branch_matmul(a, first, first_offset, matmul_scale)

    def branch(self, phi, a, layer, matmul_scale):
        first = layer.weights["hidden_first"]
        u = phi(self.internal(a, first, layer.offset("hidden_first"), matmul_scale))
        return layer.scale * branch_matmul(
            u, layer.weights["hidden"], layer.offset("hidden"), matmul_scale
        )

    # the limit: the forward state is (H, U), U at point m + 1 being step m's internal feature;
    # the backward state is (G, Q), Q at point m being step m's internal gradient

    def forward_state(self, h0):
        return h0, jnp.zeros_like(h0)

    def stream(self, path):
        return path[0]

    def learned_internal(self, updates, c, m, a, dt):
        """Delta W_{m+1,1} a / sqrt(n): the first layer's learned change of u for features a,
        -rate beta sqrt(dt) L^c sum_j Q^j <phi(H^j), a> (O(L^{c - 1/2}))."""
        scale = c.rate[m] * c.beta[m] * jnp.sqrt(jnp.abs(dt)) * c.gains["W1"]
        return -scale * updates.forward("W1", m, a)

    def forward_increment(self, y, m, dt, ctx):
        h, u_before = y
        c = ctx.coefficients
        a = ctx.phi(h)
        u = ctx.forward["W1"](m, a) + self.learned_internal(ctx.updates, c, m, a, dt)
        phi_u = ctx.phi(u)
        drift = -c.drift[m] * c.gains["W2"] * ctx.updates.forward("W2", m, phi_u)
        noise = c.beta[m] * signed_root(dt) * ctx.forward["W2"](m, phi_u)
        return drift * dt + noise, u - u_before

    def backward_state(self, g_end):
        return g_end, jnp.zeros_like(g_end)

    def gradients(self, path):
        return path[0]

    def backward_increment(self, y, m, dt, ctx, forward):
        g, q_before = y
        c = ctx.coefficients
        h, u = forward[0][m], forward[1][m + 1]
        root = jnp.sqrt(jnp.abs(dt))
        learned = c.rate[m] * c.beta[m] * root * c.gains["W2"] * ctx.updates.backward("W2", m, g)
        r = ctx.backward["W2"](m, g) - learned
        q = ctx.phi.derivative(u) * r
        drift = c.drift[m] * c.gains["W1"] * ctx.updates.backward("W1", m, q)
        multiplier = ctx.phi.derivative(h)
        step = multiplier * (drift * dt + c.beta[m] * root * ctx.backward["W1"](m, q))
        return step, q - q_before

    def history_entries(self, phi, forward, backward):
        h, u = forward
        g, q = backward
        return {"features": phi(h[:-1]), "phi_u": phi(u[1:]), "grads": g[1:], "q": q[:-1]}
