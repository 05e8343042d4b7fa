"""The finite depth-muP ResNet of spec section 1, as an Equinox module.

    h_0 = U x / sqrt(d),    h_l = block_l(h_{l-1}),    f = v . r(h_L) / (gamma0 n)

The residual block (one- or two-layer, pre- or post-activation) is an `AbstractBlock` of
`nfd_sde.model`, which also gives the limit's increments; r is the readout (phi(h_L), or h_L). All
weights are N(0, 1) at init; every scale comes from `nfd_sde.model`'s scales. The L blocks'
weights are stacked and scanned over, so compile time does not grow with depth. Decoupled backward
weights are stored as fixed offsets D = W~(0) - W(0), consumed by `branch_matmul`; they, the branch
scales and the readout scale are never trained (`trainable_filter`).

`depth_refinement = r` builds each of the L layers' initial weights as the normalised sum of r
layers of a depth-rL network drawn from the same key, W_l(0) = (W'_{r(l-1)+1} + ... + W'_{rl}) /
sqrt(r), again i.i.d. N(0, 1): networks of depths L and rL from one key then share their noise
(common random numbers across depths).
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from ..model import (
    AbstractActivation,
    AbstractBackwardMode,
    AbstractBlock,
    AbstractReadout,
    BlockLayer,
    Config,
    activation_of,
    backward_mode,
    block_of,
    branch_scales,
    input_scale,
    matmul_scale,
    readout_of,
    readout_scale,
)

# The trainable parameter groups: field names, which are also the keys of `lr_multipliers`.
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
    readout_scale: Float[Array, ""]
    block: AbstractBlock
    mode: AbstractBackwardMode
    activation: AbstractActivation
    readout_map: AbstractReadout
    input_scale: float = eqx.field(static=True)
    matmul_scale: float = eqx.field(static=True)

    def __init__(
        self,
        config: Config,
        *,
        width: int,
        depth: int,
        backward: "str | AbstractBackwardMode",
        key: PRNGKeyArray,
        depth_refinement: int = 1,
    ):
        self.mode = backward_mode(backward)
        model = config.model
        self.block = block_of(config)
        readin_key, hidden_key, first_key, readout_key, tilde_key, tilde_first_key = (
            jax.random.split(key, 6)
        )
        dtype = jnp.result_type(float)

        def hidden_weights(k):
            return _layer_weights(k, depth, width, dtype, depth_refinement)

        self.readin = jax.random.normal(readin_key, (width, model.dim), dtype)
        self.hidden = hidden_weights(hidden_key)
        self.hidden_first = hidden_weights(first_key) if self.block.has_first else None
        self.readout = jax.random.normal(readout_key, (model.outputs, width), dtype)
        if self.mode.has_backward_offsets:
            self.backward_hidden = hidden_weights(tilde_key) - self.hidden
            self.backward_hidden_first = (
                hidden_weights(tilde_first_key) - self.hidden_first
                if self.block.has_first
                else None
            )
        else:
            self.backward_hidden = None
            self.backward_hidden_first = None
        self.branch_scales = jnp.asarray(branch_scales(config, depth), dtype)
        self.readout_scale = jnp.asarray(readout_scale(config, width), dtype)
        self.activation = activation_of(config)
        self.readout_map = readout_of(config)
        self.input_scale = input_scale(model.dim)
        self.matmul_scale = matmul_scale(width)

    @property
    def width(self) -> int:
        return self.hidden.shape[1]

    @property
    def depth(self) -> int:
        return self.hidden.shape[0]

    @property
    def backward(self) -> str:
        """The backward mode's name."""
        return self.mode.name

    def features(self, stream: Float[Array, "*shape width"]) -> Float[Array, "*shape width"]:
        """The features a layer passes on: phi(h) (pre-activation) or h itself (post)."""
        return self.block.features(self.activation, stream)

    def layers(self) -> BlockLayer:
        """The stacked layers, as the scan over depth reads them."""
        return BlockLayer(
            self.hidden,
            self.hidden_first,
            self.backward_hidden,
            self.backward_hidden_first,
            self.branch_scales,
        )

    def read_in(self, x: Float[Array, "batch dim"]) -> Float[Array, "batch width"]:
        return x @ self.readin.T * self.input_scale

    def read_out(self, h_last: Float[Array, "batch width"]) -> Float[Array, "batch outputs"]:
        return self.readout_map.features(h_last) @ self.readout.T * self.readout_scale

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
        h_0 = self.read_in(x)
        if probes is not None:
            h_0 = h_0 + probes[0]

        def step(h, layer):
            weights, probe = layer
            h = self.block.apply(self.activation, h, weights, self.matmul_scale)
            if probe is not None:
                h = h + probe
            return h, (h if keep_stream else None)

        later_probes = None if probes is None else probes[1:]
        h_last, stream = jax.lax.scan(step, h_0, (self.layers(), later_probes))
        if keep_stream:
            stream = jnp.concatenate([h_0[None], stream])
        return self.read_out(h_last), stream

    def __call__(self, x: Float[Array, "batch dim"]) -> Float[Array, "batch outputs"]:
        """Outputs f(x) for a batch of inputs."""
        return self.residual_stream(x, keep_stream=False)[0]

    def unrolled_outputs(self, x: Float[Array, "batch dim"]) -> Float[Array, "batch outputs"]:
        """The same forward with a Python loop over the layers and no backward offsets.

        A reference for tests only: its autodiff is standard backprop whatever `backward` is,
        and its compile time grows with depth.
        """
        h = self.read_in(x)
        layers = self.layers()
        for layer in range(self.depth):
            weights = BlockLayer(
                layers.hidden[layer],
                None if layers.first is None else layers.first[layer],
                None,
                None,
                layers.scale[layer],
            )
            h = self.block.apply(self.activation, h, weights, self.matmul_scale)
        return self.read_out(h)

    def trainable_filter(self) -> PyTree[bool]:
        """Filter spec for `eqx.partition`: True on U, the W's and v; False elsewhere."""
        spec = jax.tree.map(lambda _: False, self)
        groups = [g for g in PARAMETER_GROUPS if getattr(self, g) is not None]
        return eqx.tree_at(
            lambda m: [getattr(m, g) for g in groups], spec, replace=[True] * len(groups)
        )


def _layer_weights(key, depth: int, width: int, dtype, refinement: int):
    """(depth, width, width) standard Gaussian layers; with `refinement` r, each the normalised
    sum of r consecutive layers of a depth-rL draw from the same key."""
    fine = jax.random.normal(key, (depth * refinement, width, width), dtype)
    if refinement == 1:
        return fine
    return jnp.sum(fine.reshape(depth, refinement, width, width), axis=1) / math.sqrt(refinement)
