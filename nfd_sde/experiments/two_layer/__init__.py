"""two_layer: the diagnostics of two-layer blocks (docs/two_layer.md): the first layer's collapse
against depth and the muP coordinate check (`collapse_diagnostic`), the collapse in the limit
(`collapse_against_limit`), learning-rate transfer across depth (`transfer_sweep`), pre- against
post-activation feature norms (`feature_norms`), their figures, and the `collapse`, `transfer`
and `norms` commands."""

from ._collapse import (
    CHANGES as CHANGES,
    collapse_diagnostic as collapse_diagnostic,
    coordinate_check as coordinate_check,
    layer_changes as layer_changes,
)
from ._collapse_limit import (
    collapse_against_limit as collapse_against_limit,
    plot_collapse_limit as plot_collapse_limit,
)
from ._commands import COLLAPSE as COLLAPSE, NORMS as NORMS, TRANSFER as TRANSFER
from ._norms import feature_norms as feature_norms
from ._plots import (
    plot_collapse as plot_collapse,
    plot_coordinate_check as plot_coordinate_check,
    plot_norms as plot_norms,
    plot_transfer as plot_transfer,
)
from ._transfer import run_name as run_name, transfer_sweep as transfer_sweep

# this wing's commands, in the order `nfd-sde --help` lists them
COMMANDS = (COLLAPSE, TRANSFER, NORMS)
