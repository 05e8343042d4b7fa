"""What every wing of the experiments shares: validated arguments and the command line's types
(`_arguments`), the `Command` registration and the one shape of an experiment command
(`AbstractExperiment`), the atomic records and their readers (`_records`), the figures' helpers
(`_plots`), the flags that are config overrides (`_overrides`) and the evidence rule for rates
(`_evidence`). It imports no wing."""

from ._arguments import (
    add_run_arguments as add_run_arguments,
    check_out_dir as check_out_dir,
    count as count,
    count_type as count_type,
    learning_rates_type as learning_rates_type,
    nested_depths_type as nested_depths_type,
    numbers as numbers,
    numbers_type as numbers_type,
    refuse_existing as refuse_existing,
    sizes as sizes,
    sizes_type as sizes_type,
)
from ._commands import Command as Command
from ._evidence import (
    FAILS as FAILS,
    HOLDS as HOLDS,
    INCONCLUSIVE as INCONCLUSIVE,
    MIN_SIZES as MIN_SIZES,
    RATE_RULE as RATE_RULE,
    VERDICTS as VERDICTS,
    fit_sizes as fit_sizes,
    rate_caveats as rate_caveats,
    rate_outcome as rate_outcome,
    too_few_sizes as too_few_sizes,
)
from ._experiment import (
    AbstractExperiment as AbstractExperiment,
    with_meta as with_meta,
    write_record as write_record,
)
from ._overrides import load_with_flags as load_with_flags
from ._plots import (
    LIMIT_STYLE as LIMIT_STYLE,
    draw_band as draw_band,
    integer_ticks as integer_ticks,
    legend_below as legend_below,
    log_if_positive as log_if_positive,
    new_figure as new_figure,
    palette as palette,
    plot_loss_curves as plot_loss_curves,
    plot_overlay as plot_overlay,
    save_figure as save_figure,
)
from ._records import (
    RESULT_FILE as RESULT_FILE,
    read_json as read_json,
    read_npz as read_npz,
    write_json as write_json,
    write_npz as write_npz,
    write_result as write_result,
    write_text as write_text,
)
