"""nfd-sde: Neural Feature Dynamics, the infinite-width, infinite-depth limit of ResNets."""

from ._activations import activation as activation, activation_derivative as activation_derivative
from ._collapse import (
    collapse_diagnostic as collapse_diagnostic,
    feature_norms as feature_norms,
    train_losses as train_losses,
)
from ._compare import run_compare as run_compare, write_compare as write_compare
from ._config import (
    Config as Config,
    DataConfig as DataConfig,
    ModelConfig as ModelConfig,
    NetworkConfig as NetworkConfig,
    RunConfig as RunConfig,
    SolverConfig as SolverConfig,
    TrainingConfig as TrainingConfig,
    config_from_dict as config_from_dict,
    load_config as load_config,
    to_dict as to_dict,
    with_profiles as with_profiles,
)
from ._data import DataStream as DataStream, load_stream as load_stream
from ._finite_training import (
    evaluate as evaluate,
    make_network as make_network,
    sgd_step as sgd_step,
    train_finite as train_finite,
)
from ._limit_solver import (
    LimitSolver as LimitSolver,
    LimitState as LimitState,
    build_solver as build_solver,
    solve_limit as solve_limit,
)
from ._plots import plot_loss_curves as plot_loss_curves, plot_overlay as plot_overlay
from ._profiles import (
    AbstractProfile as AbstractProfile,
    CallableProfile as CallableProfile,
    ConstantProfile as ConstantProfile,
    PiecewiseLinearProfile as PiecewiseLinearProfile,
    as_profile as as_profile,
)
from ._report import write_report as write_report
from ._resnet import ResNet as ResNet
from ._result import Result as Result, read_result as read_result, write_result as write_result
from ._transfer import transfer_sweep as transfer_sweep
from ._two_layer_plots import (
    plot_collapse as plot_collapse,
    plot_coordinate_check as plot_coordinate_check,
    plot_norms as plot_norms,
    plot_transfer as plot_transfer,
)
