"""two_layer: the diagnostics of two-layer blocks (docs/two_layer.md): the first layer's collapse
against depth and the muP coordinate check (`run_collapse`), the collapse in the limit
(`run_collapse_limit`), learning-rate transfer across depth (`run_transfer`), pre- against
post-activation feature norms (`run_norms`), their figures, and the `collapse`, `transfer`
and `norms` commands."""

from ._collapse import (
    CHANGES as CHANGES,
    coordinate_check as coordinate_check,
    layer_changes as layer_changes,
    run_collapse as run_collapse,
)
from ._collapse_limit import (
    plot_collapse_limit as plot_collapse_limit,
    run_collapse_limit as run_collapse_limit,
)
from ._commands import COLLAPSE as COLLAPSE, NORMS as NORMS, TRANSFER as TRANSFER
from ._norms import run_norms as run_norms
from ._plots import (
    plot_collapse as plot_collapse,
    plot_coordinate_check as plot_coordinate_check,
    plot_norms as plot_norms,
    plot_transfer as plot_transfer,
)
from ._transfer import run_transfer as run_transfer, transfer_run_name as transfer_run_name

# this wing's commands, in the order `nfd-sde --help` lists them
COMMANDS = (COLLAPSE, TRANSFER, NORMS)
