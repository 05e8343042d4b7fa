"""The NFD limit: particles, the limit's SGD step, the solve, and the plan that precedes it."""

from ..model import device_memory_gb as device_memory_gb  # "auto" solver.memory_limit_gb
from ._coupling import coupling_gap as coupling_gap
from ._diagnostics import first_layer_changes as first_layer_changes
from ._groups import (
    build_groups as build_groups,
    jit_control_gram as jit_control_gram,
    jit_evaluate as jit_evaluate,
    jit_step as jit_step,
)
from ._measured_plan import fill_history as fill_history, plan_for as plan_for
from ._plan import LimitPlan as LimitPlan, plan_limit as plan_limit
from ._solve import level_steps as level_steps, solve_limit as solve_limit
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
from ._target import (
    TargetPlan as TargetPlan,
    plan_target_error as plan_target_error,
    relative_errors as relative_errors,
    solve_to_target as solve_to_target,
)
