"""The collapse of the first internal layer of two-layer blocks, and the muP coordinate check.

In a two-layer block `h_l = h_{l-1} + s_l W_{l,2} phi(u_l) / sqrt(n)`, `u_l = W_{l,1}
phi(h_{l-1}) / sqrt(n)`, with `s_l = beta / sqrt(L)`, the gradient of W_{l,1} carries the branch
factor s_l once while its muP learning rate has no depth factor, so its learned pre-activation
change is

    Delta u_l = Delta W_{l,1} phi(h_{l-1}) / sqrt(n) = O(L^{c - 1/2})

when W_{l,1} learns at `eta * L^c` (c = `training.first_layer_exponent`). The block's output
change `s_l Delta W_{l,2} phi(u_l) / sqrt(n)` is O(1/L) per layer, and the total feature change
`Delta h_l` is O(1) at c = 0. `run_collapse` measures all three per layer after a few SGD
steps and fits their exponents in L; it also records the muP coordinate check (mean |h_l|,
|u_l|, |f| at every step). Training is `nfd_sde.finite.run_training` (one compilation per network
shape for every exponent and seed); the block equations are the block object's.
"""

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from solvers import fit_loglog

from ...finite import AbstractRecorder, ResNet, run_training
from ...model import BlockLayer, Config, DataStream, first_nonfinite_step
from ..common import count, numbers, sizes

CHANGES = ("first_layer", "block_output", "total")


