"""compare: finite networks over a width x depth grid against the NFD limit (`run_compare`), its
figures (`plot_compare`), its resumable store, its rates and the report (`write_report`), and the
`compare` and `report` commands (docs/compare.md)."""

from ._command import COMPARE as COMPARE, REPORT as REPORT
from ._compare import check_grid as check_grid, run_compare as run_compare
from ._depth_reference import (
    DEPTH_REFERENCES as DEPTH_REFERENCES,
    AbstractDepthReference as AbstractDepthReference,
    DeepestDepth as DeepestDepth,
    SuccessiveDepths as SuccessiveDepths,
)
from ._fits import expected_line as expected_line
from ._kernel_plots import plot_kernels_along_depth as plot_kernels_along_depth
from ._modes import (
    LIMIT_MODE as LIMIT_MODE,
    has_both_modes as has_both_modes,
    tends_to_the_limit as tends_to_the_limit,
)
from ._plots import FIGURES as FIGURES, plot_compare as plot_compare
from ._report import (
    describe_fit as describe_fit,
    describe_infinite_gap as describe_infinite_gap,
    rate_lines as rate_lines,
    render_report as render_report,
    write_report as write_report,
)
from ._store import (
    COMPARE_FILE as COMPARE_FILE,
    read_compare as read_compare,
    read_compare_runs as read_compare_runs,
    write_compare as write_compare,
)

# this wing's commands, in the order `nfd-sde --help` lists them
COMMANDS = (COMPARE, REPORT)
