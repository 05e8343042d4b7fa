"""Every representation a solve can be planned with, in the order a plan prefers them at equal
cost, and every way a streamed history reaches the device. A new one is its module and one entry
here."""

from ._field_space import FieldSpace
from ._host_particles import HostHistories
from ._pinned_particles import PinnedHistories
from ._representations import AbstractRepresentation
from ._streamed_history import AbstractHistoryStore
from ._two_sided import TwoSidedFieldSpace
from ._weight_space import WeightSpace

REPRESENTATIONS: tuple[type[AbstractRepresentation], ...] = (
    FieldSpace,
    TwoSidedFieldSpace,
    WeightSpace,
)
REPRESENTATION_NAMES: tuple[str, ...] = tuple(dict.fromkeys(r.name for r in REPRESENTATIONS))

# host callbacks (`HostParticles`), or XLA memory kinds inside the compiled step (`PinnedParticles`)
HISTORY_STORES: dict[str, type[AbstractHistoryStore]] = {
    "callbacks": HostHistories,
    "memory_kinds": PinnedHistories,
}
