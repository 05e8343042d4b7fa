"""The experiments' face of the one atomic writer (`nfd_sde.model.write_atomic`), and readers.

Every record goes through `write_json` (plain JSON: arrays as lists, NaN and infinities as null),
`write_npz` (named arrays) or `write_text` (reports, figures' bytes): written to a temporary file
in the same directory and moved into place with `os.replace`, so a run killed or out of space
mid-write leaves the old file or none, never half of one; files get the user's umask.
"""

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...model import Result, json_ready, write_atomic

RESULT_FILE = "result.json"


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` to `path` as plain JSON, atomically; creates the parent directory."""
    return write_text(path, json.dumps(json_ready(data), allow_nan=False))


def write_npz(path: str | Path, arrays: dict[str, Any]) -> Path:
    """Write named arrays to `path` as an uncompressed .npz, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(value) for name, value in arrays.items()})
    return write_text(path, buffer.getvalue())


def read_npz(path: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz file, or None if it is missing or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def write_text(path: str | Path, text: str | bytes) -> Path:
    """Write `text` (UTF-8) or bytes to a temporary file beside `path`, then move it into place
    (`nfd_sde.model.write_atomic`); a failure raises OSError naming `path`."""
    return write_atomic(path, text)


def read_json(path: str | Path, *, what: str = "") -> Any:
    """The data of a JSON file; a missing or unreadable file is an error naming it (and which
    command writes it)."""
    path = Path(path)
    if not path.is_file():
        hint = f"; run `nfd-sde {what}` first" if what else ""
        raise FileNotFoundError(f"{str(path)!r} does not exist{hint}")
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except ValueError as error:  # truncated or not JSON (UnicodeDecodeError is a ValueError)
        hint = f"; run `nfd-sde {what}` again" if what else ""
        raise ValueError(f"{str(path)!r} is not valid JSON ({error}){hint}") from None


def write_result(result: Result, out_dir: str | Path) -> Path:
    """`out_dir/result.json`: one producer's Result."""
    return write_json(Path(out_dir) / RESULT_FILE, result.to_json())
