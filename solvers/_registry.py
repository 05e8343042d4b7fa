"""Every representation a solve can be planned with, in the order a plan prefers them at equal
cost. A new representation is its module and one entry here."""

from ._field_space import FieldSpace
from ._representations import AbstractRepresentation
from ._two_sided import TwoSidedFieldSpace
from ._weight_space import WeightSpace

REPRESENTATIONS: tuple[type[AbstractRepresentation], ...] = (
    FieldSpace,
    TwoSidedFieldSpace,
    WeightSpace,
)
REPRESENTATION_NAMES: tuple[str, ...] = tuple(dict.fromkeys(r.name for r in REPRESENTATIONS))
