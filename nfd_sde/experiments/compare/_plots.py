"""Figures of a finite-vs-limit comparison (`run_compare`'s data, in memory or read from JSON).

`plot_compare(data, directory)` writes every figure in `FIGURES`; every point carries its
standard error, an unresolved distance is drawn as a downward triangle at its 95% upper bound:

* `bias.png`: the ensemble mean's distance to the limit at M = L (bias) and one network's spread
  (fluctuation) vs width n, one colour per depth, fitted slopes and the expected n^-1, n^-1/2;
* `depth.png`: the depth error vs L for each width, and the limit's own (n = infinity), with
  fits and the expected L^-1;
* `gap.png`: the standard-decoupled gap vs L for each width and extrapolated to n -> infinity,
  and vs 1/n for each depth with the extrapolation;
* `losses.png`, `scaling.png`: loss curves, and the final eval loss vs n and L over the NFD's;
* `kernels.png` (`_kernel_plots`): kernels along depth and their distance to the limit's.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..common import (
    LIMIT_STYLE,
    fit_sizes,
    integer_ticks,
    legend_below,
    log_if_positive,
    new_figure,
    palette,
    save_figure,
    too_few_sizes,
)
from ._fits import expected_line
from ._kernel_plots import plot_compare_kernels
from ._modes import tends_to_the_limit

FIGURES = {
    "bias": "bias.png",
    "depth": "depth.png",
    "gap": "gap.png",
    "losses": "losses.png",
    "scaling": "scaling.png",
    "kernels": "kernels.png",
}
MODE_STYLE = {
    "decoupled": dict(marker="o", linestyle="-"),
    "standard": dict(marker="^", linestyle="--"),
}


def plot_compare(data: Mapping[str, Any], directory: str | Path) -> dict[str, Path]:
    """Write every figure of `FIGURES` into `directory`; returns their paths by name."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    draw = drawers()
    paths = {}
    for name, filename in FIGURES.items():
        paths[name] = out / filename
        draw[name](data, paths[name])
    return paths


def drawers() -> dict[str, Any]:
    """The function that draws each figure of `FIGURES`: (data, path) -> Figure."""
    return {
        "bias": plot_bias,
        "depth": plot_depth_error,
        "gap": plot_gap,
        "losses": plot_compare_losses,
        "scaling": plot_scaling,
        "kernels": plot_compare_kernels,
    }


