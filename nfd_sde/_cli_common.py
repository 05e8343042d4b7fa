"""Pieces every `nfd-sde` subcommand shares: the config/--out/--set/--overwrite arguments and the
refusal to overwrite a finished result."""

import argparse
from pathlib import Path


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
    """Stop before any work if `out/name` already holds a result and `overwrite` is not set."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} exists and is not a directory")
    if (out / name).exists() and not overwrite:
        raise ValueError(
            f"{str(out / name)!r} already exists; pass --overwrite to replace it "
            "or choose another --out"
        )
