"""The handwritten digits that scikit-learn ships (`sklearn.datasets.load_digits`: 1797 8x8
grey images, 10 classes), as a data stream: real data with no download.

The images are split by `data.seed` into a training pool (80%) and a held-out pool (20%), and
standardised per pixel with the training pool's mean and standard deviation (pixels that are
always blank stay 0), so |x|^2 / d is about 0.95. The stream takes K*B training images in shuffled
order (reshuffled each pass over the pool when K*B exceeds it) and the first `data.eval_size`
held-out images as eval inputs. Targets are one-hot over the 10 classes, for cross-entropy and
for (one-hot) MSE alike.
"""

import numpy as np

DIGITS_DIM = 64
DIGITS_CLASSES = 10
TRAIN_FRACTION = 0.8


def digits_arrays(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, held-out images, held-out labels), standardised."""
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    images, labels = load_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(images))
    cut = int(TRAIN_FRACTION * len(images))
    train, held = order[:cut], order[cut:]
    mean = images[train].mean(axis=0)
    std = images[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scaled = (images - mean) / std
    return scaled[train], labels[train], scaled[held], labels[held]


def digits_stream_arrays(*, steps: int, batch: int, eval_size: int, seed: int):
    """x_train (K, B, 64), y_train (K, B, 10), x_eval (P, 64), y_eval (P, 10), and the origin."""
    x_pool, y_pool, x_held, y_held = digits_arrays(seed)
    if eval_size > len(x_held):
        raise ValueError(
            f"data.eval_size={eval_size}: the held-out digits are only {len(x_held)} images"
        )
    rng = np.random.default_rng(seed + 1)
    needed = steps * batch
    passes = [rng.permutation(len(x_pool)) for _ in range(-(-needed // len(x_pool)) or 1)]
    order = np.concatenate(passes)[:needed]
    eye = np.eye(DIGITS_CLASSES)
    origin = (
        f"scikit-learn digits (data.seed={seed}): {len(x_pool)} training and {len(x_held)} "
        f"held-out 8x8 images, {needed} training draws ({len(passes)} pass(es))"
    )
    return (
        x_pool[order].reshape(steps, batch, DIGITS_DIM),
        eye[y_pool[order]].reshape(steps, batch, DIGITS_CLASSES),
        x_held[:eval_size],
        eye[y_held[:eval_size]],
        origin,
    )
