"""The figure of `run_gia_digits`: eval loss curves of standard and decoupled backprop per depth,
and the paired gap against depth with its fitted power law, one row per branch scaling."""

import io
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import NullLocator

from solvers import t95

from ..common import draw_band, new_figure, palette, write_text

STYLES = {"standard": "--", "decoupled": "-"}
GAP_MARKERS = {"final": "o", "curve": "s"}
GAP_LABELS = {"final": "|mean gap| at step K", "curve": "|mean gap| over steps 1..K"}


def plot_gia_digits(data: dict[str, Any], path: str | Path):
    """One row per branch scaling: a panel of mean eval loss curves (95% band over seeds) per
    depth, standard dashed and decoupled solid, and a last panel with the gap's size against L
    (mean over seeds, 95% bars) and the fitted L^slope line. Written atomically to `path`."""
    protocol = data["protocol"]
    scalings, depths = list(protocol["scalings"]), protocol["depths"]
    figure = new_figure(len(scalings), len(depths) + 1, width=3.6 * (len(depths) + 1))
    axes = np.asarray(figure.axes).reshape(len(scalings), len(depths) + 1)
    colours = dict(zip(depths, palette(len(depths))))
    for row, scaling in zip(axes, scalings):
        for ax, depth in zip(row[:-1], depths):
            for run in data["runs"]:
                if run["scaling"] == scaling and run["depth"] == depth:
                    _curve(ax, run, colours[depth])
            ax.set(title=f"{protocol['scalings'][scaling]}, L={depth}", xlabel="SGD step k")
            ax.set(ylabel="eval loss", yscale="log")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize="x-small")
        _gap_panel(row[-1], data, scaling)
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".") or "png", dpi=150)
    write_text(path, buffer.getvalue())
    return figure


def _curve(ax, run: dict[str, Any], colour) -> None:
    losses = np.asarray(run["loss_eval"], dtype=float)
    losses = losses[np.all(np.isfinite(losses), axis=1)]
    if not len(losses):
        return
    steps = np.arange(losses.shape[1])
    mean = losses.mean(axis=0)
    label = f"{run['backward']} ({len(losses)} seeds)"
    ax.plot(steps, mean, STYLES[run["backward"]], color=colour, label=label)
    if len(losses) > 1:
        half = t95(len(losses) - 1) * losses.std(axis=0, ddof=1) / np.sqrt(len(losses))
        draw_band(ax, steps, mean, half, color=colour, alpha=0.15)


def _gap_panel(ax, data: dict[str, Any], scaling: str) -> None:
    rows = [g for g in data["gaps"] if g["scaling"] == scaling]
    for quantity, marker in GAP_MARKERS.items():
        kept = [g for g in rows if g[quantity] is not None and g[quantity]["mean"] != 0]
        if not kept:
            continue
        depth = np.array([g["depth"] for g in kept], dtype=float)
        mean = np.abs([g[quantity]["mean"] for g in kept])
        half = np.array([g[quantity]["ci95"][1] - g[quantity]["mean"] for g in kept])
        yerr = np.stack([np.minimum(half, mean * (1 - 1e-3)), half])
        fit = next(f for f in data["fits"] if f["scaling"] == scaling and f["quantity"] == quantity)
        label = GAP_LABELS[quantity]
        if fit["slope"] is not None:
            label += f": L^{fit['slope']:.2f} [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]"
        points = ax.errorbar(depth, mean, yerr=yerr, fmt=marker, capsize=3, label=label)
        if fit["slope"] is not None:
            grid = np.array([min(depth), max(depth)])
            line = np.exp(fit["intercept"]) * grid ** fit["slope"]
            ax.plot(grid, line, ":", color=points[0].get_color())
    ax.set(xscale="log", yscale="log", xlabel="depth L", ylabel="|standard - decoupled| eval loss")
    depths = sorted({g["depth"] for g in rows})
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(depths, labels=[str(d) for d in depths])
    ax.set_title("paired gap (mean over seeds, 95%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="x-small")
