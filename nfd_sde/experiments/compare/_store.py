"""Where `compare` keeps each finished piece of work, so a killed run resumes.

DIR/runs/ holds one .npz per limit solve and per chunk of finite seeds, written (atomically) the
moment it finishes, and DIR/runs/manifest.json, the resolved config and grid they belong to. A
rerun with the same manifest reuses every finished piece; a different config or grid in the same
directory is refused unless `overwrite`, which clears the old pieces first. Without a directory
(`run_compare(..., out_dir=None)`) nothing is kept.
"""

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..common import read_json, read_npz, write_json, write_npz

COMPARE_FILE = "compare.json"

RUNS = "runs"
MANIFEST = "manifest.json"


class RunStore:
    """The finished pieces of one compare run under `directory / "runs"` (or nowhere)."""

    def __init__(self, directory: str | Path | None, manifest: dict[str, Any], *, overwrite: bool):
        self.folder = None if directory is None else Path(directory) / RUNS
        self.reused = 0
        self.saved = 0
        if self.folder is None:
            return
        if self.folder.parent.exists() and not self.folder.parent.is_dir():
            raise ValueError(f"out_dir {str(self.folder.parent)!r} exists and is not a directory")
        manifest = json.loads(json.dumps(manifest))
        path = self.folder / MANIFEST
        if overwrite and self.folder.is_dir():
            for old in [*self.folder.glob("*.npz"), path]:
                old.unlink(missing_ok=True)
        if path.is_file():
            try:
                stored = json.loads(path.read_text())
            except ValueError as error:  # truncated or not JSON (UnicodeDecodeError included)
                raise ValueError(
                    f"{str(path)!r} is not valid JSON ({error}), so the runs beside it cannot be "
                    "matched to this compare; pass --overwrite (overwrite=True) to discard them "
                    "or choose another output directory"
                ) from None
            if stored != manifest:
                raise ValueError(
                    f"{str(self.folder)!r} holds the runs of a compare with a different config or "
                    "grid; pass --overwrite (overwrite=True) to discard them or choose another "
                    "output directory"
                )
        write_json(path, manifest)

    def load(self, name: str) -> dict[str, np.ndarray] | None:
        """A finished piece, or None (absent or unreadable: it is redone)."""
        if self.folder is None:
            return None
        arrays = read_npz(self.folder / f"{name}.npz")
        self.reused += arrays is not None
        return arrays

    def save(self, name: str, arrays: dict[str, Any]) -> None:
        if self.folder is not None:
            write_npz(self.folder / f"{name}.npz", arrays)
            self.saved += 1


def read_compare_runs(directory: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Every finished piece under DIR/runs/, by name (e.g. `decoupled_n16_L4_s0-64`)."""
    folder = Path(directory) / RUNS
    return {path.stem: read_npz(path) for path in sorted(folder.glob("*.npz"))}


def write_compare(data: dict[str, Any], directory) -> Path:
    """Write `data` as DIR/compare.json (arrays as lists, NaN and infinities as null)."""
    return write_json(Path(directory) / COMPARE_FILE, data)


def read_compare(directory) -> dict[str, Any]:
    """The data of DIR/compare.json (or of the file itself), with lists left as lists."""
    path = Path(directory)
    if path.suffix != ".json":
        path = path / COMPARE_FILE
    return read_json(path, what="compare")
