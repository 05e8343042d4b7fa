"""Data streams: the exact minibatches of every SGD step and the eval inputs.

Every producer (finite network, limit solver) consumes a `DataStream`, so runs can be fed
exactly the same data. Nothing is downloaded: data is generated from a seed or read from files.
"""

import dataclasses
import io
from pathlib import Path

import numpy as np

from ._cifar import CIFAR_CLASSES, CIFAR_TEST_FILE, read_cifar10
from ._config import Config
from ._digits import digits_stream_arrays
from ._files import write_atomic
from ._variants import loss_of


@dataclasses.dataclass(frozen=True)
class DataStream:
    """`x_train` (steps, batch, dim), `y_train` (steps, batch, outputs), `x_eval` (eval, dim),
    `y_eval` (eval, outputs). Targets are floats: regression values or one-hot labels. `origin`
    says in words where the data came from (recorded in every result's meta)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray
    origin: str = ""

    @property
    def steps(self) -> int:
        return self.x_train.shape[0]

    @property
    def batch(self) -> int:
        return self.x_train.shape[1]

    @property
    def dim(self) -> int:
        return self.x_train.shape[2]

    @property
    def outputs(self) -> int:
        return self.y_train.shape[2]

    def save_npz(self, path: str | Path) -> Path:
        """The stream as an .npz file that `data.source = "npz"` reads, written atomically."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            x_train=self.x_train,
            y_train=self.y_train,
            x_eval=self.x_eval,
            y_eval=self.y_eval,
        )
        return write_atomic(path, buffer.getvalue())


def load_stream(config: Config) -> DataStream:
    """The data stream a config describes, checked against the model and training sections.

    A data file that cannot be read (missing, truncated, corrupt, wrong shapes or values) raises
    ValueError or FileNotFoundError naming the file and the problem."""
    source = config.data.source
    if source == "teacher":
        stream = teacher_stream(config)
    elif source == "npz":
        stream = npz_stream(config.data.path, config)
    elif source == "digits":
        stream = digits_stream(config)
    else:
        stream = cifar10_stream(config.data.path, config)
    _check_consistent(stream, config)
    return stream


def digits_stream(config: Config) -> DataStream:
    """scikit-learn's handwritten digits (`nfd_sde.model._digits`)."""
    x_train, y_train, x_eval, y_eval, origin = digits_stream_arrays(
        steps=config.training.steps,
        batch=config.training.batch,
        eval_size=config.data.eval_size,
        seed=config.data.seed,
    )
    return DataStream(x_train, y_train, x_eval, y_eval, origin=origin)


def teacher_stream(config: Config) -> DataStream:
    """Inputs uniform on the sphere |x|^2 = d; targets from a fixed random teacher.

    `linear`: y = A x / sqrt(d); `tanh`: y = A tanh(T x / sqrt(d)) / sqrt(m), with A, T standard
    Gaussian. For cross-entropy the label is the argmax of the teacher's C >= 2 outputs (one-hot).
    """
    d, c = config.model.dim, config.model.outputs
    k, b, p = config.training.steps, config.training.batch, config.data.eval_size
    rng = np.random.default_rng(config.data.seed)
    teacher_in = rng.standard_normal((config.data.teacher_width, d))
    hidden = config.data.teacher_width if config.data.teacher == "tanh" else d
    teacher_out = rng.standard_normal((c, hidden))

    def sphere(n):
        x = rng.standard_normal((n, d))
        return x / np.linalg.norm(x, axis=-1, keepdims=True) * np.sqrt(d)

    def targets(x):
        if config.data.teacher == "linear":
            y = x @ teacher_out.T / np.sqrt(d)
        else:
            y = (
                np.tanh(x @ teacher_in.T / np.sqrt(d))
                @ teacher_out.T
                / np.sqrt(teacher_in.shape[0])
            )
        return loss_of(config).teacher_targets(y, rng, config.data.label_noise)

    x_train = sphere(k * b)
    x_eval = sphere(p)
    return DataStream(
        x_train=x_train.reshape(k, b, d),
        y_train=targets(x_train).reshape(k, b, c),
        x_eval=x_eval,
        y_eval=targets(x_eval),
        origin=f"{config.data.teacher} teacher (data.seed={config.data.seed})",
    )


