"""Feature norms along depth for pre- and post-activation blocks (the same initial weights for
both orders), at init and after training: `run_norms`."""

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PRNGKeyArray

from ...finite import AbstractRecorder, EvalLoss, run_training
from ...model import BLOCK_ORDERS, Config, DataStream, first_nonfinite_step
from ..common import count, sizes


class NormsAndLoss(AbstractRecorder):
    """rms over inputs and coordinates of h_l, l = 0..L, and the mean eval loss."""

    def __call__(self, model, x, y, loss):
        _, stream = model.residual_stream(x)
        return {
            "rms": jnp.sqrt(jnp.mean(stream**2, axis=(1, 2))),
            "loss": EvalLoss()(model, x, y, loss),
        }


def run_norms(
    config: Config,
    stream: DataStream,
    *,
    depths: Sequence[int],
    width: int,
    seeds: int,
    key: PRNGKeyArray,
    block_orders: Sequence[str] = BLOCK_ORDERS,
) -> dict[str, Any]:
    """rms of h_l along depth, l = 0..L, for each block order and depth, at init and after
    training on the whole stream at `training.eta` (mean over seeds; the same initial weights
    for both orders). The block type (one- or two-layer) is the config's. `diverged` counts the
    seeds whose norms or loss stopped being finite (their NaN enters the means)."""
    depths = sizes("depths", depths)
    count("width", width)
    count("seeds", seeds)
    for order in block_orders:
        if order not in BLOCK_ORDERS:
            raise ValueError(f"block_orders: {order!r} is not one of {BLOCK_ORDERS}")
    seed_keys = jax.random.split(key, seeds)
    runs = []
    with jax.enable_x64(config.run.dtype == "float64"):
        for order in block_orders:
            for depth in depths:
                sized = config.replace(
                    model={"block_order": order}, network={"width": width, "depth": depth}
                )
                norms, losses, diverged = [], [], 0
                for seed_key in seed_keys:
                    _, _, _, records = run_training(
                        sized, stream, key=seed_key, recorder=NormsAndLoss()
                    )
                    norms.append(records["rms"])
                    losses.append(records["loss"][-1])
                    diverged += first_nonfinite_step(records["rms"], records["loss"]) is not None
                norms = np.mean(norms, axis=0)
                runs.append(
                    {
                        "block_order": order,
                        "depth": depth,
                        "init": norms[0],
                        "trained": norms[-1],
                        "final_eval_loss": float(np.mean(losses)),
                        "diverged": diverged,
                    }
                )
    return {"depths": list(depths), "width": width, "seeds": seeds, "runs": runs}
