"""Data streams: the exact minibatches of every SGD step and the eval inputs.

Every producer (finite network, limit solver) consumes a `DataStream`, so runs can be fed
exactly the same data. Nothing is downloaded: data is generated from a seed or read from files.
"""

import dataclasses
import pickle
from pathlib import Path

import numpy as np

from ._config import Config


@dataclasses.dataclass(frozen=True)
class DataStream:
    """`x_train` (steps, batch, dim), `y_train` (steps, batch, outputs), `x_eval` (eval, dim),
    `y_eval` (eval, outputs). Targets are floats: regression values or one-hot labels."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_eval: np.ndarray
    y_eval: np.ndarray

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

    def save_npz(self, path: str | Path) -> None:
        np.savez(
            path, x_train=self.x_train, y_train=self.y_train, x_eval=self.x_eval, y_eval=self.y_eval
        )


def load_stream(config: Config) -> DataStream:
    """The data stream a config describes, checked against the model and training sections."""
    source = config.data.source
    if source == "teacher":
        stream = teacher_stream(config)
    elif source == "npz":
        stream = npz_stream(config.data.path, config)
    else:
        stream = cifar10_stream(config.data.path, config)
    _check_consistent(stream, config)
    return stream


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
        if config.training.loss == "cross_entropy":
            if c < 2:
                raise ValueError("cross-entropy needs model.outputs >= 2 classes")
            return np.eye(c)[np.argmax(y, axis=-1)]
        return y + config.data.label_noise * rng.standard_normal(y.shape)

    x_train = sphere(k * b)
    x_eval = sphere(p)
    return DataStream(
        x_train=x_train.reshape(k, b, d),
        y_train=targets(x_train).reshape(k, b, c),
        x_eval=x_eval,
        y_eval=targets(x_eval),
    )


def npz_stream(path: str | Path, config: Config) -> DataStream:
    """An explicit stream from `.npz` with `x_train` (K,B,d), `y_train` (K,B) or (K,B,C),
    `x_eval` (P,d), `y_eval` (P) or (P,C). With cross-entropy, 1-D targets are class indices."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.path={str(path)!r}: no such .npz file")
    with np.load(path) as raw:
        missing = {"x_train", "y_train", "x_eval", "y_eval"} - set(raw.files)
        if missing:
            raise ValueError(
                f"{path}: missing array(s) {sorted(missing)}; expected x_train "
                "(K,B,d), y_train (K,B[,C]), x_eval (P,d), y_eval (P[,C])"
            )
        x_train, y_train = np.asarray(raw["x_train"], float), np.asarray(raw["y_train"])
        x_eval, y_eval = np.asarray(raw["x_eval"], float), np.asarray(raw["y_eval"])
    if x_train.ndim != 3:
        raise ValueError(f"{path}: x_train must have shape (K, B, d), got {x_train.shape}")
    k, b, d = x_train.shape
    if y_train.shape[:2] != (k, b) or y_train.ndim not in (2, 3):
        raise ValueError(
            f"{path}: y_train must have shape ({k}, {b}) or ({k}, {b}, C), got {y_train.shape}"
        )
    if x_eval.ndim != 2 or x_eval.shape[1] != d:
        raise ValueError(f"{path}: x_eval must have shape (P, {d}), got {x_eval.shape}")
    if y_eval.shape[:1] != x_eval.shape[:1] or y_eval.ndim != y_train.ndim - 1:
        raise ValueError(
            f"{path}: y_eval must have shape ({x_eval.shape[0]},) + y_train's "
            f"trailing shape, got {y_eval.shape}"
        )
    per_example = y_train.ndim == 2
    y_train = _as_targets(y_train, config, per_example=per_example)
    y_eval = _as_targets(y_eval, config, per_example=per_example)
    for name, array in (
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_eval", x_eval),
        ("y_eval", y_eval),
    ):
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{path}: {name} contains non-finite values")
    return DataStream(x_train, y_train, x_eval, y_eval)


def _as_targets(y: np.ndarray, config: Config, *, per_example: bool) -> np.ndarray:
    """Targets without an output axis (`per_example`) are class indices under cross-entropy
    (made one-hot over model.outputs classes) and scalar regression targets (C = 1) under MSE."""
    if not per_example:
        return np.asarray(y, float)
    if config.training.loss == "cross_entropy":
        c = config.model.outputs
        if y.dtype.kind not in "iu" and not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError("cross-entropy targets without an output axis must be class indices")
        labels = y.astype(int)
        if labels.min() < 0 or labels.max() >= c:
            raise ValueError(f"class labels must lie in [0, {c}) for model.outputs={c}")
        return np.eye(c)[labels]
    return np.asarray(y, float)[..., None]


CIFAR_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))


def cifar10_stream(path: str | Path, config: Config) -> DataStream:
    """CIFAR-10 from a local `cifar-10-batches-py` directory (python-pickle batches).

    Images are flattened to d = 3072 and standardised per feature with the training mean/std.
    The stream takes K*B training images in an order shuffled by `data.seed`, and the first
    `data.eval_size` test images. Targets are one-hot (both for MSE and cross-entropy).
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data.path={str(root)!r} is not a directory; point it at an extracted "
            "'cifar-10-batches-py' folder (data_batch_1..5 and test_batch)"
        )
    train_files = [root / name for name in CIFAR_TRAIN_FILES if (root / name).is_file()]
    if not train_files or not (root / "test_batch").is_file():
        raise FileNotFoundError(
            f"{root}: expected data_batch_1..data_batch_5 and test_batch (python-pickle CIFAR-10)"
        )
    x_parts, y_parts = zip(*(_read_cifar_batch(f) for f in train_files))
    x_all, y_all = np.concatenate(x_parts), np.concatenate(y_parts)
    x_test, y_test = _read_cifar_batch(root / "test_batch")
    k, b, p = config.training.steps, config.training.batch, config.data.eval_size
    if k * b > len(x_all) or p > len(x_test):
        raise ValueError(
            f"{root}: {len(x_all)} training / {len(x_test)} test images cannot "
            f"supply steps*batch={k * b} / data.eval_size={p}"
        )
    mean, std = x_all.mean(axis=0), x_all.std(axis=0) + 1e-8
    order = np.random.default_rng(config.data.seed).permutation(len(x_all))[: k * b]
    eye = np.eye(10)
    return DataStream(
        x_train=((x_all[order] - mean) / std).reshape(k, b, -1),
        y_train=eye[y_all[order]].reshape(k, b, 10),
        x_eval=(x_test[:p] - mean) / std,
        y_eval=eye[y_test[:p]],
    )


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as fh:
        raw = pickle.load(fh, encoding="bytes")
    try:
        x, y = raw[b"data"], raw[b"labels"]
    except KeyError as error:
        raise ValueError(f"{path}: not a CIFAR-10 python batch (missing {error})") from None
    return np.asarray(x, float).reshape(len(y), -1), np.asarray(y, int)


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