NPZ_ARRAYS = ("x_train", "y_train", "x_eval", "y_eval")
NPZ_LAYOUT = "x_train (K,B,d), y_train (K,B[,C]), x_eval (P,d), y_eval (P[,C])"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def npz_stream(path: str | Path, config: Config) -> DataStream:
    """An explicit stream from `.npz` with `x_train` (K,B,d), `y_train` (K,B) or (K,B,C),
    `x_eval` (P,d), `y_eval` (P) or (P,C). With cross-entropy, 1-D targets are class indices."""
    path = Path(path)
    x_train, y_train, x_eval, y_eval = (_read_npz(path)[name] for name in NPZ_ARRAYS)
    if x_train.ndim != 3:
        raise ValueError(f"{path}: x_train must have shape (K, B, d), got {x_train.shape}")
    k, b, d = x_train.shape
    if y_train.shape[:2] != (k, b) or y_train.ndim not in (2, 3):
        raise ValueError(
            f"{path}: y_train must have shape ({k}, {b}) or ({k}, {b}, C), got {y_train.shape}"
        )
    if x_eval.ndim != 2 or x_eval.shape[1] != d:
        raise ValueError(f"{path}: x_eval must have shape (P, {d}), got {x_eval.shape}")
    if x_eval.shape[0] == 0:
        raise ValueError(f"{path}: x_eval holds no eval input; give P >= 1 rows")
    if y_eval.shape[:1] != x_eval.shape[:1] or y_eval.ndim != y_train.ndim - 1:
        raise ValueError(
            f"{path}: y_eval must have shape ({x_eval.shape[0]},) + y_train's "
            f"trailing shape, got {y_eval.shape}"
        )
    for name, array in zip(NPZ_ARRAYS, (x_train, y_train, x_eval, y_eval)):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{path}: {name} contains non-finite values")
    per_example = y_train.ndim == 2
    try:
        y_train = _as_targets(y_train, config, per_example=per_example)
        y_eval = _as_targets(y_eval, config, per_example=per_example)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return DataStream(x_train, y_train, x_eval, y_eval, origin=f"npz file {path}")


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The four arrays of an `.npz` stream as floats; ValueError saying what is wrong."""
    if not path.is_file():
        raise FileNotFoundError(f"data.path={str(path)!r}: no such .npz file")
    with path.open("rb") as fh:
        magic = fh.read(4)
    if not magic:
        raise ValueError(f"data.path={str(path)!r}: the file is empty; expected an .npz archive")
    if magic not in ZIP_MAGIC:
        raise ValueError(
            f"data.path={str(path)!r}: not an .npz archive (a zip of .npy arrays, as written by "
            "numpy.savez)"
        )
    arrays, name = {}, "an array"
    try:
        with np.load(path, allow_pickle=False) as raw:
            missing = set(NPZ_ARRAYS) - set(raw.files)
            if missing:
                raise ValueError(f"missing array(s) {sorted(missing)}; expected {NPZ_LAYOUT}")
            for name in NPZ_ARRAYS:
                arrays[name] = raw[name]
    except ValueError as error:
        if "pickle" in str(error):
            error = f"{name} holds Python objects, not numbers"
        raise ValueError(f"data.path={str(path)!r}: {error}") from None
    except Exception as error:  # zipfile, zlib and EOF errors of a truncated or corrupt archive
        raise ValueError(
            f"data.path={str(path)!r}: the .npz archive cannot be read, it is truncated or "
            f"corrupt ({type(error).__name__}: {error})"
        ) from None
    for name, array in arrays.items():
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"data.path={str(path)!r}: {name} has dtype {array.dtype}; it must be numeric"
            )
    return {name: array.astype(float) for name, array in arrays.items()}


def _as_targets(y: np.ndarray, config: Config, *, per_example: bool) -> np.ndarray:
    """Targets without an output axis (`per_example`) are class indices under cross-entropy
    (made one-hot over model.outputs classes) and scalar regression targets (C = 1) under MSE."""
    if not per_example:
        return np.asarray(y, float)
    return loss_of(config).targets_without_output_axis(y, config.model.outputs)


def cifar10_stream(path: str | Path, config: Config) -> DataStream:
    """CIFAR-10 from a local `cifar-10-batches-py` directory (python-pickle batches).

    Images are flattened to d = 3072 and standardised per feature with the training mean/std.
    The stream takes K*B training images in an order shuffled by `data.seed`, and the first
    `data.eval_size` test images. Targets are one-hot (both for MSE and cross-entropy). A folder
    with only some of data_batch_1..5 is used as it is; the stream's `origin` names the batch
    files read and those absent.
    """
    root = Path(path)
    batches, absent = read_cifar10(root)
    x_test, y_test = batches.pop(CIFAR_TEST_FILE)
    x_all = np.concatenate([x for x, _ in batches.values()])
    y_all = np.concatenate([y for _, y in batches.values()])
    k, b, p = config.training.steps, config.training.batch, config.data.eval_size
    if k * b > len(x_all) or p > len(x_test):
        raise ValueError(
            f"{root}: {len(x_all)} training / {len(x_test)} test images cannot "
            f"supply steps*batch={k * b} / data.eval_size={p}"
        )
    mean, std = x_all.mean(axis=0), x_all.std(axis=0) + 1e-8
    order = np.random.default_rng(config.data.seed).permutation(len(x_all))[: k * b]
    eye = np.eye(CIFAR_CLASSES)
    origin = f"CIFAR-10 from {root}: {', '.join(batches)} ({len(x_all)} training images)"
    origin += f" and {CIFAR_TEST_FILE} ({len(x_test)} test images)"
    if absent:
        origin += f"; absent: {', '.join(absent)}"
    return DataStream(
        x_train=((x_all[order] - mean) / std).reshape(k, b, x_all.shape[1]),
        y_train=eye[y_all[order]].reshape(k, b, CIFAR_CLASSES),
        x_eval=(x_test[:p] - mean) / std,
        y_eval=eye[y_test[:p]],
        origin=origin,
    )


def _check_consistent(stream: DataStream, config: Config) -> None:
    if stream.dim != config.model.dim:
        raise ValueError(
            f"the data has input dimension {stream.dim} but model.dim="
            f"{config.model.dim}; set model.dim={stream.dim}"
        )
    if stream.outputs != config.model.outputs:
        raise ValueError(
            f"the data has {stream.outputs} output(s) but model.outputs="
            f"{config.model.outputs}; set model.outputs={stream.outputs}"
        )
    if (stream.steps, stream.batch) != (config.training.steps, config.training.batch):
        raise ValueError(
            f"the data stream has {stream.steps} steps of batch {stream.batch}, but the config "
            f"asks for training.steps={config.training.steps}, training.batch="
            f"{config.training.batch}; make them equal"
        )
