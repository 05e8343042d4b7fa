"""Configs from TOML files and `section.field=value` overrides."""

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._config import SECTIONS, Config, config_from_dict


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load a TOML config (or the defaults if `path` is None) and apply `section.field=value`
    overrides, where `value` is parsed as a TOML value (`0.5`, `"relu"`, `[[0,1],[1,0.5]]`)."""
    raw: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"config file {str(path)!r} is a directory; give a TOML file")
        if not path.is_file():
            raise FileNotFoundError(f"config file {str(path)!r} does not exist")
        with path.open("rb") as fh:
            try:
                loaded = tomllib.load(fh)
            except tomllib.TOMLDecodeError as error:
                raise ValueError(f"config file {str(path)!r} is not valid TOML: {error}") from error
        for name, fields in loaded.items():
            if not isinstance(fields, dict):
                raise ValueError(f"{path}: top-level key {name!r} must be a [section] table")
            raw.setdefault(name, {}).update(fields)
    for item in overrides:
        section, field, value = parse_override(item)
        raw.setdefault(section, {})[field] = value
    return config_from_dict(raw)


def parse_override(item: str) -> tuple[str, str, Any]:
    """Parse `section.field=value`; strings may be given without quotes."""
    if "=" not in item or "." not in item.split("=", 1)[0]:
        raise ValueError(f"override {item!r} must look like section.field=value")
    key, text = item.split("=", 1)
    section, field = key.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    return section, field, value
