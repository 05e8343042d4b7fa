"""The finite depth-muP ResNet of spec section 1, as an Equinox module.

Pre-activation (`model.block_order = "pre"`, the spec's network):

    h_0 = U x / sqrt(d)
    h_l = h_{l-1} + s_l W_l phi(h_{l-1}) / sqrt(n),            s_l = beta(t_{l-1}) / sqrt(L)
    f   = v . phi(h_L) / (gamma0 n)        (v . h_L for `model.readout = "linear"`)

Two-layer blocks (`model.block = "two_layer"`) replace the branch by
`s_l W_{l,2} phi(u_l) / sqrt(n)` with `u_l = W_{l,1} phi(h_{l-1}) / sqrt(n)`.

Post-activation (`model.block_order = "post"`, a simple variant): `h_l = phi(h_{l-1} + s_l W_l
h_{l-1} / sqrt(n))` (two-layer: the branch is `s_l W_{l,2} phi(W_{l,1} h_{l-1} / sqrt(n)) /
sqrt(n)`), and the readout is `v . h_L` whatever `model.readout` says. Its features are `h_l`
itself (already activated), where the pre-activation network's features are `phi(h_l)`.

Every scale comes from `_scales`. All weights are N(0, 1) at init. The L blocks are stacked and
scanned over, so compile time does not grow with depth. Decoupled backward weights
(`backward = "decoupled"`) are stored as fixed offsets `D = W~(0) - W(0)` consumed by
`branch_matmul`; they and the branch scales are never trained (`trainable_filter`).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ._activations import activation
from ._config import BACKWARDS, Config
from ._decoupled import branch_matmul
from ._scales import branch_scales, input_scale, matmul_scale, readout_scale

# The trainable parameter groups: field names, which are also the keys of
# `_scales.lr_multipliers`.
PARAMETER_GROUPS = ("readin", "hidden", "hidden_first", "readout")


class ResNet(eqx.Module):
    """Width-n, depth-L ResNet under depth-muP, built from a `Config` (spec section 1).

    `hidden` holds W_l (or W_{l,2}, the block's output layer) for l = 1..L stacked along the
    first axis; `hidden_first` holds W_{l,1} of two-layer blocks (None otherwise). The
    `backward_*` offsets are None for standard backprop.
    """

    readin: Float[Array, "width dim"]
    hidden: Float[Array, "depth width width"]
    hidden_first: Float[Array, "depth width width"] | None
    readout: Float[Array, "outputs width"]
    backward_hidden: Float[Array, "depth width width"] | None
    backward_hidden_first: Float[Array, "depth width width"] | None
    branch_scales: Float[Array, " depth"]
    activation: str = eqx.field(static=True)
    readout_on: str = eqx.field(static=True)
    block: str = eqx.field(static=True)
    block_order: str = eqx.field(static=True)
    input_scale: float = eqx.field(static=True)
    matmul_scale: float = eqx.field(static=True)
    readout_scale: float = eqx.field(static=True)

    def __init__(self, config: Config, *, width: int, depth: int, backward: str, key: PRNGKeyArray):
        if backward not in BACKWARDS:
            raise ValueError(f"backward={backward!r} is not allowed; choose one of {BACKWARDS}")
        model = config.model
        two_layer = model.block == "two_layer"
        readin_key, hidden_key, first_key, readout_key, tilde_key, tilde_first_key = (
            jax.random.split(key, 6)
        )
        dtype = jnp.result_type(float)
        shape = (depth, width, width)
        self.readin = jax.random.normal(readin_key, (width, model.dim), dtype)
        self.hidden = jax.random.normal(hidden_key, shape, dtype)
        self.hidden_first = jax.random.normal(first_key, shape, dtype) if two_layer else None
        self.readout = jax.random.normal(readout_key, (model.outputs, width), dtype)
        if backward == "decoupled":
            self.backward_hidden = jax.random.normal(tilde_key, shape, dtype) - self.hidden
            self.backward_hidden_first = (
                jax.random.normal(tilde_first_key, shape, dtype) - self.hidden_first
                if two_layer
                else None
            )
        else:
            self.backward_hidden = None
            self.backward_hidden_first = None
        self.branch_scales = jnp.asarray(branch_scales(config, depth), dtype)
        self.activation = model.activation
        self.readout_on = model.readout
        self.block = model.block
        self.block_order = model.block_order
        self.input_scale = input_scale(model.dim)
        self.matmul_scale = matmul_scale(width)
        self.readout_scale = readout_scale(config, width)

    @property
    def width(self) -> int:
        return self.hidden.shape[1]

    @property
    def depth(self) -> int:
        return self.hidden.shape[0]

    @property
    def backward(self) -> str:
        return "standard" if self.backward_hidden is None else "decoupled"

    def features(self, stream: Float[Array, "*shape width"]) -> Float[Array, "*shape width"]:
        """The features a layer passes on: phi(h) (pre-activation) or h itself (post)."""
        return activation(self.activation)(stream) if self.block_order == "pre" else stream

    def _block(self, h, weights):
        """One residual block l: h_{l-1} -> h_l (custom-vjp matmuls, scanned)."""
        phi = activation(self.activation)
        hidden, first, offset, first_offset, scale = weights
        a = phi(h) if self.block_order == "pre" else h
        if first is not None:
            a = phi(branch_matmul(a, first, first_offset, self.matmul_scale))
        h = h + scale * branch_matmul(a, hidden, offset, self.matmul_scale)
        return phi(h) if self.block_order == "post" else h

    def _readout(self, h_last: Float[Array, "batch width"]) -> Float[Array, "batch outputs"]:
        phi = activation(self.activation)
        if self.block_order == "pre" and self.readout_on == "phi":
            h_last = phi(h_last)
        return h_last @ self.readout.T * self.readout_scale

    def residual_stream(
        self,
        x: Float[Array, "batch dim"],
        probes: Float[Array, "depth+1 batch width"] | None = None,
        *,
        keep_stream: bool = True,
    ) -> tuple[Float[Array, "batch outputs"], Float[Array, "depth+1 batch width"] | None]:
        """Outputs f(x) and the residual stream h_l(x), l = 0..L (None if not `keep_stream`).

        `probes` (zeros) are added to every h_l; differentiating a loss with respect to them
        gives d loss / d h_l along the network's own backward pass (decoupled where it is).
        """
        h_0 = x @ self.readin.T * self.input_scale
        if probes is not None:
            h_0 = h_0 + probes[0]
        weights = (
            self.hidden,
            self.hidden_first,
            self.backward_hidden,
            self.backward_hidden_first,
            self.branch_scales,
        )

        def step(h, layer):
            weights, probe = layer
            h = self._block(h, weights)
            if probe is not None:
                h = h + probe
            return h, (h if keep_stream else None)

        later_probes = None if probes is None else probes[1:]
        h_last, stream = jax.lax.scan(step, h_0, (weights, later_probes))
        if keep_stream:
            stream = jnp.concatenate([h_0[None], stream])
        return self._readout(h_last), stream

    def __call__(self, x: Float[Array, "batch dim"]) -> Float[Array, "batch outputs"]:
        """Outputs f(x) for a batch of inputs."""
        return self.residual_stream(x, keep_stream=False)[0]

    def unrolled_outputs(self, x: Float[Array, "batch dim"]) -> Float[Array, "batch outputs"]:
        """The same forward with a Python loop over layers and plain matmuls.

        A reference for tests only: its autodiff is standard backprop whatever `backward` is,
        and its compile time grows with depth.
        """
        phi = activation(self.activation)
        h = x @ self.readin.T * self.input_scale
        for layer in range(self.depth):
            a = phi(h) if self.block_order == "pre" else h
            if self.hidden_first is not None:
                a = phi(a @ self.hidden_first[layer].T * self.matmul_scale)
            h = h + self.branch_scales[layer] * (a @ self.hidden[layer].T * self.matmul_scale)
            if self.block_order == "post":
                h = phi(h)
        return self._readout(h)

    def trainable_filter(self) -> PyTree[bool]:
        """Filter spec for `eqx.partition`: True on U, the W's and v; False elsewhere."""
        spec = jax.tree.map(lambda _: False, self)
        groups = [g for g in PARAMETER_GROUPS if getattr(self, g) is not None]
        return eqx.tree_at(
            lambda m: [getattr(m, g) for g in groups], spec, replace=[True] * len(groups)
        )


def layer_indices(kernel_depths: tuple[float, ...], depth: int) -> tuple[int, ...]:
    """The layers l = round(t L) at which kernels are recorded (halves round up)."""
    return tuple(int(math.floor(t * depth + 0.5)) for t in kernel_depths)
