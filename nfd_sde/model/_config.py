"""One declaration of an experiment: data, model, training, finite network, limit solver, run.

The finite ResNet and the NFD limit solver are both built from the same `Config`, so they can
never describe different models. Every field is validated on construction with a message that
names the field and the allowed values.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any

from solvers import (
    HISTORY_STORES,
    REPRESENTATION_NAMES,
    REPRESENTATIONS as _REGISTERED,
    SCHEMES,
    UPDATE_FORMS,
    AbstractRepresentation,
)

from . import _validators as check
from ._activations import ACTIVATIONS as _ACTIVATIONS
from ._backward_modes import BACKWARD_MODES, AbstractBackwardMode, backward_mode
from ._block_types import BLOCKS as _BLOCKS
from ._blocks import BLOCK_ORDERS
from ._losses import LOSSES as _LOSSES
from ._profiles import AbstractProfile, ProfileLike, as_profile
from ._readout import READOUTS

ACTIVATIONS = tuple(_ACTIVATIONS)
BLOCKS = tuple(_BLOCKS)
LOSSES = tuple(_LOSSES)
DATA_SOURCES = ("teacher", "npz", "cifar10", "digits")
TEACHERS = ("linear", "tanh")
BACKWARDS = tuple(BACKWARD_MODES)
REPRESENTATIONS = ("auto", *REPRESENTATION_NAMES)
DRIVERS = tuple(SCHEMES)
PLAN_COSTS = ("model", "measured")
STREAMING = tuple(HISTORY_STORES)
DTYPES = ("float32", "float64")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the training stream and the eval inputs come from.

    `teacher`: inputs uniform on the sphere of radius sqrt(dim) (so |x|^2/d = 1), targets from a
    fixed random teacher (`linear` or a one-hidden-layer `tanh` network), regenerated from `seed`.
    `npz`: an explicit stream (`x_train` (K,B,d), `y_train` (K,B) or (K,B,C), `x_eval` (P,d),
    `y_eval`). `cifar10`: a local `cifar-10-batches-py` directory, flattened and standardised.
    `digits`: scikit-learn's bundled 8x8 handwritten digits (d = 64, 10 classes, one-hot),
    standardised and split into training and held-out images by `seed`.
    """

    source: str = "teacher"
    path: str | None = None
    eval_size: int = 8
    teacher: str = "tanh"
    teacher_width: int = 64
    label_noise: float = 0.0
    seed: int = 1

    def __post_init__(self):
        check.choice("data", "source", self.source, DATA_SOURCES)
        check.choice("data", "teacher", self.teacher, TEACHERS)
        check.positive_int("data", "eval_size", self.eval_size)
        check.positive_int("data", "teacher_width", self.teacher_width)
        check.finite("data", "label_noise", self.label_noise, minimum=0.0)
        check.seed("data", "seed", self.seed)
        if self.path is not None and not isinstance(self.path, str):
            raise ValueError(f"data.path={self.path!r}: must be a path in quotes")
        if self.source in ("npz", "cifar10") and not self.path:
            raise ValueError(f"data.path is required when data.source={self.source!r}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network both objects describe (spec section 1).

    `block_order`: `pre` is the spec's pre-activation block h_l = h_{l-1} + branch(phi(h_{l-1}));
    `post` applies phi after the addition, h_l = phi(h_{l-1} + beta/sqrt(L) W_l h_{l-1}/sqrt(n)),
    with the readout on h_L (finite networks only; used to compare feature norms along depth).
    """

    dim: int = 8
    outputs: int = 1
    activation: str = "relu"
    readout: str = "phi"
    block: str = "one_layer"
    block_order: str = "pre"
    gamma0: float = 1.0
    beta_profile: AbstractProfile = 1.0
    lr_profile: AbstractProfile = 1.0

    def __post_init__(self):
        check.positive_int("model", "dim", self.dim)
        check.positive_int("model", "outputs", self.outputs)
        check.choice("model", "activation", self.activation, ACTIVATIONS)
        check.choice("model", "readout", self.readout, READOUTS)
        check.choice("model", "block", self.block, BLOCKS)
        check.choice("model", "block_order", self.block_order, BLOCK_ORDERS)
        check.finite("model", "gamma0", self.gamma0)
        if self.gamma0 <= 0:
            raise ValueError(f"model.gamma0={self.gamma0!r}: must be > 0")
        for name in ("beta_profile", "lr_profile"):
            object.__setattr__(self, name, as_profile(getattr(self, name), name=f"model.{name}"))


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """SGD with muP learning rates: P <- P - eta * eta_P * gamma0^2 * n * grad_P(loss).

    `steps = 0` is allowed: the producers then record the outputs at initialisation."""

    eta: float = 0.5
    eta_U: float = 1.0
    eta_v: float = 1.0
    eta_W: float = 1.0
    first_layer_exponent: float = 0.0
    steps: int = 4
    batch: int = 4
    loss: str = "mse"

    def __post_init__(self):
        for name in ("eta", "eta_U", "eta_v", "eta_W"):
            check.finite("training", name, getattr(self, name), minimum=0.0)
        check.finite("training", "first_layer_exponent", self.first_layer_exponent)
        check.positive_int("training", "steps", self.steps, minimum=0)
        check.positive_int("training", "batch", self.batch)
        check.choice("training", "loss", self.loss, LOSSES)


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The finite ResNet's size and backward mode."""

    width: int = 256
    depth: int = 16
    backward: str = "standard"

    def __post_init__(self):
        check.positive_int("network", "width", self.width)
        check.positive_int("network", "depth", self.depth)
        check.choice("network", "backward", self.backward, BACKWARDS)

    @property
    def mode(self) -> AbstractBackwardMode:
        """The backward mode `backward` names."""
        return backward_mode(self.backward)


@dataclasses.dataclass(frozen=True)
class SolverConfig:
    """The NFD limit solver: particles N per group, `groups` independent particle systems (their
    spread is the Monte Carlo error), depth steps M of the finest of `levels` nested grids
    (M, M/2, M/4: Richardson extrapolation in depth, their residual the discretisation error;
    1 level: the n -> infinity limit of the depth-M network itself), control variates for the
    outputs, noise representation (compared by a cost `model` or `measured`, `plan_costs`),
    weight space's form of its updates (`weight_updates`), driver; `devices` splitting the particles
    ("all" visible devices, or a count), and `memory_limit_gb`, the memory one device may use,
    for both producers (`nfd_sde.limit.plan_limit` streams a limit's history that does not fit,
    `nfd_sde.finite.plan_finite` refuses such a network; "auto": 75% of the memory the device
    reports, such as a GPU's, else 8 GB, `nfd_sde.model.memory_limit_gb`), and how a streamed
    history reaches the device (`streaming`)."""

    particles: int = 2048
    depth_steps: int = 16
    groups: int = 8
    levels: int = 3
    control_variates: bool = True
    representation: str = "auto"
    plan_costs: str = "model"
    streaming: str = "callbacks"
    weight_updates: str = "dense"
    backward: str = "decoupled"
    driver: str = "diffrax"
    jitter: float = 1e-6
    memory_limit_gb: float | str = "auto"
    devices: int | str = "all"

    def __post_init__(self):
        check.positive_int("solver", "particles", self.particles)
        check.devices("solver", "devices", self.devices)
        check.positive_int("solver", "depth_steps", self.depth_steps)
        check.positive_int("solver", "groups", self.groups)
        check.positive_int("solver", "levels", self.levels)
        check.boolean("solver", "control_variates", self.control_variates)
        fitting = (self.depth_steps & -self.depth_steps).bit_length()  # levels it allows
        if self.levels > fitting:  # compared first: 2 ** (levels - 1) of a huge level is no number
            divisor, suggestion = f"2^{self.levels - 1}", f"use levels <= {fitting}"
            if self.levels <= 64:
                divisor = 2 ** (self.levels - 1)
                larger = -(-self.depth_steps // divisor) * divisor
                suggestion = f"use e.g. depth_steps={larger}, or levels <= {fitting}"
            raise ValueError(
                f"solver.levels={self.levels} nests grids of depth_steps, depth_steps/2, ...: "
                f"solver.depth_steps={self.depth_steps} must be divisible by {divisor}; "
                f"{suggestion}"
            )
        check.choice("solver", "representation", self.representation, REPRESENTATIONS)
        check.choice("solver", "plan_costs", self.plan_costs, PLAN_COSTS)
        check.choice("solver", "streaming", self.streaming, STREAMING)
        check.choice("solver", "weight_updates", self.weight_updates, tuple(UPDATE_FORMS))
        check.choice("solver", "backward", self.backward, BACKWARDS)
        check.choice("solver", "driver", self.driver, DRIVERS)
        check.finite("solver", "jitter", self.jitter, minimum=0.0)
        check.memory_limit("solver", "memory_limit_gb", self.memory_limit_gb)

    @property
    def mode(self) -> AbstractBackwardMode:
        """The backward mode `backward` names."""
        return backward_mode(self.backward)

    @property
    def representations(self) -> tuple[type[AbstractRepresentation], ...]:
        """The registered representations (`solvers.REPRESENTATIONS`) serving this backward
        mode; of them, those `representation` names (every one for "auto")."""
        serving = supported_representations(self.mode)
        return tuple(r for r in serving if self.representation in ("auto", r.name))

    @property
    def representation_named(self) -> bool:
        """Whether `representation` names one (else "auto": the plan picks the cheapest)."""
        return self.representation != "auto"


def supported_representations(
    mode: AbstractBackwardMode,
) -> tuple[type[AbstractRepresentation], ...]:
    """The registered representations that serve `mode`, in the registry's order."""
    return tuple(r for r in _REGISTERED if r.supports(mode.reuses_forward_weights))


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Reproducibility and bookkeeping."""

    seed: int = 0
    dtype: str = "float32"
    kernel_depths: tuple[float, ...] = (0.0, 0.5, 1.0)

    def __post_init__(self):
        check.seed("run", "seed", self.seed)
        check.choice("run", "dtype", self.dtype, DTYPES)
        depths = check.depth_times("run", "kernel_depths", self.kernel_depths)
        object.__setattr__(self, "kernel_depths", depths)


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "network": NetworkConfig,
    "solver": SolverConfig,
    "run": RunConfig,
}


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    solver: SolverConfig = dataclasses.field(default_factory=SolverConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)

    def replace(self, **sections: Mapping[str, Any]) -> "Config":
        """A copy with fields of named sections replaced: `cfg.replace(network={"width": 64})`."""
        updated = {}
        for name, fields in sections.items():
            if name not in SECTIONS:
                raise ValueError(f"unknown config section {name!r}; sections are {list(SECTIONS)}")
            updated[name] = dataclasses.replace(getattr(self, name), **dict(fields))
        return dataclasses.replace(self, **updated)


def config_from_dict(raw: Mapping[str, Any]) -> Config:
    """Build a `Config` from nested mappings, refusing unknown sections and fields."""
    sections = {}
    for name, fields in raw.items():
        if name not in SECTIONS:
            raise ValueError(f"unknown config section {name!r}; sections are {list(SECTIONS)}")
        cls = SECTIONS[name]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(fields) - known
        if unknown:
            raise ValueError(
                f"unknown field(s) {sorted(unknown)} in section [{name}]; known: {sorted(known)}"
            )
        values = dict(fields)
        if name == "run" and isinstance(values.get("kernel_depths"), list):
            values["kernel_depths"] = tuple(values["kernel_depths"])
        sections[name] = cls(**values)
    return Config(**sections)


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """The fully resolved config as plain data (profiles as constants or knot lists)."""
    out = {}
    for name in SECTIONS:
        section = getattr(config, name)
        values = {}
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, AbstractProfile):
                value = value.to_serialisable()
            elif isinstance(value, tuple):
                value = list(value)
            values[f.name] = value
        out[name] = values
    return out


def with_profiles(
    config: Config, *, beta: ProfileLike | None = None, lr: ProfileLike | None = None
) -> Config:
    """A copy with Python-callable (or any) depth profiles, which TOML cannot express."""
    model = config.model
    model = dataclasses.replace(
        model,
        beta_profile=model.beta_profile if beta is None else beta,
        lr_profile=model.lr_profile if lr is None else lr,
    )
    return dataclasses.replace(config, model=model)
