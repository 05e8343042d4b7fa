"""The finite depth-muP ResNet (Equinox, scanned blocks), muP SGD (Optax) and its trainer."""

from ._ensemble import (
    default_chunk as default_chunk,
    ensemble_networks as ensemble_networks,
    train_ensemble as train_ensemble,
    train_losses_ensemble as train_losses_ensemble,
    train_members as train_members,
)
from ._optim import (
    mup_multipliers as mup_multipliers,
    mup_sgd as mup_sgd,
    mup_sgd_from as mup_sgd_from,
    trainable_parameters as trainable_parameters,
)
from ._plan import (
    FinitePlan as FinitePlan,
    network_bytes as network_bytes,
    plan_finite as plan_finite,
)
from ._resnet import ResNet as ResNet
from ._trainer import (
    AbstractRecorder as AbstractRecorder,
    EvalKernels as EvalKernels,
    EvalLoss as EvalLoss,
    LossCurves as LossCurves,
    run_training as run_training,
    train_finite as train_finite,
    train_losses as train_losses,
    train_scan as train_scan,
)
from ._training import (
    EvalRecord as EvalRecord,
    StepRecord as StepRecord,
    evaluate as evaluate,
    gradient_paths as gradient_paths,
    init_optimizer as init_optimizer,
    make_network as make_network,
    mup_sgd_step as mup_sgd_step,
    network_outputs as network_outputs,
    residual_stream as residual_stream,
    sgd_step as sgd_step,
)
