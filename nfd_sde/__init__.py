"""nfd-sde: Neural Feature Dynamics, the infinite-width, infinite-depth limit of ResNets.

Subpackages: `model` (config, profiles, scales, activations, losses, blocks, data, results),
`finite` (the Equinox ResNet, muP SGD, its trainer), `limit` (the NFD solver), `experiments`
(compare, collapse, transfer, norms, their figures and commands), `validation` (closed forms).
The names below are the everyday entry points.
"""

from . import (
    experiments as experiments,
    finite as finite,
    limit as limit,
    model as model,
    validation as validation,
)
from .experiments import (
    describe_fit as describe_fit,
    plot_collapse as plot_collapse,
    plot_compare as plot_compare,
    plot_coordinate_check as plot_coordinate_check,
    plot_kernels_along_depth as plot_kernels_along_depth,
    plot_loss_curves as plot_loss_curves,
    plot_norms as plot_norms,
    plot_overlay as plot_overlay,
    plot_transfer as plot_transfer,
    read_compare as read_compare,
    run_audit as run_audit,
    run_collapse as run_collapse,
    run_compare as run_compare,
    run_norms as run_norms,
    run_transfer as run_transfer,
    write_compare as write_compare,
    write_report as write_report,
    write_result as write_result,
)
from .finite import (
    ResNet as ResNet,
    evaluate as evaluate,
    make_network as make_network,
    sgd_step as sgd_step,
    train_finite as train_finite,
    train_losses as train_losses,
)
from .limit import (
    LimitSolver as LimitSolver,
    LimitState as LimitState,
    build_solver as build_solver,
    solve_limit as solve_limit,
)
from .model import (
    AbstractProfile as AbstractProfile,
    CallableProfile as CallableProfile,
    Config as Config,
    ConstantProfile as ConstantProfile,
    DataConfig as DataConfig,
    DataStream as DataStream,
    ModelConfig as ModelConfig,
    NetworkConfig as NetworkConfig,
    PiecewiseLinearProfile as PiecewiseLinearProfile,
    Result as Result,
    RunConfig as RunConfig,
    SolverConfig as SolverConfig,
    TrainingConfig as TrainingConfig,
    activation as activation,
    as_profile as as_profile,
    config_from_dict as config_from_dict,
    load_config as load_config,
    load_stream as load_stream,
    read_result as read_result,
    to_dict as to_dict,
    with_profiles as with_profiles,
)
