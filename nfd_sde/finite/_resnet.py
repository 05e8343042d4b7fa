"""The finite depth-muP ResNet of spec section 1, as an Equinox module.

    h_0 = U x / sqrt(d),    h_l = block_l(h_{l-1}),    f = v . r(h_L) / (gamma0 n)

The residual block (one- or two-layer, pre- or post-activation) is an `AbstractBlock` of
`nfd_sde.model`, which also gives the limit's increments; r is the readout (phi(h_L), or h_L). All
weights are N(0, 1) at init; every scale comes from `nfd_sde.model`'s scales. The L blocks'
weights are stacked and scanned over, so compile time does not grow with depth. Decoupled backward
weights are stored as fixed offsets D = W~(0) - W(0), consumed by `branch_matmul`; they, the branch
scales and the readout scale are never trained (`trainable_filter`).

The hidden matrices are the block's weight groups (`AbstractBlock.weight_groups`), one stacked
array per group under its parameter name ("hidden": W_l, or a two-layer block's output layer
W_{l,2}; "hidden_first": W_{l,1}). The key is split into U's, S forward draws, v's and S backward
draws (S the number of groups, at least `DRAWS`), and the groups take the draws from the output
layer backwards: one- and two-layer networks of one key share U, v and the output layer.

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

DRAWS = 2  # the fewest forward (and backward) draws of hidden weights a key is split into


class ResNet(eqx.Module):
    """Width-n, depth-L ResNet under depth-muP, built from a `Config` (spec section 1).

    `hidden[name]` holds the block's matrix `name` (`WeightGroup.parameter`) for l = 1..L
    stacked along the first axis; `backward_offsets`, under the same names, is None for standard
    backprop.
    """

    readin: Float[Array, "width dim"]
    hidden: dict[str, Float[Array, "depth width width"]]
    readout: Float[Array, "outputs width"]
    backward_offsets: dict[str, Float[Array, "depth width width"]] | None
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
        groups = self.block.weight_groups
        draws = max(DRAWS, len(groups))
        keys = jax.random.split(key, 2 + 2 * draws)
        readin_key, forward_keys = keys[0], keys[1 : 1 + draws]
        readout_key, backward_keys = keys[1 + draws], keys[2 + draws :]
        dtype = jnp.result_type(float)

        def hidden_weights(k):
            return _layer_weights(k, depth, width, dtype, depth_refinement)

        # draw i: the i-th matrix counted from the output layer backwards
        draw = {group.parameter: i for i, group in enumerate(reversed(groups))}
        self.readin = jax.random.normal(readin_key, (width, model.dim), dtype)
        self.hidden = {
            group.parameter: hidden_weights(forward_keys[draw[group.parameter]]) for group in groups
        }
        self.readout = jax.random.normal(readout_key, (model.outputs, width), dtype)
        if self.mode.has_backward_offsets:
            self.backward_offsets = {
                name: hidden_weights(backward_keys[draw[name]]) - weights
                for name, weights in self.hidden.items()
            }
        else:
            self.backward_offsets = None
        self.branch_scales = jnp.asarray(branch_scales(config, depth), dtype)
        self.readout_scale = jnp.asarray(readout_scale(config, width), dtype)
        self.activation = activation_of(config)
        self.readout_map = readout_of(config)
        self.input_scale = input_scale(model.dim)
        self.matmul_scale = matmul_scale(width)

    @property
    def width(self) -> int:
        return self.readin.shape[-2]

    @property
    def depth(self) -> int:
        return self.branch_scales.shape[-1]

    @property
    def backward(self) -> str:
        """The backward mode's name."""
        return self.mode.name

    def features(self, stream: Float[Array, "*shape width"]) -> Float[Array, "*shape width"]:
        """The features a layer passes on: phi(h) (pre-activation) or h itself (post)."""
        return self.block.features(self.activation, stream)

    def layers(self) -> BlockLayer:
        """The stacked layers, as the scan over depth reads them."""
        return BlockLayer(self.hidden, self.backward_offsets, self.branch_scales)

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
        for layer in range(self.depth):
            weights = {name: stacked[layer] for name, stacked in self.hidden.items()}
            weights = BlockLayer(weights, None, self.branch_scales[layer])
            h = self.block.apply(self.activation, h, weights, self.matmul_scale)
        return self.read_out(h)

    def parameter_groups(self) -> dict[str, Float[Array, "..."]]:
        """The trained arrays by group, the keys of `lr_multipliers`: "readin" (U), the block's
        weight groups by parameter name, "readout" (v)."""
        hidden = {g.parameter: self.hidden[g.parameter] for g in self.block.weight_groups}
        return {"readin": self.readin, **hidden, "readout": self.readout}

    def trainable_filter(self) -> PyTree[bool]:
        """Filter spec for `eqx.partition`: True on U, the W's and v; False elsewhere."""
        spec = jax.tree.map(lambda _: False, self)
        groups = len(self.parameter_groups())
        return eqx.tree_at(
            lambda m: list(m.parameter_groups().values()), spec, replace=[True] * groups
        )


def _layer_weights(key, depth: int, width: int, dtype, refinement: int):
    """(depth, width, width) standard Gaussian layers; with `refinement` r, each the normalised
    sum of r consecutive layers of a depth-rL draw from the same key."""
    fine = jax.random.normal(key, (depth * refinement, width, width), dtype)
    if refinement == 1:
        return fine
    return jnp.sum(fine.reshape(depth, refinement, width, width), axis=1) / math.sqrt(refinement)
