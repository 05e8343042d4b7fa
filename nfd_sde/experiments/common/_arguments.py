"""What every experiment validates and parses the same way: grids of sizes, counts, lists of
numbers and learning rates (for the Python API and, as argparse types, for the command line),
the config/--out/--set/--overwrite arguments, and the refusal to overwrite a finished result."""

import argparse
import contextlib
import math
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

_INTEGER = re.compile(r"[0-9]+")


def is_integer(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def count(name: str, value: Any) -> int:
    """An integer >= 1 (seeds, particles, steps), or ValueError naming `name`."""
    if not is_integer(value) or value < 1:
        raise ValueError(f"{name}={value!r}: must be an integer >= 1")
    return int(value)


def sizes(name: str, values: Any) -> tuple[int, ...]:
    """Distinct integers >= 1 (widths, depths), sorted; ValueError naming `name` otherwise."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"{name}={values!r}: give a list of integers >= 1")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty: give at least one integer >= 1")
    for value in values:
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name}={values!r}: {value!r} is not an integer >= 1")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}={values!r}: every value must appear once")
    return tuple(sorted(int(v) for v in values))


def numbers(name: str, values: Any, *, positive: bool = False) -> tuple[float, ...]:
    """Distinct finite numbers (exponents c; learning rates with `positive`), sorted."""
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"{name}={values!r}: give a list of numbers")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty: give at least one number")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{name}: {v!r} is not a finite number")
        if positive and v <= 0:
            raise ValueError(f"{name}: {v!r} must be > 0")
    if len(set(values)) != len(values):
        raise ValueError(f"{name}={values!r}: every value must appear once")
    return tuple(sorted(float(v) for v in values))


# ---------------------------------------------------------------- argparse types (command line)


def count_type(text: str) -> int:
    """A strict integer >= 1 (no signs, no decimals)."""
    text = text.strip()
    if not _INTEGER.fullmatch(text) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def sizes_type(text: str, *, example: str = "64,128,256") -> tuple[int, ...]:
    """A comma-separated list of distinct integers >= 1, e.g. `64,128,256`; `example` is the
    flag's own example in the messages (bind it with `functools.partial`)."""
    hint = f"give comma-separated integers >= 1, e.g. {example}"
    if not text.strip():
        raise argparse.ArgumentTypeError(f"empty list; {hint}")
    values = []
    for item in text.split(","):
        item = item.strip()
        if not _INTEGER.fullmatch(item) or int(item) < 1:
            shown = repr(item) if item else "an empty item"
            where = f" in {text!r}" if "," in text else ""
            raise argparse.ArgumentTypeError(f"{shown}{where} is not an integer >= 1; {hint}")
        values.append(int(item))
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a value; {hint}")
    return tuple(values)


def nested_depths_type(text: str) -> tuple[int, int | None]:
    """`M` or nested grids `M1,M2,...` (each twice the previous): (finest M, levels or None)."""
    steps = sizes_type(text, example="64, or nested grids 16,32,64")
    ordered = sorted(steps)
    if any(b != 2 * a for a, b in zip(ordered, ordered[1:])):
        raise argparse.ArgumentTypeError(
            f"{text!r}: nested depth grids must each be twice the previous, e.g. 16,32,64"
        )
    return ordered[-1], (len(ordered) if len(ordered) > 1 else None)


def numbers_type(text: str, *, example: str = "0,0.25,0.5") -> tuple[float, ...]:
    """A comma-separated list of finite numbers, e.g. `0,0.25,0.5`."""
    values = []
    for item in _items(text, f"give comma-separated numbers, e.g. {example}"):
        try:
            value = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{item!r} in {text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{item!r} in {text!r} is not finite")
        values.append(value)
    return tuple(values)


def learning_rates_type(text: str, *, example: str = "2^-4:2") -> tuple[float, ...]:
    """Numbers, powers `2^k`, and ranges `2^a:b` (every 2^k, k = a..b integer)."""
    values = []
    for item in _items(text, f"give numbers, powers 2^k or ranges 2^a:b, e.g. {example}"):
        try:
            if item.startswith("2^") and ":" in item:
                low, high = (int(v) for v in item[2:].split(":"))
                if low > high:
                    raise ValueError
                values += [2.0**k for k in range(low, high + 1)]
            elif item.startswith("2^"):
                values.append(2.0 ** float(item[2:]))
            else:
                values.append(float(item))
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not a number, a power 2^k or a range 2^a:b (a <= b)"
            ) from None
    return tuple(values)


def _items(text: str, example: str) -> list[str]:
    items = [item.strip() for item in str(text).split(",")]
    if any(not item for item in items):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty item; {example}")
    return items


# ---------------------------------------------------------------------- shared arguments


def add_run_arguments(parser: argparse.ArgumentParser, *, example: str) -> None:
    """CONFIG (optional), --out DIR, repeatable --set SECTION.FIELD=VALUE, --overwrite."""
    parser.add_argument("config", nargs="?", type=Path, help="TOML config (default: defaults)")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.FIELD=VALUE",
        help=f"override a config field (repeatable), e.g. --set {example}",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace results in --out")


def refuse_existing(out: Path, *, overwrite: bool, name: str = "result.json") -> None:
    """Stop before any work if `out` cannot take the output (`check_out_dir`) or `out/name`
    already holds a result and `overwrite` is not set."""
    check_out_dir(out)
    if (out / name).exists() and not overwrite:
        raise ValueError(
            f"{str(out / name)!r} already exists; pass --overwrite to replace it "
            "or choose another --out"
        )


def check_out_dir(out: Path) -> None:
    """Stop before any work unless the directory `out` (--out) can be created and written: create
    it (and its missing parents) and a temporary file in it, then remove what was created."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ValueError(
                f"--out {str(out)!r} cannot be created ({error.strerror or error}); "
                "choose another --out"
            ) from None
        try:
            with tempfile.TemporaryFile(dir=out):
                pass
        except OSError as error:
            raise ValueError(
                f"--out {str(out)!r} is not writable ({error.strerror or error}); "
                "choose another --out"
            ) from None
    finally:
        for path in created:  # deepest first; the outputs' writer creates them again
            with contextlib.suppress(OSError):
                path.rmdir()
