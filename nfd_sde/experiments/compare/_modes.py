"""Which finite networks compare's limit describes. The limit is solved with decoupled backward
weights (the NFD), so decoupled networks tend to it as n grows, and standard-backprop networks to
it plus the standard-vs-decoupled gap."""

from collections.abc import Iterable

from ...model import Decoupled, Standard, backward_mode

LIMIT_MODE = Decoupled()


def tends_to_the_limit(mode: str) -> bool:
    """Whether networks of backward mode `mode` (a name) tend to compare's limit."""
    return isinstance(backward_mode(mode), type(LIMIT_MODE))


def has_both_modes(modes: Iterable[str]) -> bool:
    """Whether `modes` (names) hold both standard and decoupled networks, so their gap can be
    measured."""
    kinds = {type(backward_mode(mode)) for mode in modes}
    return {Standard, Decoupled} <= kinds
