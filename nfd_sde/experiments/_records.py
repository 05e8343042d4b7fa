"""The one writer of every JSON output, and its readers.

Every record goes through `write_json`: plain JSON (arrays as lists, NaN and infinities as null),
written to a temporary file in the same directory and moved into place with `os.replace`, so a
run killed mid-write leaves the old file or none, never half of one.
"""

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..model import Result, json_ready

RESULT_FILE = "result.json"


def write_json(path: str | Path, data: Any) -> Path:
    """Write `data` to `path` as plain JSON, atomically; creates the parent directory."""
    return write_text(path, json.dumps(json_ready(data), allow_nan=False))


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, then move it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | Path, *, what: str = "") -> Any:
    """The data of a JSON file; a missing file says which command writes it."""
    path = Path(path)
    if not path.is_file():
        hint = f"; run `nfd-sde {what}` first" if what else ""
        raise FileNotFoundError(f"{str(path)!r} does not exist{hint}")
    with path.open() as fh:
        return json.load(fh)


def write_result(result: Result, out_dir: str | Path) -> Path:
    """`out_dir/result.json`: one producer's Result."""
    return write_json(Path(out_dir) / RESULT_FILE, result.to_json())
