"""gia: the gradient-independence protocol on the digits (docs/gia_digits.md): standard against
decoupled backprop in finite networks under depth-muP and plain muP (`run_gia_digits`), its figure
and the `gia-digits` command."""

from ._command import GIA_DIGITS as GIA_DIGITS, digits_protocol as digits_protocol
from ._digits import (
    SCALINGS as SCALINGS,
    fit_gap as fit_gap,
    paired_gap as paired_gap,
    run_gia_digits as run_gia_digits,
)
from ._plots import plot_gia_digits as plot_gia_digits

# this wing's commands, in the order `nfd-sde --help` lists them
COMMANDS = (GIA_DIGITS,)