def plot_bias(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Bias and fluctuation vs width, per depth and mode."""
    figure = new_figure(1, 2, height=4.6)
    grid, summary, fits = data["grid"], data["summary"], data["fits"]
    colours = palette(len(grid["depths"]))
    for ax, name in zip(figure.axes, ("bias", "fluctuation")):
        for mode in grid["modes"]:
            for j, (depth, colour) in enumerate(zip(grid["depths"], colours)):
                cells = [row[j] for row in summary[name][mode]]
                fit = fits[f"{name}_{mode}"][j]
                label = f"{mode} L = {depth}{_fit_label(fit)}"
                _points(ax, grid["widths"], cells, color=colour, label=label, **MODE_STYLE[mode])
                if tends_to_the_limit(mode):
                    _fit_line(ax, fit, color=colour)
        _expected(ax, fits[f"{name}_decoupled"][-1], "n")
        what = "|E f - f_limit(M = L)|" if name == "bias" else "sqrt(tr Var f), one network"
        ax.set(title=f"{name.capitalize()} vs width", xlabel="width n", ylabel=_ylabel(data, what))
        _loglog(ax, grid["widths"])
    return save_figure(figure, path)


def plot_depth_error(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Depth error vs L: every width per mode, and the limit's own."""
    figure = new_figure(1, 2, height=4.6)
    grid, summary, fits = data["grid"], data["summary"], data["fits"]
    reference = summary["depth_reference"]["description"]
    for ax, mode in zip(figure.axes, grid["modes"]):
        for i, (width, colour) in enumerate(zip(grid["widths"], palette(len(grid["widths"])))):
            fit = fits[f"depth_{mode}"][i]
            label = f"n = {width}{_fit_label(fit)}"
            _points(ax, grid["depths"], summary["depth"][mode][i], color=colour, label=label)
            _fit_line(ax, fit, color=colour)
        if summary.get("depth_limit") is not None:
            fit = fits["depth_limit"]
            label = f"NFD limit, M = L{_fit_label(fit)}"
            _points(ax, grid["depths"], summary["depth_limit"], label=label, marker="s",
                    **LIMIT_STYLE)  # fmt: skip
        _expected(ax, fits[f"depth_{mode}"][-1], "L")
        ax.set(title=f"{mode}: depth error vs depth", xlabel=f"depth L ({reference})",
               ylabel=_ylabel(data, "|E f(L) - f_ref(L)|"))  # fmt: skip
        # the deepest L has no successive reference: no empty stretch of axis for it
        rows = [*summary["depth"][mode], summary.get("depth_limit") or []]
        defined = [d for j, d in enumerate(grid["depths"])
                   if any(j < len(row) and row[j] is not None for row in rows)]  # fmt: skip
        _loglog(ax, defined or grid["depths"])
    return save_figure(figure, path)


def plot_gap(data: Mapping[str, Any], path: str | Path) -> Figure:
    """The gap |E(f_standard - f_decoupled)| vs L per width and at n = infinity; vs 1/n."""
    figure = new_figure(1, 2, height=4.6)
    grid, summary = data["grid"], data["summary"]
    left, right = figure.axes
    if "gap" not in summary:
        return save_figure(figure, path)
    for i, (width, colour) in enumerate(zip(grid["widths"], palette(len(grid["widths"])))):
        _points(left, grid["depths"], summary["gap"][i], color=colour, label=f"n = {width}")
    infinite = summary["gap_infinite_width"]
    _points(left, grid["depths"], infinite, label="n -> infinity (linear in 1/n)", **LIMIT_STYLE)
    left.set(
        title="Standard vs decoupled backward, paired seeds",
        xlabel="depth L",
        ylabel=_ylabel(data, "|E (f_standard - f_decoupled)|"),
    )
    _loglog(left, grid["depths"], log_y=False)
    inverse = 1.0 / np.asarray(grid["widths"], dtype=float)
    for j, (depth, colour) in enumerate(zip(grid["depths"], palette(len(grid["depths"])))):
        _points(
            right, inverse, [row[j] for row in summary["gap"]], color=colour, label=f"L = {depth}"
        )
        cell = infinite[j]
        if cell is not None:
            value, se = _value(cell), _float(cell.get("stderr"))
            right.errorbar([0.0], [value], yerr=[np.nan_to_num(se)], color=colour, marker="*",
                           markersize=10, capsize=3)  # fmt: skip
            right.plot(
                [0.0, inverse.max()], [value, _value(summary["gap"][0][j])], ":", color=colour
            )
    right.set(title="Gap vs 1/n; stars: extrapolated to n -> infinity", xlabel="1 / n",
              ylabel=_ylabel(data, "gap"))  # fmt: skip
    right.set_xlim(left=-0.05 * inverse.max())
    _finish(right)
    return save_figure(figure, path)


def plot_compare_losses(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Train and eval loss curves at the largest L (ensemble means) over the limit's."""
    figure = new_figure(1, 2, height=4.4)
    grid, summary = data["grid"], data["summary"]
    limit = summary["limit_losses"][str(grid["limit_depth_steps"][-1])]
    for ax, name in zip(figure.axes, ("loss_train", "loss_eval")):
        curve = _array(limit[name]["mean"])
        ax.plot(np.arange(len(curve)), curve, label="NFD limit", **LIMIT_STYLE)
        for i, (width, colour) in enumerate(zip(grid["widths"], palette(len(grid["widths"])))):
            for mode in grid["modes"]:
                table = summary["losses"][mode][name]
                mean, se = _array(table["mean"])[i, -1], _array(table["stderr"])[i, -1]
                ax.errorbar(np.arange(len(mean)), mean, yerr=np.nan_to_num(se), color=colour,
                            markersize=3, capsize=2, label=f"{mode} n={width}",
                            **MODE_STYLE[mode])  # fmt: skip
        what = "minibatch of step k, before its update" if name == "loss_train" else "after k steps"
        ax.set(title=f"{name} ({what}), L = {grid['depths'][-1]}", xlabel="SGD step k",
               ylabel="mean loss (ensemble mean)")  # fmt: skip
        log_if_positive(ax)
        integer_ticks(ax)
        ax.grid(alpha=0.3, which="both")
    legend_below(figure, figure.axes[-1], columns=5)
    return save_figure(figure, path)


def plot_scaling(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Final eval loss vs n (largest L) and vs L (largest n); the NFD loss as the asymptote."""
    figure = new_figure(1, 2, height=4.4)
    grid, summary = data["grid"], data["summary"]
    limits = summary["limit_losses"]
    for ax, axis in zip(figure.axes, ("width", "depth")):
        for mode in grid["modes"]:
            table = summary["losses"][mode]["loss_eval"]
            mean, se = _array(table["mean"])[..., -1], _array(table["stderr"])[..., -1]
            mean, se = (mean[:, -1], se[:, -1]) if axis == "width" else (mean[-1], se[-1])
            ax.errorbar(grid[f"{axis}s"], mean, yerr=np.nan_to_num(se), capsize=3, label=mode,
                        **MODE_STYLE[mode])  # fmt: skip
        nfd = [limits[str(m)]["loss_eval"] for m in grid["limit_depth_steps"]]
        values = np.array([_array(n["mean"])[-1] for n in nfd])
        errors = np.array([_float(_array(n["stderr"])[-1]) if n["stderr"] is not None else 0.0
                           for n in nfd])  # fmt: skip
        if axis == "width":
            ax.axhline(values[-1], label="NFD limit", **LIMIT_STYLE)
            ax.axhspan(
                values[-1] - 2 * errors[-1], values[-1] + 2 * errors[-1], color="k", alpha=0.1
            )
        else:
            ax.errorbar(grid["depths"], values, yerr=np.nan_to_num(errors), label="NFD limit, M = L",
                        capsize=3, **LIMIT_STYLE)  # fmt: skip
        held = f"L = {grid['depths'][-1]}" if axis == "width" else f"n = {grid['widths'][-1]}"
        ax.set(title=f"Final eval loss vs {axis} ({held})", xlabel=axis, ylabel="eval loss")
        _loglog(ax, grid[f"{axis}s"], log_y=False)
    return save_figure(figure, path)


def _points(ax: Axes, sizes, cells, *, label: str, **style) -> None:
    """Resolved cells as points with error bars; unresolved ones as triangles at their bound."""
    sizes = np.asarray(sizes, dtype=float)
    values = np.array([_value(c) for c in cells])
    errors = np.array([_float(c.get("stderr")) if c else np.nan for c in cells])
    resolved = np.array(
        [bool(c) and c.get("resolved", True) and v > 0 for c, v in zip(cells, values)]
    )
    style = {"capsize": 3, **style}
    ax.errorbar(np.where(resolved, sizes, np.nan), np.where(resolved, values, np.nan),
                yerr=np.nan_to_num(errors), label=label, **style)  # fmt: skip
    bounds = [(s, _float(c.get("high"))) for s, c, r in zip(sizes, cells, resolved) if c and not r]
    if bounds:
        colour = style.get("color", "black")
        ax.plot(*zip(*bounds), linestyle="none", marker="v", color=colour, alpha=0.6)


def _value(cell) -> float:
    if not cell:
        return np.nan
    return _float(cell.get("debiased", cell.get("value")))


def _float(value) -> float:
    return np.nan if value is None else float(value)


def _fit_line(ax: Axes, fit, *, color) -> None:
    if fit is None or fit.get("slope") is None:
        return
    x = np.geomspace(min(fit["sizes"]), max(fit["sizes"]), 50)
    ax.plot(x, fit["prefactor"] * x ** fit["slope"], color=color, alpha=0.5, linewidth=1.0)


def _expected(ax: Axes, fit, symbol: str) -> None:
    line = expected_line(fit)
    if line is not None:
        ax.plot(*line, color="grey", linestyle=":", label=f"expected {symbol}^{fit['expected']:g}")


def _fit_label(fit) -> str:
    """`: slope -0.95 ± 0.08`, and `(2 sizes: not a rate)` under the shared evidence rule."""
    if not fit or fit.get("slope") is None:
        return ""
    few = too_few_sizes(fit_sizes(fit))
    return f": slope {fit['slope']:.2f} ± {fit['stderr']:.2f}" + (
        f" ({fit_sizes(fit)} sizes: not a rate)" if few else ""
    )


def _ylabel(data, what: str) -> str:
    return what if data["scale"]["kind"] == "absolute" else f"{what} / |f_limit|"


def _loglog(ax: Axes, sizes, *, log_y: bool = True) -> None:
    """Log x (ticks at the sizes) and log y, where something finite (and positive) is drawn."""
    values = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
    values = np.concatenate(values) if values else np.zeros(0)
    if np.any(np.isfinite(values)):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(v) for v in sizes])
    if log_y and np.any(np.isfinite(values) & (values > 0)):
        ax.set_yscale("log", nonpositive="mask")
    _finish(ax)


def _finish(ax: Axes) -> None:
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")


def _array(values) -> np.ndarray:
    """A float array from arrays or JSON lists (null becomes NaN)."""
    return np.asarray(values, dtype=float)