def coordinate_check(records: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The muP coordinate check from the streams recorded at steps k = 0..K: mean |h_l|
    (K+1, L+1), mean |u_l| (K+1, L; two-layer blocks) and mean |f| (K+1,) over the eval inputs
    and coordinates, and the same of the changes since step 0 (`dh`, `du`, `df`)."""
    out = {}
    for name, axes in (("h", (2, 3)), ("u", (2, 3)), ("f", (1, 2))):
        values = np.asarray(records[name])
        out[name] = np.mean(np.abs(values), axis=axes)
        out[f"d{name}"] = np.mean(np.abs(values - values[:1]), axis=axes)
    return out


class Streams(AbstractRecorder):
    """Outputs f, residual stream h_l and the first internal pre-activations u_l."""

    def __call__(self, model, x, y, loss):
        outputs, stream = model.residual_stream(x)
        if "hidden_first" not in model.hidden:
            return {"f": outputs, "h": stream, "u": jnp.zeros((0,) + stream.shape[1:])}
        return {"f": outputs, "h": stream, "u": first_preactivations(model, stream)}


def first_preactivations(
    model: ResNet, stream: Float[Array, "depth+1 batch width"], first=None
) -> Float[Array, "depth batch width"]:
    """u_l = W_{l,1} a_{l-1} / sqrt(n) for every layer (with `first` in place of W_{l,1} if
    given), a_{l-1} the features the block reads."""
    first = model.hidden["hidden_first"] if first is None else first

    def layer(a, weight):
        return model.block.internal(a, weight, None, model.matmul_scale)

    return jax.vmap(layer)(model.features(stream[:-1]), first)


def layer_changes(
    initial: ResNet,
    trained: ResNet,
    stream: Float[Array, "depth+1 eval width"],
    new_stream: Float[Array, "depth+1 eval width"],
) -> dict[str, np.ndarray]:
    """Per-layer rms (over inputs and coordinates) of the learned changes, features at init:

    `first_layer` (L,): Delta W_{l,1} a_{l-1} / sqrt(n); `block_output` (L,): s_l Delta W_{l,2}
    phi(u_l) / sqrt(n); `total` (L+1,): h_l(trained) - h_l(initial), l = 0..L; `stream` and
    `new_stream` are the residual streams of `initial` and `trained` on the same inputs.
    """
    stream, new_stream = jnp.asarray(stream), jnp.asarray(new_stream)
    first = initial.hidden["hidden_first"]
    delta_first = trained.hidden["hidden_first"] - first
    delta_u = first_preactivations(initial, stream, delta_first)
    second = trained.hidden["hidden"] - initial.hidden["hidden"]
    delta_second = BlockLayer(
        {"hidden": second, "hidden_first": first}, None, initial.branch_scales
    )

    def block_change(a, layer):
        return initial.block.branch(initial.activation, a, layer, initial.matmul_scale)

    block = jax.vmap(block_change)(initial.features(stream[:-1]), delta_second)

    def rms(a):
        return np.sqrt(np.mean(np.asarray(a) ** 2, axis=(1, 2)))

    return {
        "first_layer": rms(delta_u),
        "block_output": rms(block),
        "total": rms(new_stream - stream),
    }


def run_collapse(
    config: Config,
    stream: DataStream,
    *,
    depths: Sequence[int],
    exponents: Sequence[float],
    widths: Sequence[int],
    seeds: int,
    steps: int,
    key: PRNGKeyArray,
) -> dict[str, Any]:
    """Train two-layer-block networks for `steps` SGD steps and measure the learned changes.

    For every width n, depth L, exponent c (`training.first_layer_exponent`) and seed (the same
    initial weights for every c), the per-layer rms of `first_layer`, `block_output` and `total`
    changes (`layer_changes`, on the eval inputs) and the coordinate check (`coordinate_check`,
    steps 0..K). Per seed they are aggregated over layers as

        first_layer:  rms_l Delta u_l                     (expected ~ L^{c - 1/2})
        block_output: L * rms_l s_l Delta W_{l,2} phi(u_l) / sqrt(n)   (expected ~ L^0)
        total:        rms Delta h_L                       (O(1) at c = 0)

    and `slopes` fits the seed mean of each against L (`fit_loglog`), with `seed_se` the
    standard error of the per-seed slopes (no slopes for a single depth). A run whose records
    stop being finite is diverged: it is counted (`diverged`, `first_bad_step` per seed), its
    aggregates are NaN, and its depth is left out of the fits (`depths_fitted`; `slope` None
    when fewer than two depths remain). `model.block` is set to "two_layer".
    """
    depths, widths = sizes("depths", depths), sizes("widths", widths)
    exponents = numbers("exponents", exponents)
    count("seeds", seeds)
    count("steps", steps)
    if steps > stream.steps:
        raise ValueError(f"steps={steps}: the data stream has only {stream.steps} minibatches")
    config = config.replace(model={"block": "two_layer"})
    seed_keys = jax.random.split(key, seeds)
    runs = []
    with jax.enable_x64(config.run.dtype == "float64"):
        for width in widths:
            for depth in depths:
                sized = config.replace(network={"width": width, "depth": depth})
                for c in exponents:
                    run_config = sized.replace(training={"first_layer_exponent": c})
                    per_seed = [
                        _collapse_run(run_config, stream, steps=steps, key=k) for k in seed_keys
                    ]
                    runs.append(_collect(per_seed, width=width, depth=depth, c=c))
    slopes = [
        _fit_changes([r for r in runs if r["width"] == n and r["c"] == c], depths, n, c)
        for n in widths
        for c in exponents
        if len(depths) > 1
    ]
    return {
        "depths": list(depths),
        "widths": list(widths),
        "exponents": list(exponents),
        "seeds": seeds,
        "steps": steps,
        "runs": runs,
        "slopes": [s for group in slopes for s in group],
    }


def _collapse_run(config: Config, stream: DataStream, *, steps: int, key) -> dict[str, Any]:
    initial, trained, _, records = run_training(
        config, stream, key=key, steps=steps, recorder=Streams()
    )
    with np.errstate(over="ignore", invalid="ignore"):  # a diverged run: inf and NaN, marked below
        changes = layer_changes(initial, trained, records["h"][0], records["h"][-1])
        coordinates = coordinate_check(records)
    depth = config.network.depth
    aggregate = {
        "first_layer": _rms(changes["first_layer"]),
        "block_output": depth * _rms(changes["block_output"]),
        "total": float(changes["total"][-1]),
    }
    first_bad = first_nonfinite_step(*records.values())
    if first_bad is not None:  # a diverged run is kept, marked, and left out of the fits
        aggregate = dict.fromkeys(aggregate, math.nan)
    return {
        "layers": changes,
        "aggregate": aggregate,
        "coordinates": coordinates,
        "first_bad_step": first_bad,
    }


def _collect(per_seed: list[dict], *, width: int, depth: int, c: float) -> dict[str, Any]:
    def mean(get):
        return np.mean([get(run) for run in per_seed], axis=0)

    return {
        "width": width,
        "depth": depth,
        "c": c,
        "diverged": sum(run["first_bad_step"] is not None for run in per_seed),
        "first_bad_step": [run["first_bad_step"] for run in per_seed],
        "layers": {name: mean(lambda r, n=name: r["layers"][n]) for name in CHANGES},
        "aggregate": {name: [run["aggregate"][name] for run in per_seed] for name in CHANGES},
        "coordinates": {
            name: mean(lambda r, n=name: r["coordinates"][n])
            for name in ("h", "u", "f", "dh", "du", "df")
        },
    }


def _fit_changes(runs: list[dict], depths, width: int, c: float) -> list[dict[str, Any]]:
    """The fits of each change against L over the depths where every seed gave a finite,
    positive value (no fit, `slope` None, when fewer than two depths remain)."""
    expected = {"first_layer": c - 0.5, "block_output": 0.0, "total": None}
    fits = []
    for name in CHANGES:
        values = np.array([r["aggregate"][name] for r in runs], float)  # (depths, seeds)
        usable = np.all(np.isfinite(values) & (values > 0), axis=1)
        fitted = [int(d) for d, ok in zip(depths, usable) if ok]
        entry = {"width": width, "c": c, "quantity": name, "expected": expected[name]}
        entry |= {"depths_fitted": fitted}
        if len(fitted) < 2:
            fits.append(entry | dict.fromkeys(("slope", "stderr", "ci95", "seed_se", "prefactor")))
            continue
        values = values[usable]
        fit = fit_loglog(fitted, values.mean(axis=1))
        per_seed = [fit_loglog(fitted, values[:, s]).slope for s in range(values.shape[1])]
        seed_se = (
            float(np.std(per_seed, ddof=1) / math.sqrt(len(per_seed)))
            if len(per_seed) > 1
            else math.inf
        )
        fits.append(
            entry
            | {
                "slope": fit.slope,
                "stderr": fit.slope_stderr,
                "ci95": list(fit.ci95),
                "seed_se": seed_se,
                "prefactor": fit.prefactor,
            }
        )
    return fits


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values))))
