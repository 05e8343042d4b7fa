"""The objects a config names, built in one place: activation, loss, block, readout."""

from ._activations import AbstractActivation, activation
from ._block_types import BLOCKS
from ._blocks import AbstractBlock
from ._config import Config
from ._losses import AbstractLoss, loss
from ._readout import AbstractReadout, LinearReadout, PhiReadout


def activation_of(config: Config) -> AbstractActivation:
    return activation(config.model.activation)


def loss_of(config: Config) -> AbstractLoss:
    return loss(config.training.loss)


def block_of(config: Config) -> AbstractBlock:
    """The residual block of `model.block` in the order of `model.block_order`."""
    return BLOCKS[config.model.block](order=config.model.block_order)


def readout_of(config: Config) -> AbstractReadout:
    """phi(h_L) or h_L; post-activation blocks always read out h_L (already activated)."""
    if config.model.readout == "linear" or config.model.block_order == "post":
        return LinearReadout()
    return PhiReadout(activation_of(config))
