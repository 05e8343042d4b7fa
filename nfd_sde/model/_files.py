"""The one atomic writer of every output file (JSON, NPZ, figures, reports, data streams).

`write_atomic(path, data)` writes to a new temporary file beside `path` and moves it into place
with `os.replace`: a run killed or out of space mid-write leaves the old file or none, never half
of one, and no temporary file. The temporary file is created with mode 0o666, which the
operating system reduces by the process's umask, so outputs are shared as the user's other files
are (644 under umask 022). A failed write raises `OSError` naming `path`.
"""

import errno
import os
import secrets
from pathlib import Path
from typing import BinaryIO

_TRIES = 100


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write `data` (text as UTF-8, or bytes) to `path` atomically, creating its parent
    directories; returns `path`. Any failure raises `OSError` naming `path`."""
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh, tmp = _temporary(path)
    except OSError as error:
        raise _naming(error, path) from error
    try:
        with fh:
            write_bytes(fh, payload)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _naming(error, path) from error
        raise
    return path


def write_bytes(fh: BinaryIO, payload: bytes) -> None:
    """The write itself, into the temporary file `fh` (`fh.name` is its path)."""
    fh.write(payload)


def _temporary(path: Path) -> tuple[BinaryIO, Path]:
    """A new file `.NAME.XXXXXXXX.tmp` beside `path`, open for writing. `open(..., "xb")`
    creates it with mode 0o666 & ~umask (`tempfile.mkstemp` would give 0o600 whatever the
    umask)."""
    for _ in range(_TRIES):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            return open(tmp, "xb"), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, f"no unused temporary file name beside {str(path)!r}")


def _naming(error: OSError, path: Path) -> OSError:
    """`error` as an OSError of the same errno whose message names `path` (the output, not the
    temporary file)."""
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += "; free some space or choose another output directory, then run again"
    return OSError(error.errno, f"cannot write {str(path)!r}: {reason}")
