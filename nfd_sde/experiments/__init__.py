"""Experiments, in wings over one shared base (docs/architecture.md):

* `common`: validated arguments, the atomic records, figures' helpers, the evidence rule, and
  the one shape of an experiment command, `AbstractExperiment` (run -> data, figures, record);
* `single_runs`: `train`, `solve` and the `demo`;
* `compare`: finite networks against the NFD limit over widths and depths, and its report;
* `two_layer`: the collapse, learning-rate transfer and feature norms of two-layer blocks;
* `gia`: standard against decoupled backprop on the digits;
* `audit`: every claim of the paper at one scale, with verdicts.

A wing reaches another only through its `__init__`; `common` reaches no wing. Every output goes
through the one atomic writer of `common` (`write_json`, `write_text`)."""

from . import audit, compare, gia, single_runs, two_layer
from .audit import (
    CLAIMS as CLAIMS,
    SCALES as SCALES,
    AbstractClaim as AbstractClaim,
    AuditContext as AuditContext,
    AuditScale as AuditScale,
    audit_configs as audit_configs,
    run_audit as run_audit,
)
from .common import (
    AbstractExperiment as AbstractExperiment,
    Command as Command,
    count as count,
    new_figure as new_figure,
    numbers as numbers,
    palette as palette,
    plot_loss_curves as plot_loss_curves,
    plot_overlay as plot_overlay,
    read_json as read_json,
    save_figure as save_figure,
    sizes as sizes,
    write_json as write_json,
    write_result as write_result,
    write_text as write_text,
)
from .compare import (
    COMPARE_FILE as COMPARE_FILE,
    DEPTH_REFERENCES as DEPTH_REFERENCES,
    FIGURES as FIGURES,
    AbstractDepthReference as AbstractDepthReference,
    DeepestDepth as DeepestDepth,
    SuccessiveDepths as SuccessiveDepths,
    check_grid as check_grid,
    describe_fit as describe_fit,
    describe_infinite_gap as describe_infinite_gap,
    plot_compare as plot_compare,
    plot_kernels_along_depth as plot_kernels_along_depth,
    rate_lines as rate_lines,
    read_compare as read_compare,
    read_compare_runs as read_compare_runs,
    render_report as render_report,
    run_compare as run_compare,
    write_compare as write_compare,
    write_report as write_report,
)
from .gia import (
    SCALINGS as SCALINGS,
    digits_protocol as digits_protocol,
    fit_gap as fit_gap,
    paired_gap as paired_gap,
    plot_gia_digits as plot_gia_digits,
    run_gia_digits as run_gia_digits,
)
from .two_layer import (
    CHANGES as CHANGES,
    coordinate_check as coordinate_check,
    layer_changes as layer_changes,
    plot_collapse as plot_collapse,
    plot_collapse_limit as plot_collapse_limit,
    plot_coordinate_check as plot_coordinate_check,
    plot_norms as plot_norms,
    plot_transfer as plot_transfer,
    run_collapse as run_collapse,
    run_collapse_limit as run_collapse_limit,
    run_norms as run_norms,
    run_transfer as run_transfer,
    transfer_run_name as transfer_run_name,
)

# The command line's commands, in the order `nfd-sde --help` lists them: each wing's, in turn.
COMMANDS = (
    *single_runs.COMMANDS,
    *compare.COMMANDS,
    *two_layer.COMMANDS,
    *gia.COMMANDS,
    *audit.COMMANDS,
)
