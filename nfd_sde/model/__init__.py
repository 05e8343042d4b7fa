"""The model both sides describe: config, depth profiles, every scale, activations, losses,
readouts, residual blocks (finite apply and limit increments), data streams, the result schema."""

from ._activations import (
    ACTIVATIONS as ACTIVATIONS,
    GELU as GELU,
    AbstractActivation as AbstractActivation,
    Linear as Linear,
    ReLU as ReLU,
    Tanh as Tanh,
    activation as activation,
)
from ._backward_modes import (
    BACKWARD_MODES as BACKWARD_MODES,
    AbstractBackwardMode as AbstractBackwardMode,
    Decoupled as Decoupled,
    Standard as Standard,
    backward_mode as backward_mode,
)
from ._block_types import BLOCKS as BLOCKS
from ._blocks import (
    BLOCK_ORDERS as BLOCK_ORDERS,
    AbstractBlock as AbstractBlock,
    BlockLayer as BlockLayer,
    LimitContext as LimitContext,
    StepCoefficients as StepCoefficients,
)
from ._branch_matmul import branch_matmul as branch_matmul
from ._config import (
    BACKWARDS as BACKWARDS,
    REPRESENTATIONS as REPRESENTATIONS,
    Config as Config,
    DataConfig as DataConfig,
    ModelConfig as ModelConfig,
    NetworkConfig as NetworkConfig,
    RunConfig as RunConfig,
    SolverConfig as SolverConfig,
    TrainingConfig as TrainingConfig,
    config_from_dict as config_from_dict,
    supported_representations as supported_representations,
    to_dict as to_dict,
    with_profiles as with_profiles,
)
from ._config_fields import config_table as config_table
from ._config_files import load_config as load_config, parse_override as parse_override
from ._data import DataStream as DataStream, load_stream as load_stream
from ._files import write_atomic as write_atomic
from ._losses import (
    LOSSES as LOSSES,
    MSE as MSE,
    AbstractLoss as AbstractLoss,
    CrossEntropy as CrossEntropy,
    loss as loss,
)
from ._memory import (
    device_memory_gb as device_memory_gb,
    host_memory_bytes as host_memory_bytes,
    memory_limit_gb as memory_limit_gb,
)
from ._one_layer import OneLayer as OneLayer
from ._profiles import (
    AbstractProfile as AbstractProfile,
    CallableProfile as CallableProfile,
    ConstantProfile as ConstantProfile,
    PiecewiseLinearProfile as PiecewiseLinearProfile,
    as_profile as as_profile,
)
from ._readout import (
    AbstractReadout as AbstractReadout,
    LinearReadout as LinearReadout,
    PhiReadout as PhiReadout,
)
from ._result import (
    Result as Result,
    first_nonfinite_step as first_nonfinite_step,
    interval95 as interval95,
    json_ready as json_ready,
    package_versions as package_versions,
    read_result as read_result,
    run_meta as run_meta,
)
from ._scales import (
    branch_scales as branch_scales,
    effective_eta as effective_eta,
    input_scale as input_scale,
    limit_coefficients as limit_coefficients,
    limit_rates as limit_rates,
    lr_exponent as lr_exponent,
    lr_multipliers as lr_multipliers,
    matmul_scale as matmul_scale,
    readout_scale as readout_scale,
)
from ._two_layer import TwoLayer as TwoLayer
from ._variants import (
    activation_of as activation_of,
    block_of as block_of,
    loss_of as loss_of,
    readout_of as readout_of,
)
from ._weight_groups import WeightGroup as WeightGroup
