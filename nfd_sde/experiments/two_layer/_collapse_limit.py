"""The first-layer collapse in the limit against finite networks of growing width.

For two-layer blocks the first internal layer's learned change Delta u_l = Delta W_{l,1}
phi(h^0_{l-1}) / sqrt(n) is measured after `steps` SGD steps on step 0's minibatch (features of
the initial network), along depth: for finite networks of every width (mean over seeds), and in
the limit solved at M = L (`nfd_sde.limit.first_layer_changes`: mean and standard error over
particle groups), which the finite networks approach as n grows. The layer-rms against L gives
the collapse exponent c - 1/2 in the limit itself.
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from solvers import fit_loglog

from ...finite import run_training
from ...limit import first_layer_changes
from ...model import Config, DataStream
from ..common import count, draw_band, new_figure, numbers, palette, save_figure, sizes
from ._collapse import first_preactivations


def run_collapse_limit(
    config: Config,
    stream: DataStream,
    *,
    depths: Sequence[int],
    exponents: Sequence[float],
    widths: Sequence[int],
    seeds: int,
    steps: int,
    particles: int,
    groups: int,
    key: PRNGKeyArray,
) -> dict[str, Any]:
    """Delta u along depth, finite (per width) and limit (`particles` x `groups`), for every
    depth and exponent; `fits` are the limit's slopes of rms_l Delta u_l in L."""
    depths, widths = sizes("depths", depths), sizes("widths", widths)
    exponents = numbers("exponents", exponents)
    count("seeds", seeds), count("steps", steps), count("particles", particles)
    count("groups", groups)
    if groups < 2:
        raise ValueError("groups must be >= 2 for the limit's standard errors")
    config = config.replace(model={"block": "two_layer"}, training={"steps": steps})
    stream = dataclasses.replace(
        stream, x_train=stream.x_train[:steps], y_train=stream.y_train[:steps]
    )
    key_limit, key_finite = jax.random.split(key)
    seed_keys = jax.random.split(key_finite, seeds)
    rows = []
    for depth in depths:
        for c in exponents:
            run_config = config.replace(
                network={"depth": depth, "backward": "decoupled"},
                training={"first_layer_exponent": c},
                solver={"depth_steps": depth, "particles": particles, "groups": groups},
            )
            limit = first_layer_changes(run_config, stream, key=key_limit)
            finite = {
                width: np.mean(
                    [
                        _finite_changes(run_config.replace(network={"width": width}), stream, k)
                        for k in seed_keys
                    ],
                    axis=0,
                )
                for width in widths
            }
            rows.append(
                {
                    "depth": depth,
                    "c": c,
                    "limit": limit.mean(axis=0),
                    "limit_stderr": limit.std(axis=0, ddof=1) / math.sqrt(groups),
                    "limit_rms": float(np.sqrt(np.mean(limit**2))),
                    "finite": {str(w): v for w, v in finite.items()},
                    "finite_rms": {
                        str(w): float(np.sqrt(np.mean(v**2))) for w, v in finite.items()
                    },
                }
            )
    fits = []
    for c in exponents:
        chosen = [r for r in rows if r["c"] == c]
        if len(chosen) > 1:
            fit = fit_loglog([r["depth"] for r in chosen], [r["limit_rms"] for r in chosen])
            fits.append({"c": c, "slope": fit.slope, "ci95": list(fit.ci95), "expected": c - 0.5})
    return {
        "depths": list(depths),
        "widths": list(widths),
        "exponents": list(exponents),
        "seeds": seeds,
        "steps": steps,
        "particles": particles,
        "groups": groups,
        "rows": rows,
        "fits": fits,
    }


def _finite_changes(config: Config, stream: DataStream, key) -> np.ndarray:
    """rms over step 0's minibatch and coordinates of Delta W_{l,1} phi(h^0_{l-1}) / sqrt(n)."""
    with jax.enable_x64(config.run.dtype == "float64"):
        initial, trained, _, _ = run_training(config, stream, key=key)
        _, stream0 = initial.residual_stream(np.asarray(stream.x_train[0], initial.readin.dtype))
        delta = trained.hidden["hidden_first"] - initial.hidden["hidden_first"]
        change = first_preactivations(initial, stream0, delta)
    return np.sqrt(np.mean(np.asarray(change) ** 2, axis=(1, 2)))


def plot_collapse_limit(data: dict[str, Any], path) -> None:
    """One row per exponent c: Delta u_l along depth t = (l - 1) / L for each depth (finite
    widths coloured, the limit black with its 95% band), and rms_l Delta u_l against L."""
    exponents, depths = data["exponents"], data["depths"]
    figure = new_figure(len(exponents), len(depths) + 1, width=4.2 * (len(depths) + 1))
    axes = np.asarray(figure.axes).reshape(len(exponents), len(depths) + 1)
    colours = dict(zip(data["widths"], palette(len(data["widths"]))))
    for i, c in enumerate(exponents):
        rows = [r for r in data["rows"] if r["c"] == c]
        for j, row in enumerate(rows):
            ax = axes[i, j]
            t = np.arange(row["depth"]) / row["depth"]
            for width, values in row["finite"].items():
                ax.plot(
                    t, values, "o-", markersize=3, color=colours[int(width)], label=f"n={width}"
                )
            limit = np.asarray(row["limit"])
            ax.plot(t, limit, "k--", label="limit (M = L)")
            draw_band(ax, t, limit, 2 * np.asarray(row["limit_stderr"]), color="black")
            ax.set(title=f"c = {c:g}, L = {row['depth']}", xlabel="depth time t", yscale="log")
            ax.set_ylabel("rms Delta u_l (step 0 minibatch)")
        ax = axes[i, -1]
        depths_c = [r["depth"] for r in rows]
        for width in data["widths"]:
            values = [r["finite_rms"][str(width)] for r in rows]
            ax.plot(depths_c, values, "o-", color=colours[width], label=f"n={width}")
        fit = next((f for f in data["fits"] if f["c"] == c), None)
        label = "limit" if fit is None else f"limit: L^{fit['slope']:.2f} (expected {c - 0.5:g})"
        ax.plot(depths_c, [r["limit_rms"] for r in rows], "ks--", label=label)
        ax.set(title=f"c = {c:g}: rms over layers", xlabel="depth L", xscale="log", yscale="log")
    for ax in figure.axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    save_figure(figure, path)
