"""Figures of a finite-vs-limit comparison (`run_compare`'s data, in memory or read from JSON).

`plot_compare(data, directory)` writes every figure in `FIGURES`:

* `errors.png`: relative error to the limit vs width n (largest L) and vs depth L (largest n),
  both backward modes, seed standard errors as bars, fitted power laws, the limit's own Monte
  Carlo error as a floor;
* `losses.png`: train and eval loss curves of the finite networks over the limit's;
* `kernels.png`: feature and gradient kernels along depth, finite vs limit, and their relative
  errors per depth;
* `gap.png`: the paired standard-decoupled gap vs n (one line per L) and vs L (one per n);
* `scaling.png`: final eval loss vs n and vs L, with the NFD loss as the horizontal asymptote.

`plot_kernels_along_depth(limit, finite, path)` draws the kernels of single `Result`s (notebooks).
Figures use the Agg canvas and 150 dpi, as in `_plots`.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..model import Result
from ._plots import LIMIT_STYLE, _integer_ticks, _log_if_positive, new_figure, palette, save_figure

FIGURES = {
    "errors": "errors.png",
    "losses": "losses.png",
    "kernels": "kernels.png",
    "gap": "gap.png",
    "scaling": "scaling.png",
}
MODE_STYLE = {
    "decoupled": dict(color="tab:blue", marker="o", linestyle="-"),
    "standard": dict(color="tab:red", marker="^", linestyle="--"),
}
KERNEL_TITLES = {
    "feature_eval": "feature kernel <phi(h_t), phi(h_t)> on eval inputs, after training",
    "grad_train": "gradient kernel <g_t, g_t> on the last minibatch",
}


def plot_compare(data: Mapping[str, Any], directory: str | Path) -> dict[str, Path]:
    """Write every figure of `FIGURES` into `directory`; returns their paths by name."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    draw = {
        "errors": plot_errors,
        "losses": plot_compare_losses,
        "kernels": plot_compare_kernels,
        "gap": plot_gap,
        "scaling": plot_scaling,
    }
    paths = {}
    for name, filename in FIGURES.items():
        paths[name] = out / filename
        draw[name](data, paths[name])
    return paths


