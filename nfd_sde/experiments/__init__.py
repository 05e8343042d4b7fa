"""Experiments: each is `run(...) -> data`, figures drawn from that data, and a `Command` that
puts it on the command line. Every output goes through the one atomic writer of `_records`."""

from ._arguments import count as count, numbers as numbers, sizes as sizes
from ._audit import AUDIT, CLAIMS as CLAIMS, audit_configs as audit_configs, run_audit as run_audit
from ._audit_claims import AbstractClaim as AbstractClaim, AuditContext as AuditContext
from ._audit_scales import SCALES as SCALES, AuditScale as AuditScale
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
from ._commands import Command as Command
from ._compare import check_grid as check_grid, run_compare as run_compare
from ._compare_command import COMPARE, REPORT
from ._compare_plots import FIGURES as FIGURES, plot_compare as plot_compare
from ._compare_store import (
    COMPARE_FILE as COMPARE_FILE,
    read_compare as read_compare,
    read_compare_runs as read_compare_runs,
    write_compare as write_compare,
)
from ._demo import DEMO
from ._depth_reference import (
    DEPTH_REFERENCES as DEPTH_REFERENCES,
    AbstractDepthReference as AbstractDepthReference,
    DeepestDepth as DeepestDepth,
    SuccessiveDepths as SuccessiveDepths,
)
from ._gia_digits import (
    SCALINGS as SCALINGS,
    fit_gap as fit_gap,
    gia_digits as gia_digits,
    paired_gap as paired_gap,
)
from ._gia_digits_command import GIA_DIGITS, digits_protocol as digits_protocol
from ._gia_digits_plots import plot_gia_digits as plot_gia_digits
from ._kernel_plots import plot_kernels_along_depth as plot_kernels_along_depth
from ._norms import feature_norms as feature_norms
from ._plots import (
    new_figure as new_figure,
    palette as palette,
    plot_loss_curves as plot_loss_curves,
    plot_overlay as plot_overlay,
    save_figure as save_figure,
)
from ._records import (
    read_json as read_json,
    write_json as write_json,
    write_result as write_result,
    write_text as write_text,
)
from ._report import (
    describe_fit as describe_fit,
    describe_infinite_gap as describe_infinite_gap,
    rate_lines as rate_lines,
    render_report as render_report,
    write_report as write_report,
)
from ._single_runs import SOLVE, TRAIN
from ._transfer import run_name as run_name, transfer_sweep as transfer_sweep
from ._two_layer_commands import COLLAPSE, NORMS, TRANSFER
from ._two_layer_plots import (
    plot_collapse as plot_collapse,
    plot_coordinate_check as plot_coordinate_check,
    plot_norms as plot_norms,
    plot_transfer as plot_transfer,
)

# The command line's commands, in the order `nfd-sde --help` lists them.
COMMANDS = (TRAIN, SOLVE, DEMO, COMPARE, REPORT, COLLAPSE, TRANSFER, NORMS, GIA_DIGITS, AUDIT)
