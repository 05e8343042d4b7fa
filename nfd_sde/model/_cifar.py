"""Reading a local CIFAR-10 `cifar-10-batches-py` folder (the python-pickle batches), checked.

A batch file is unpickled by an unpickler that builds only what CIFAR-10 batches hold (dicts,
lists, bytes, numbers and NumPy arrays), so a corrupt or foreign file is refused with a message
naming it, never run as code.
"""

import io
import pickle
from pathlib import Path

import numpy as np

CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST_FILE = "test_batch"
CIFAR_CLASSES = 10
CIFAR_PIXELS = 3 * 32 * 32
# The globals a CIFAR-10 batch pickle refers to (NumPy arrays; bytes under protocol 2).
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}")
        return super().find_class(module, name)


def read_cifar10(root: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """`{file name: (images (n, 3072) float, labels (n,) int)}` for the training batches present
    and the test batch, and the names of the training batches that are absent."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.path={str(root)!r} is not a directory; point it at an extracted "
            "'cifar-10-batches-py' folder (data_batch_1..5 and test_batch)"
        )
    present = [name for name in CIFAR_TRAIN_FILES if (root / name).is_file()]
    if not present or not (root / CIFAR_TEST_FILE).is_file():
        raise FileNotFoundError(
            f"{root}: expected data_batch_1..data_batch_5 and test_batch (python-pickle CIFAR-10)"
        )
    batches = {name: read_cifar_batch(root / name) for name in (*present, CIFAR_TEST_FILE)}
    return batches, [name for name in CIFAR_TRAIN_FILES if name not in present]


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file: images (n, 3072) as floats and labels (n,) in [0, 10)."""
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path}: the CIFAR-10 batch file is empty")
    try:
        raw = _BatchUnpickler(io.BytesIO(data), encoding="bytes").load()
    except Exception as error:  # truncated or random bytes fail in many ways
        raise ValueError(
            f"{path}: not a readable CIFAR-10 python batch, it is truncated or corrupt "
            f"({type(error).__name__}: {error})"
        ) from None
    if not isinstance(raw, dict) or b"data" not in raw or b"labels" not in raw:
        keys = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise ValueError(
            f"{path}: not a CIFAR-10 python batch (expected data and labels, got {keys})"
        )
    try:
        x = np.asarray(raw[b"data"])
        y = np.asarray(raw[b"labels"])
    except Exception as error:
        raise ValueError(f"{path}: unreadable data or labels ({error})") from None
    if x.ndim != 2 or x.shape[1] != CIFAR_PIXELS or x.dtype.kind not in "iuf":
        raise ValueError(
            f"{path}: data must be numeric images of shape (n, {CIFAR_PIXELS}), got "
            f"{x.dtype} {x.shape}"
        )
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"{path}: expected {x.shape[0]} integer labels, got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= CIFAR_CLASSES):
        bad = y[(y < 0) | (y >= CIFAR_CLASSES)][0]
        raise ValueError(f"{path}: label {bad} is not a CIFAR-10 class (0..9)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{path}: data contains non-finite values")
    return x.astype(float), y.astype(int)