def plot_errors(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Relative L2 error of the eval predictions to the limit, with fitted rates."""
    figure = new_figure(1, 2, height=4.4)
    grid = data["grid"]
    floor = data["limit"]["mc_error"]["f_eval_mean"]
    for ax, axis in zip(figure.axes, ("width", "depth")):
        plotted = []
        for mode in grid["modes"]:
            table = data["summary"][mode]["error"]
            sizes, mean, se = _slice(grid, table, axis)
            plotted.extend(mean)
            fit = data["fits"][f"error_{mode}"][f"vs_{axis}"]
            _errorbar(ax, sizes, mean, se, label=f"{mode}{_fit_label(fit)}", **MODE_STYLE[mode])
            _fit_line(ax, fit, color=MODE_STYLE[mode]["color"])
        if floor is not None:
            ax.axhline(floor, color="grey", linestyle=":", label="limit's own MC error")
        if axis == "depth":
            ax.axvline(grid["depth_steps"], color="black", alpha=0.3, label="L = M (solver)")
        ax.set(
            title=f"Distance to the NFD limit vs {_axis_name(axis)} ({_held(grid, axis)})",
            xlabel=_axis_name(axis),
            ylabel="||f - f_limit|| / ||f_limit||  (eval, all steps)",
        )
        _loglog(ax, grid[f"{axis}s"], plotted)
    return save_figure(figure, path)


def plot_gap(data: Mapping[str, Any], path: str | Path) -> Figure:
    """The paired gap ||f_standard - f_decoupled|| / ||f_limit|| vs n and vs L."""
    figure = new_figure(1, 2, height=4.4)
    grid = data["grid"]
    gap = data["summary"]["gap"]
    mean, se = _array(gap["mean"]), _array(gap["stderr"])
    for ax, axis in zip(figure.axes, ("width", "depth")):
        other = "depth" if axis == "width" else "width"
        for j, (value, colour) in enumerate(
            zip(grid[f"{other}s"], palette(len(grid[f"{other}s"])))
        ):
            m = mean[:, j] if axis == "width" else mean[j, :]
            s = se[:, j] if axis == "width" else se[j, :]
            label = f"{_symbol(other)} = {value}"
            if j == len(grid[f"{other}s"]) - 1:
                fit = data["fits"]["gap"][f"vs_{axis}"]
                label += _fit_label(fit)
                _fit_line(ax, fit, color=colour)
            _errorbar(ax, grid[f"{axis}s"], m, s, color=colour, marker="s", label=label)
        ax.set(
            title=f"Standard vs decoupled backward, same weights, vs {_axis_name(axis)}",
            xlabel=_axis_name(axis),
            ylabel="||f_standard - f_decoupled|| / ||f_limit||",
        )
        _loglog(ax, grid[f"{axis}s"], mean)
    return save_figure(figure, path)


def plot_scaling(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Final eval loss vs n (largest L) and vs L (largest n); the NFD loss as the asymptote."""
    figure = new_figure(1, 2, height=4.4)
    grid, limit = data["grid"], data["limit"]
    nfd = float(_array(limit["loss_eval"])[-1])
    band = limit["mc_error"]["loss_eval_final_stderr"]
    for ax, axis in zip(figure.axes, ("width", "depth")):
        for mode in grid["modes"]:
            sizes, mean, se = _slice(grid, data["summary"][mode]["loss_eval_final"], axis)
            _errorbar(ax, sizes, mean, se, label=mode, **MODE_STYLE[mode])
        ax.axhline(nfd, color="black", linewidth=2.0, label="NFD limit")
        if band is not None:
            ax.axhspan(nfd - 2 * band, nfd + 2 * band, color="black", alpha=0.1)
        ax.set(
            title=f"Final eval loss vs {_axis_name(axis)} ({_held(grid, axis)})",
            xlabel=_axis_name(axis),
            ylabel="eval loss after the last step",
        )
        ax.set_xscale("log", base=2)
        ax.set_xticks(grid[f"{axis}s"], [str(v) for v in grid[f"{axis}s"]])
        _finish(ax)
    return save_figure(figure, path)


def plot_compare_losses(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Train and eval loss curves: seed means at the largest L over the limit's curves."""
    figure = new_figure(1, 2, height=4.4)
    grid, limit = data["grid"], data["limit"]
    depth = grid["depths"][-1]
    for ax, name in zip(figure.axes, ("loss_train", "loss_eval")):
        limit_curve = _array(limit[name])
        ax.plot(np.arange(len(limit_curve)), limit_curve, label="NFD limit", **LIMIT_STYLE)
        for i, (width, colour) in enumerate(zip(grid["widths"], palette(len(grid["widths"])))):
            for mode in grid["modes"]:
                curve = _array(data["summary"][mode][name]["mean"])[i, -1]
                style = MODE_STYLE[mode]
                ax.plot(
                    np.arange(len(curve)),
                    curve,
                    color=colour,
                    linestyle=style["linestyle"],
                    marker=style["marker"],
                    markersize=3,
                    label=f"{mode} n={width}",
                )
        what = "minibatch of step k, before its update" if name == "loss_train" else "after k steps"
        ax.set(
            title=f"{'Train' if name == 'loss_train' else 'Eval'} loss ({what}), L = {depth}",
            xlabel="SGD step k",
            ylabel="mean loss (seed mean)",
        )
        _log_if_positive(ax)
        _integer_ticks(ax)
        _finish(ax)
    return save_figure(figure, path)


def plot_compare_kernels(data: Mapping[str, Any], path: str | Path) -> Figure:
    """Top: kernels along depth t, finite (largest L, seed means) vs limit. Bottom: relative
    Frobenius error per depth over all steps and input pairs."""
    figure = new_figure(2, 2, height=8.8)
    grid, limit = data["grid"], data["limit"]
    depth = grid["depths"][-1]
    colours = dict(zip(grid["widths"], palette(len(grid["widths"]))))
    mc = limit["mc_error"]["kernels_single"]
    for column, name in enumerate(KERNEL_TITLES):
        top, bottom = figure.axes[column], figure.axes[2 + column]
        _kernel_profiles(top, name, limit["kernel_t"], _array(limit["kernels"][name]), None)
        for width in grid["widths"]:
            for mode in grid["modes"]:
                runs = [
                    r
                    for r in data["runs"]
                    if (r["width"], r["depth"], r["mode"]) == (width, depth, mode)
                ]
                style = dict(color=colours[width], linestyle=MODE_STYLE[mode]["linestyle"])
                marker = MODE_STYLE[mode]["marker"]
                t = runs[0]["kernel_t"]
                profile = np.mean([_profile(name, _array(r["kernels"][name])) for r in runs], 0)
                top.plot(t, profile, marker=marker, label=f"{mode} n={width}", **style)
                errors = np.mean([_array(r["kernel_error"][name]) for r in runs], axis=0)
                bottom.plot(t, errors, marker=marker, label=f"{mode} n={width}", **style)
        if mc[name] is not None:
            floor = _array(mc[name]) / np.sqrt(grid["limit_seeds"])
            bottom.plot(limit["kernel_t"], floor, ":", color="grey", label="limit's own MC error")
        top.set(title=KERNEL_TITLES[name], xlabel="depth time t", ylabel="mean diagonal")
        bottom.set(
            title=f"relative Frobenius error of {name} per depth (L = {depth})",
            xlabel="depth time t",
            ylabel="||K - K_limit|| / ||K_limit||",
        )
        bottom.set_yscale("log")
        for ax in (top, bottom):
            _finish(ax)
    return save_figure(figure, path)


def plot_kernels_along_depth(
    limit: Result, finite: Mapping[str, Result], path: str | Path
) -> Figure:
    """Feature kernel after training and gradient kernel of the last step along depth t: the
    limit (black; grey dotted: before training) against finite networks."""
    figure = new_figure(1, 2, height=4.4)
    limit_t = _result_times(limit)
    for ax, name in zip(figure.axes, KERNEL_TITLES):
        before = _array(limit.kernels[name])[:1] if name == "feature_eval" else None
        _kernel_profiles(ax, name, limit_t, _array(limit.kernels[name]), before)
        for (label, result), colour in zip(finite.items(), palette(len(finite))):
            profile = _profile(name, _array(result.kernels[name]))
            ax.plot(_result_times(result), profile, "o-", color=colour, label=label)
        ax.set(title=KERNEL_TITLES[name], xlabel="depth time t", ylabel="mean diagonal")
        _finish(ax)
    return save_figure(figure, path)


def _kernel_profiles(ax: Axes, name, t, kernels, before) -> None:
    ax.plot(t, _profile(name, kernels), label="NFD limit", **LIMIT_STYLE)
    if before is not None:
        ax.plot(t, _profile(name, before), ":", color="grey", label="NFD limit, before training")


def _profile(name: str, kernels: np.ndarray) -> np.ndarray:
    """Mean diagonal of the last recorded step's kernel, one value per depth: (D,)."""
    return np.mean(np.diagonal(kernels[-1], axis1=-2, axis2=-1), axis=-1)


def _result_times(result: Result) -> list[float]:
    kernels, producer = result.kernels, result.producer
    if "layers" in kernels and "depth" in producer:
        return [layer / producer["depth"] for layer in kernels["layers"]]
    if "layers" in kernels and "depth_steps" in producer:
        return [point / producer["depth_steps"] for point in kernels["layers"]]
    return list(kernels["t"])


def _slice(grid, table, axis):
    """Sizes, means and standard errors along `axis` at the largest size of the other axis."""
    mean, se = _array(table["mean"]), _array(table["stderr"])
    if axis == "width":
        return grid["widths"], mean[:, -1], se[:, -1]
    return grid["depths"], mean[-1, :], se[-1, :]


def _errorbar(ax: Axes, sizes, mean, se, **style) -> None:
    se = np.where(np.isfinite(se), se, 0.0)
    ax.errorbar(sizes, mean, yerr=se, capsize=3, **style)


def _fit_line(ax: Axes, fit, *, color) -> None:
    if fit is None:
        return
    x = np.geomspace(min(fit["sizes"]), max(fit["sizes"]), 50)
    ax.plot(x, fit["prefactor"] * x ** fit["slope"], color=color, alpha=0.5, linewidth=1.0)


def _fit_label(fit) -> str:
    if fit is None:
        return ""
    if fit["stderr"] is None:
        return f": slope {fit['slope']:.2f}"
    return f": slope {fit['slope']:.2f} ± {fit['stderr']:.2f}"


def _axis_name(axis: str) -> str:
    return "width n" if axis == "width" else "depth L"


def _symbol(axis: str) -> str:
    return "n" if axis == "width" else "L"


def _held(grid, axis: str) -> str:
    return f"L = {grid['depths'][-1]}" if axis == "width" else f"n = {grid['widths'][-1]}"


def _loglog(ax: Axes, sizes, values) -> None:
    """Log x (ticks at the sizes); log y when every plotted value is positive."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(v) for v in sizes])
    values = np.asarray(values, dtype=float)
    if values.size and np.all(np.isfinite(values)) and np.all(values > 0):
        ax.set_yscale("log")
    _finish(ax)


def _finish(ax: Axes) -> None:
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")


def _array(values) -> np.ndarray:
    """A float array from arrays or JSON lists (null becomes NaN)."""
    return np.asarray(values, dtype=float)
