"""Every scale of the model in one place: the finite network and the limit both read them here.

Finite network (width n, depth L), spec section 1:
    h_0 = U x * input_scale,  h_l = h_{l-1} + branch_scale_l * W_l phi(h_{l-1}) * matmul_scale,
    f = v . phi(h_L) * readout_scale,
and SGD steps `P <- P - eta * lr_multiplier_P * grad_P(loss)`.

NFD limit, spec section 2: the same profiles beta(t), eta_lr(t), with `eta` replaced by
`effective_eta = eta * gamma0` and the output divided by gamma0.
"""

import math

import jax.numpy as jnp
from jaxtyping import Array, Float

from solvers import DepthGrid

from ._blocks import StepCoefficients
from ._config import Config
from ._variants import block_of
from ._weight_groups import WeightGroup


def layer_times(depth: int) -> Float[Array, " depth"]:
    """Depth time `t_{l-1} = (l - 1) / L` at which layer l = 1..L reads its profiles: the
    step times of the L-step depth grid."""
    return DepthGrid(depth).step_times


def input_scale(dim: int) -> float:
    return 1.0 / math.sqrt(dim)


def matmul_scale(width: int) -> float:
    return 1.0 / math.sqrt(width)


def readout_scale(config: Config, width: int) -> float:
    return 1.0 / (config.model.gamma0 * width)


def branch_scales(config: Config, depth: int) -> Float[Array, " depth"]:
    """beta(t_{l-1}) / sqrt(L) for l = 1..L: the depth-muP branch multiplier."""
    return config.model.beta_profile(layer_times(depth)) / math.sqrt(depth)


def lr_exponent(config: Config, group: WeightGroup) -> float:
    """c: `group` learns at eta L^c in a depth-L network (M^c on an M-step grid), c the
    `training` field its declaration names (`WeightGroup.exponent`), or 0."""
    if group.exponent is None:
        return 0.0
    try:
        return getattr(config.training, group.exponent)
    except AttributeError:
        raise ValueError(
            f"weight group {group.limit} declares exponent {group.exponent!r}, which is not a "
            "field of `training`"
        ) from None


def lr_multipliers(config: Config, width: int, depth: int) -> dict[str, Float[Array, "..."]]:
    """The muP learning-rate multipliers `eta_P * gamma0^2 * n` per parameter group: "readin",
    the block's weight groups by parameter name (`AbstractBlock.weight_groups`), "readout".

    Hidden layers carry the profile eta_lr(t_{l-1}) (shape (L, 1, 1) to broadcast against the
    stacked weights) and the depth factor L^c of their group (`lr_exponent`; in a two-layer block
    the first internal layer W_{l,1}'s c = `training.first_layer_exponent`).
    """
    train = config.training
    mup = config.model.gamma0**2 * width
    per_layer = train.eta_W * mup * config.model.lr_profile(layer_times(depth))[:, None, None]
    hidden = {
        group.parameter: per_layer * depth ** lr_exponent(config, group)
        for group in block_of(config).weight_groups
    }
    return {
        "readin": jnp.asarray(train.eta_U * mup),
        **hidden,
        "readout": jnp.asarray(train.eta_v * mup),
    }


def effective_eta(config: Config) -> float:
    """The learning rate as it appears in the NFD drift terms: eta * gamma0 (spec section 2)."""
    return config.training.eta * config.model.gamma0


def limit_coefficients(config: Config, *, steps: int, batch: int, dtype) -> StepCoefficients:
    """The per-step coefficients of the limit on an M-step grid (M = steps), read at t_m as the
    depth-M network's layer m + 1 reads them: beta(t_m), the learning drift
    eta gamma0 eta_W eta_lr(t_m) beta(t_m)^2 / B, the bare rate eta gamma0 eta_W eta_lr(t_m) / B,
    and each of the block's matrices' gain M^c (`lr_exponent`)."""
    t = DepthGrid(steps).step_times
    beta = config.model.beta_profile(t).astype(dtype)
    lr = config.model.lr_profile(t).astype(dtype)
    eta = effective_eta(config)
    return StepCoefficients(
        beta=beta,
        drift=eta * config.training.eta_W * lr * beta**2 / batch,
        rate=eta * config.training.eta_W * lr / batch,
        gains={
            group.limit: jnp.asarray(float(steps) ** lr_exponent(config, group), dtype)
            for group in block_of(config).weight_groups
        },
    )


def limit_rates(config: Config, dtype) -> dict[str, Float[Array, ""]]:
    """gamma0 and the read-in and readout learning rates of the limit, eta gamma0 eta_P."""
    eta = effective_eta(config)
    return {
        "gamma0": jnp.asarray(config.model.gamma0, dtype),
        "readin": jnp.asarray(eta * config.training.eta_U, dtype),
        "readout": jnp.asarray(eta * config.training.eta_v, dtype),
    }
