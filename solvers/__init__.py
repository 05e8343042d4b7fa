"""Generic numerics for particle systems in depth time: depth grids, conditional Gaussian noise,
forward/backward sweeps, rate fits. Knows nothing about ResNets."""

from ._conditional_gaussian import (
    append_factor_rows as append_factor_rows,
    conditional_factor as conditional_factor,
    guarded_cholesky as guarded_cholesky,
)
from ._depth_grid import DepthGrid as DepthGrid
from ._fit import RateFit as RateFit, fit_loglog as fit_loglog
from ._matrices import (
    AbstractMatrixSource as AbstractMatrixSource,
    KeyedGaussianMatrices as KeyedGaussianMatrices,
    StoredMatrices as StoredMatrices,
)
from ._noise_terms import (
    ConditionalGaussianNoise as ConditionalGaussianNoise,
    GaussianMatrixNoise as GaussianMatrixNoise,
)
from ._particles import particle_gram as particle_gram
from ._sweep import DRIVERS as DRIVERS, sweep as sweep
