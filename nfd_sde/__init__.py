"""nfd-sde: Neural Feature Dynamics, the infinite-width, infinite-depth limit of ResNets."""

from ._activations import activation as activation
from ._activations import activation_derivative as activation_derivative
from ._config import (
    Config as Config,
)
from ._config import (
    DataConfig as DataConfig,
)
from ._config import (
    ModelConfig as ModelConfig,
)
from ._config import (
    NetworkConfig as NetworkConfig,
)
from ._config import (
    RunConfig as RunConfig,
)
from ._config import (
    SolverConfig as SolverConfig,
)
from ._config import (
    TrainingConfig as TrainingConfig,
)
from ._config import (
    config_from_dict as config_from_dict,
)
from ._config import (
    load_config as load_config,
)
from ._config import (
    to_dict as to_dict,
)
from ._config import (
    with_profiles as with_profiles,
)
from ._data import DataStream as DataStream
from ._data import load_stream as load_stream
from ._profiles import (
    AbstractProfile as AbstractProfile,
)
from ._profiles import (
    CallableProfile as CallableProfile,
)
from ._profiles import (
    ConstantProfile as ConstantProfile,
)
from ._profiles import (
    PiecewiseLinearProfile as PiecewiseLinearProfile,
)
from ._profiles import (
    as_profile as as_profile,
)
from ._result import Result as Result
from ._result import read_result as read_result
from ._result import write_result as write_result
