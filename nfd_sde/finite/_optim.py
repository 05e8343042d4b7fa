"""muP SGD as an optax `GradientTransformation` (spec section 1).

    P <- P - eta * m_P * grad_P(loss),    m_P = eta_P * gamma0^2 * n  (from `_scales`)

per parameter group P: U (readin), the block's weight groups (`AbstractBlock.weight_groups`: W_l
"hidden", and W_{l,1} "hidden_first" in two-layer blocks), v (readout), as
`ResNet.parameter_groups` lists them and `nfd_sde.model.lr_multipliers` scales them. The
multipliers are a pytree shaped like the trainable part of the model (`eqx.filter(model,
model.trainable_filter())`); a multiplier 0 freezes its group. Backward offsets and branch scales
are not in that pytree, so they are never updated.
"""

import equinox as eqx
import jax
import optax
from jaxtyping import PyTree

from ..model import Config, lr_multipliers
from ._resnet import ResNet


def trainable_parameters(model: ResNet) -> PyTree:
    """The trained arrays of `model` (U, W's, v), None elsewhere."""
    return eqx.filter(model, model.trainable_filter())


def mup_multipliers(config: Config, model: ResNet) -> PyTree:
    """Per-group learning-rate multipliers, shaped like `trainable_parameters(model)`.

    Hidden groups carry shape (depth, 1, 1) so they broadcast against the stacked weights.
    """
    multipliers = lr_multipliers(config, model.width, model.depth)
    groups = model.parameter_groups()
    return eqx.tree_at(
        lambda m: [m.parameter_groups()[name] for name in groups],
        trainable_parameters(model),
        replace=[multipliers[name].astype(array.dtype) for name, array in groups.items()],
    )


def scale_by_multipliers(multipliers: PyTree) -> optax.GradientTransformation:
    """Multiply each update leaf by its multiplier (a pytree with the updates' structure)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, m: u * m, updates, multipliers), state

    return optax.GradientTransformation(init_fn, update_fn)


def mup_sgd_from(multipliers: PyTree, eta) -> optax.GradientTransformation:
    """SGD with learning rate `eta` (a float or a traced scalar) and per-group `multipliers`.

    Built inside a jitted function from traced `multipliers` and `eta`, one compilation serves
    every learning rate and every network of the same shapes."""
    return optax.chain(scale_by_multipliers(multipliers), optax.sgd(eta))


def mup_sgd(config: Config, model: ResNet) -> optax.GradientTransformation:
    """SGD with learning rate `training.eta` and the muP multipliers of `model`'s groups."""
    return mup_sgd_from(mup_multipliers(config, model), config.training.eta)
