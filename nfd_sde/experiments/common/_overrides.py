"""Flags that are config overrides (`--width 64` is `--set network.width=64`), and how they meet
the `--set` overrides of the same fields: the flag wins, but the `--set` it hides is still
checked, so a mistake in it is reported rather than silently dropped."""

from collections.abc import Mapping, Sequence
from pathlib import Path

from ...model import Config, load_config, parse_override


def load_with_flags(
    path: Path | None, overrides: Sequence[str], flags: Mapping[str, object]
) -> Config:
    """The config of `path` with the `--set` `overrides`, then the `flags` (`section.field` ->
    value; None: not given). A `--set` of a field that a flag also gives must be valid too: the
    config with it in place of the flag is built, and its error is raised, naming the `--set`."""
    given = {field: value for field, value in flags.items() if value is not None}
    config = load_config(path, [*overrides, *(f"{k}={v}" for k, v in given.items())])
    hidden = {}  # field -> the last --set of it (the one in effect without the flag)
    for item in overrides:
        section, field, _ = parse_override(item)
        if f"{section}.{field}" in given:
            hidden[f"{section}.{field}"] = item
    for name, item in hidden.items():
        others = [f"{k}={v}" for k, v in given.items() if k != name]
        try:
            load_config(path, [*overrides, *others])
        except ValueError as error:
            raise ValueError(f"--set {item.strip()}: {error}") from None
    return config
