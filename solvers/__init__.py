"""Generic numerics for particle systems in depth time: depth grids, conditional Gaussian noise,
Gaussian matrix paths, accumulated weight updates, schemes and sweeps, extrapolation, rate fits,
distances between ensemble means resolved against their noise. Knows nothing about ResNets."""

from ._accumulated_updates import (
    STORED_PAIRS as STORED_PAIRS,
    UPDATE_FORMS as UPDATE_FORMS,
    AbstractAccumulatedUpdates as AbstractAccumulatedUpdates,
    AbstractUpdateForm as AbstractUpdateForm,
    DenseMatrices as DenseMatrices,
    DenseUpdates as DenseUpdates,
    PairUpdates as PairUpdates,
    StoredPairs as StoredPairs,
)
from ._conditional_gaussian import (
    append_factor_rows as append_factor_rows,
    conditional_factor as conditional_factor,
    guarded_cholesky as guarded_cholesky,
)
from ._depth_grid import DepthGrid as DepthGrid
from ._depth_terms import (
    AbstractDepthTerm as AbstractDepthTerm,
    DepthInterval as DepthInterval,
    signed_root as signed_root,
)
from ._ensemble_stats import (
    MeanDistance as MeanDistance,
    Spread as Spread,
    antithetic_spread_samples as antithetic_spread_samples,
    extrapolated_distance as extrapolated_distance,
    intercept_weights as intercept_weights,
    mean_distance as mean_distance,
    plain_spread_samples as plain_spread_samples,
    spread as spread,
)
from ._extrapolation import extrapolate as extrapolate, richardson_weights as richardson_weights
from ._field_space import FieldSpace as FieldSpace
from ._fit import RateFit as RateFit, fit_loglog as fit_loglog, t95 as t95
from ._gaussian_products import (
    AbstractGaussianProduct as AbstractGaussianProduct,
    ConditionalGaussianProduct as ConditionalGaussianProduct,
    MatrixProduct as MatrixProduct,
)
from ._host_particles import (
    HostBuffer as HostBuffer,
    HostHistories as HostHistories,
    HostParticles as HostParticles,
    HostSlice as HostSlice,
    host_particles as host_particles,
)
from ._matrices import (
    AbstractMatrixSource as AbstractMatrixSource,
    KeyedGaussianMatrices as KeyedGaussianMatrices,
    StoredMatrices as StoredMatrices,
)
from ._particles import PairColumns as PairColumns, particle_gram as particle_gram
from ._pinned_particles import (
    PinnedHistories as PinnedHistories,
    PinnedParticles as PinnedParticles,
    PinnedSlice as PinnedSlice,
)
from ._registry import (
    HISTORY_STORES as HISTORY_STORES,
    REPRESENTATION_NAMES as REPRESENTATION_NAMES,
    REPRESENTATIONS as REPRESENTATIONS,
)
from ._representation_costs import (
    FIELD_BIAS as FIELD_BIAS,
    RNG_COST as RNG_COST,
    TWO_SIDED_COST as TWO_SIDED_COST,
    ProblemSizes as ProblemSizes,
    RepresentationMemory as RepresentationMemory,
)
from ._representations import (
    DIRECTIONS as DIRECTIONS,
    AbstractRepresentation as AbstractRepresentation,
    EmptyParticles as EmptyParticles,
    FieldNoise as FieldNoise,
    representation_keys as representation_keys,
    weight_keys as weight_keys,
)
from ._schemes import (
    SCHEMES as SCHEMES,
    AbstractScheme as AbstractScheme,
    EulerMaruyama as EulerMaruyama,
    ScanEulerMaruyama as ScanEulerMaruyama,
    sweep as sweep,
)
from ._sharding import (
    AxisMesh as AxisMesh,
    largest_divisor as largest_divisor,
    shard_leading_axis as shard_leading_axis,
)
from ._statistics import (
    control_variate_means as control_variate_means,
    group_mean_se as group_mean_se,
    jackknife_se as jackknife_se,
)
from ._streamed_history import (
    AbstractHistoryStore as AbstractHistoryStore,
    AbstractStreamedHistory as AbstractStreamedHistory,
    AbstractStreamedSlice as AbstractStreamedSlice,
    write_pairs as write_pairs,
)
from ._two_sided import (
    RevealedSide as RevealedSide,
    TwoSidedFieldSpace as TwoSidedFieldSpace,
    TwoSidedProduct as TwoSidedProduct,
    two_sided_product as two_sided_product,
)
from ._weight_space import WeightSpace as WeightSpace
from ._white_noise import keyed_white as keyed_white
