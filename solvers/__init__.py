"""Generic numerics for particle systems in depth time: depth grids, conditional Gaussian noise,
forward/backward sweeps, rate fits. Knows nothing about ResNets."""

from ._conditional_gaussian import (
    append_factor_rows as append_factor_rows,
)
from ._conditional_gaussian import (
    conditional_factor as conditional_factor,
)
from ._conditional_gaussian import (
    guarded_cholesky as guarded_cholesky,
)
from ._depth_grid import DepthGrid as DepthGrid
from ._fit import RateFit as RateFit
from ._fit import fit_loglog as fit_loglog
from ._matrices import (
    AbstractMatrixSource as AbstractMatrixSource,
)
from ._matrices import (
    KeyedGaussianMatrices as KeyedGaussianMatrices,
)
from ._matrices import (
    StoredMatrices as StoredMatrices,
)
from ._noise_terms import (
    ConditionalGaussianNoise as ConditionalGaussianNoise,
)
from ._noise_terms import (
    GaussianMatrixNoise as GaussianMatrixNoise,
)
from ._particles import particle_gram as particle_gram
from ._sweep import DRIVERS as DRIVERS
from ._sweep import sweep as sweep
