"""The residual blocks a config can name."""

from ._one_layer import OneLayer
from ._two_layer import TwoLayer

BLOCKS = {cls.name: cls for cls in (OneLayer, TwoLayer)}
