"""Validation problems with known answers: closed forms (spec section 3) and reference kernels,
shared by the tests, the notebooks and the audit."""

from ._closed_forms import (
    backward_second_moment as backward_second_moment,
    first_layer_change_exponent as first_layer_change_exponent,
    first_step_change as first_step_change,
    forward_second_moment as forward_second_moment,
    second_step_gradient_moment as second_step_gradient_moment,
    two_layer_first_step_change as two_layer_first_step_change,
)
from ._linear_reference import linear_reference as linear_reference
from ._network_identity import (
    field_limit_from_network as field_limit_from_network,
    limit_from_network as limit_from_network,
)
from ._reference_kernels import (
    euler_gradient_kernel as euler_gradient_kernel,
    euler_kernel as euler_kernel,
    initial_sigma as initial_sigma,
    ode_kernel as ode_kernel,
    relu_derivative_expectation as relu_derivative_expectation,
    relu_expectation as relu_expectation,
)
