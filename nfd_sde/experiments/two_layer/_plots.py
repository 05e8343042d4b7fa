"""Figures of the two-layer diagnostics: collapse slopes, coordinate check, transfer, norms."""

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from ..common import legend_below, log_if_positive, new_figure, palette, save_figure
from ._collapse import CHANGES
from ._transfer import CRITERIA

CHANGE_LABELS = {
    "first_layer": "first internal layer: rms Delta u_l",
    "block_output": "block output x L: L rms s_l Delta W_{l,2} phi(u_l) / sqrt(n)",
    "total": "total feature change: rms Delta h_L",
}


# ---------------------------------------------------------------------------------------------
# Figures (Agg canvas, no pyplot)


def plot_collapse(collapse: dict[str, Any], path: str | Path) -> Figure:
    """Each change (seed mean, bars: seed std) against L, log-log; one colour per c, one line
    style per width; the fitted slope (95% interval) in the legend. Diverged runs (NaN) leave
    gaps, and a quantity without a fit says so in the legend."""
    figure = new_figure(1, len(CHANGES), width=5.0 * len(CHANGES))
    colours = palette(len(collapse["exponents"]))
    styles = _styles(collapse["widths"])
    markers = ("o", "s", "^", "D", "v")
    for ax, name in zip(figure.axes, CHANGES):
        for index, (c, colour) in enumerate(zip(collapse["exponents"], colours)):
            # each c its own marker, nudged sideways, the first drawn widest and underneath: an
            # exponent whose points coincide with another's stays visible
            shift, width_line = 1.0 + 0.04 * index, 3.0 / (1 + index)
            for width in collapse["widths"]:
                runs = [r for r in collapse["runs"] if r["c"] == c and r["width"] == width]
                values = np.array([r["aggregate"][name] for r in runs])
                fit = next(
                    f
                    for f in collapse["slopes"]
                    if f["c"] == c and f["width"] == width and f["quantity"] == name
                )
                depths = np.array([r["depth"] for r in runs])
                ax.errorbar(
                    depths * shift,
                    values.mean(axis=1),
                    yerr=values.std(axis=1),
                    fmt=markers[index % len(markers)],
                    color=colour,
                    capsize=2,
                    label=None if fit["slope"] is not None else f"c={c:g}, n={width}: no fit",
                )
                if fit["slope"] is not None:
                    label = f"c={c:g}, n={width}: slope {fit['slope']:.3f}"
                    label += _interval(fit["ci95"])
                    fitted = np.array(fit["depths_fitted"])
                    line = fit["prefactor"] * fitted ** fit["slope"]
                    ax.plot(fitted * shift, line, styles[width], color=colour, label=label,
                            linewidth=width_line, zorder=2 + index)  # fmt: skip
        ax.set(xscale="log", xlabel="depth L", ylabel="rms change")
        log_if_positive(ax)
        _size_ticks(ax, collapse["depths"])
        ax.set_title(CHANGE_LABELS[name], fontsize="small")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
    figure.suptitle(f"Two-layer blocks: learned change after {collapse['steps']} SGD step(s)")
    return save_figure(figure, path)


def plot_coordinate_check(collapse: dict[str, Any], path: str | Path) -> Figure:
    """The muP coordinate check at every step k (one colour per step): mean |h_L|, mean over
    layers of mean |u_l| and mean |f| (rows 1-2, linear y from 0), and the same of the changes
    since step 0 (rows 3-4, log y, step 0 omitted); against width at the largest depth (rows
    1, 3) and against depth at the largest width (rows 2, 4). Solid: the first exponent c,
    dashed: the last."""
    figure = new_figure(4, 3, width=14.0, height=15.0)
    axes = np.array(figure.axes).reshape(4, 3)
    colours = palette(collapse["steps"] + 1)
    exponents = collapse["exponents"]
    shown = [(exponents[0], "-")] + ([(exponents[-1], "--")] if len(exponents) > 1 else [])
    sweeps = [
        ("width", max(collapse["depths"]), "depth", "width n"),
        ("depth", max(collapse["widths"]), "width", "depth L"),
    ]
    names = ("|h_L|", "|u_l| (mean over l)", "|f|")
    for row, (prefix, first_step) in enumerate((("", 0), ("d", 1))):
        for offset, (axis, fixed, fixed_name, xlabel) in enumerate(sweeps):
            panel_row = axes[2 * row + offset]
            if len(collapse[f"{axis}s"]) < 2:  # one size: nothing to sweep, nothing to draw
                for ax in panel_row:
                    ax.set_axis_off()
                    ax.text(0.5, 0.5, f"one {axis} ({collapse[f'{axis}s'][0]}): no sweep",
                            ha="center", va="center", transform=ax.transAxes)  # fmt: skip
                continue
            for c, style in shown:
                runs = sorted(
                    (r for r in collapse["runs"] if r["c"] == c and r[fixed_name] == fixed),
                    key=lambda r: r[axis],
                )
                coords = [{k: np.asarray(v) for k, v in r["coordinates"].items()} for r in runs]
                quantities = [
                    [q[prefix + "h"][:, -1] for q in coords],
                    [np.mean(q[prefix + "u"], axis=-1) for q in coords],
                    [q[prefix + "f"] for q in coords],
                ]
                x = [r[axis] for r in runs]
                for ax, values in zip(panel_row, quantities):
                    values = np.array(values)  # (sizes, steps + 1)
                    for k in range(first_step, values.shape[1]):
                        label = f"step {k}" if c == exponents[0] else None
                        ax.plot(x, values[:, k], style, marker="o", color=colours[k], label=label)
            for ax, name in zip(panel_row, names):
                name = f"mean {'change of ' if prefix else ''}{name}"
                spread = _relative_spread(ax)
                ax.set(xscale="log", xlabel=xlabel, ylabel=name)
                _size_ticks(ax, collapse[f"{axis}s"])
                if prefix:
                    log_if_positive(ax)
                else:
                    lines = [np.asarray(line.get_ydata(), float) for line in ax.get_lines()]
                    values = np.concatenate([*lines, []])
                    values = values[np.isfinite(values)]
                    if values.size and values.max() > 0:
                        ax.set_ylim(0.0, 1.15 * values.max())
                ax.set_title(f"{name} ({fixed_name} {fixed}){spread}", fontsize="small")
                ax.grid(alpha=0.3, which="both")
    legend_below(figure, next(ax for ax in figure.axes if ax.get_lines()), columns=8)
    styles = f"solid c={exponents[0]:g}" + (
        f", dashed c={exponents[-1]:g}" if len(exponents) > 1 else ""
    )
    figure.suptitle(
        f"muP coordinate check: expected O(1) and flat across width ({styles}); each panel's "
        "title: the largest change across its sweep"
    )
    return save_figure(figure, path)


