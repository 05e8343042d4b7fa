"""The NFD limit: particles, the limit's SGD step, the solve, and the plan that precedes it."""

from ._plan import (
    FIELD_BIAS as FIELD_BIAS,
    RNG_COST as RNG_COST,
    LimitPlan as LimitPlan,
    limit_costs as limit_costs,
    plan_limit as plan_limit,
)
from ._solve import jit_evaluate as jit_evaluate, jit_step as jit_step, solve_limit as solve_limit
from ._solver import (
    LimitSolver as LimitSolver,
    LimitState as LimitState,
    build_solver as build_solver,
)
from ._step import (
    StepOutputs as StepOutputs,
    forward_paths as forward_paths,
    limit_evaluate as limit_evaluate,
    limit_step as limit_step,
)