def plot_transfer(summary: dict[str, Any], path: str | Path) -> Figure:
    """Final loss (seed mean) against log2 learning rate: rows train / eval, one panel per c,
    one colour per depth, one line style per width; stars mark each depth's optimum, crosses
    (at the panel's top) learning rates where some seed diverged."""
    exponents, widths = summary["grid"]["exponents"], summary["grid"]["widths"]
    depths = summary["grid"]["depths"]
    figure = new_figure(len(CRITERIA), len(exponents), width=4.5 * len(exponents), height=7.5)
    axes = np.array(figure.axes).reshape(len(CRITERIA), len(exponents))
    colours = dict(zip(depths, palette(len(depths))))
    styles = _styles(widths)
    for panel in summary["panels"]:
        column = exponents.index(panel["c"])
        x = np.array(panel["log2_lrs"])
        for ax, criterion in zip(axes[:, column], CRITERIA):
            stats = panel[criterion]
            for i, depth in enumerate(panel["depths"]):
                mean = np.array([np.nan if v is None else v for v in stats["mean"][i]])
                label = f"L={depth}" + (f", n={panel['width']}" if len(widths) > 1 else "")
                style = dict(color=colours[depth])
                ax.plot(x, mean, styles[panel["width"]], marker="o", ms=3, label=label, **style)
                optimum = stats["optimum_log2_lr"][i]
                if optimum is not None:
                    ax.plot(optimum, stats["best_loss"][i], "*", ms=12, mec="black", **style)
                bad = x[np.array(stats["diverged"][i]) > 0]
                top = np.full(len(bad), 0.97 - 0.03 * i)
                ax.plot(bad, top, "x", transform=ax.get_xaxis_transform(), **style)
            spread = stats["spread_log2_lr"]
            spread = "n/a" if spread is None else f"{spread:g}"
            ax.set_title(
                f"c={panel['c']:g}: final {criterion} loss (optimum spread {spread})",
                fontsize="small",
            )
    for ax, criterion in zip(axes.flat, [c for c in CRITERIA for _ in exponents]):
        ax.set(xlabel="log2 learning rate eta", ylabel=f"final {criterion} loss")
        log_if_positive(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    figure.suptitle("Learning-rate transfer across depth (x: some seed diverged)")
    return save_figure(figure, path)


def plot_norms(norms: dict[str, Any], path: str | Path) -> Figure:
    """rms of h_l against depth time l/L, at init (left) and after training (right); one colour
    per depth, solid pre-activation, dashed post-activation."""
    figure = new_figure(1, 2, width=11.0)
    colours = dict(zip(norms["depths"], palette(len(norms["depths"]))))
    styles = {"pre": "-", "post": "--"}
    for ax, stage in zip(figure.axes, ("init", "trained")):
        for run in norms["runs"]:
            values = np.asarray(run[stage], float)
            t = np.arange(len(values)) / run["depth"]
            label = f"{run['block_order']}, L={run['depth']}"
            ax.plot(t, values, styles[run["block_order"]], color=colours[run["depth"]], label=label)
        ax.set(xlabel="depth time l / L", ylabel="rms of h_l", title=f"Feature norm, {stage}")
        log_if_positive(ax)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small", ncol=2)
    figure.suptitle(f"Pre- vs post-activation blocks (width {norms['width']})")
    return save_figure(figure, path)


def _interval(ci95) -> str:
    """` [-0.61, -0.42]`; an unbounded end (two depths, or null in JSON) as infinity."""
    low, high = (
        -math.inf if ci95[0] is None else ci95[0],
        math.inf if ci95[1] is None else ci95[1],
    )
    if not (math.isfinite(low) and math.isfinite(high)):
        return " (two depths: no interval)"
    return f" [{low:.2f}, {high:.2f}]"


def _relative_spread(ax) -> str:
    """`, varies by 27%`: the largest (max - min) / max of the panel's lines across the sweep."""
    spreads = []
    for line in ax.get_lines():
        values = np.abs(np.asarray(line.get_ydata(), float))
        values = values[np.isfinite(values)]
        if values.size > 1 and values.max() > 0:
            spreads.append((values.max() - values.min()) / values.max())
    return f", varies by {max(spreads):.0%}" if spreads else ""


def _styles(widths: Sequence[int]) -> dict[int, str]:
    cycle = ("-", "--", ":", "-.")
    return {w: cycle[i % len(cycle)] for i, w in enumerate(sorted(widths, reverse=True))}


def _size_ticks(ax, sizes: Sequence[int]) -> None:
    """Integer ticks at the sizes on a log axis."""
    ax.set_xticks(list(sizes), [str(s) for s in sizes])
    ax.xaxis.set_minor_locator(NullLocator())
