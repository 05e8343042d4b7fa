"""Kernels along depth: finite ensembles or single runs against the NFD limit.

* `plot_compare_kernels(data, path)`: top, the kernels' mean diagonal along depth t (the limit at
  the largest M against the ensemble means at the largest L, every width and mode); bottom, the
  ensemble-mean kernel's distance to the limit's per recorded depth at the largest width, raw and
  with the noise of both means removed, and that noise (dotted).
* `plot_kernels_along_depth(limit, finite, path)`: the same top row from single `Result`s
  (notebooks).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ...model import Result, interval95
from ..common import LIMIT_STYLE, draw_band, new_figure, palette, save_figure

KERNEL_TITLES = {
    "feature_eval": "feature kernel <phi(h_t), phi(h_t)> on eval inputs, after training",
    "grad_train": "gradient kernel <g_t, g_t> on the last minibatch",
}
LINESTYLES = {"decoupled": "-", "standard": "--"}


def plot_compare_kernels(data: Mapping[str, Any], path: str | Path) -> Figure:
    figure = new_figure(2, 2, height=8.8)
    grid, summary = data["grid"], data["summary"]
    limit = data["limits"][-1]
    depth, width = grid["depths"][-1], grid["widths"][-1]
    cells = {(e["mode"], e["width"], e["depth"]): e for e in data["ensembles"]}
    colours = dict(zip(grid["widths"], palette(len(grid["widths"]))))
    for column, name in enumerate(KERNEL_TITLES):
        top, bottom = figure.axes[column], figure.axes[2 + column]
        _kernel_profiles(top, name, limit["kernel_t"], _array(limit["kernels"][name]), None)
        for n in grid["widths"]:
            for mode in grid["modes"]:
                cell = cells[(mode, n, depth)]
                top.plot(cell["kernel_t"], _profile(_array(cell["kernels"][name]), len(cell["kernel_t"])), marker="o",
                         color=colours[n], linestyle=LINESTYLES[mode], label=f"{mode} n={n}")  # fmt: skip
        for mode in grid["modes"]:
            errors = summary["kernels"][mode][name][-1][-1]
            if errors is None:
                continue
            t = cells[(mode, width, depth)]["kernel_t"]
            for key, marker in (("raw", "o"), ("debiased", "s")):
                values = [_float(e[key]) for e in errors]
                bottom.plot(
                    t, values, marker=marker, linestyle=LINESTYLES[mode], label=f"{mode}, {key}"
                )
            floor = [_float(e["floor"]) for e in errors]
            bottom.plot(t, floor, ":", color="grey", label=f"{mode}, noise of both means")
        top.set(xlabel="depth time t", ylabel="mean diagonal")
        top.set_title(KERNEL_TITLES[name], fontsize="medium")
        bottom.set_title(
            f"|E K - K_limit| / |K_limit| per depth (n = {width}, L = {depth})", fontsize="medium"
        )
        bottom.set(
            xlabel="depth time t",
            ylabel="relative distance (all steps, input pairs)",
        )
        for ax in (top, bottom):
            _finish(ax)
    return save_figure(figure, path)


def plot_kernels_along_depth(
    limit: Result, finite: Mapping[str, Result], path: str | Path
) -> Figure:
    """Feature kernel after training and gradient kernel of the last step along depth t: the
    limit (black, with its 95% band where it has errors: the mean over the diagonal of each
    entry's band, an upper bound on the band of the mean; grey dotted: before training) against
    finite networks."""
    figure = new_figure(1, 2, height=4.4)
    limit_t = _result_times(limit)
    for ax, name in zip(figure.axes, KERNEL_TITLES):
        before = _array(limit.kernels[name])[:1] if name == "feature_eval" else None
        _kernel_profiles(ax, name, limit_t, _array(limit.kernels[name]), before)
        band = interval95(limit, f"kernels.{name}")
        if band is not None and np.size(band):
            profile = _profile(_array(limit.kernels[name]), len(limit_t))
            draw_band(ax, limit_t, profile, _profile(band, len(limit_t)), color="black")
            ax.fill_between([], [], color="black", alpha=0.2, label="NFD limit's 95% band")
        for (label, result), colour in zip(finite.items(), palette(len(finite))):
            profile = _profile(_array(result.kernels[name]), len(_result_times(result)))
            ax.plot(_result_times(result), profile, "o-", color=colour, label=label)
        ax.set(title=KERNEL_TITLES[name], xlabel="depth time t", ylabel="mean diagonal")
        _finish(ax)
    return save_figure(figure, path)


def _kernel_profiles(ax: Axes, name, t, kernels, before) -> None:
    ax.plot(t, _profile(kernels, len(t)), label="NFD limit", **LIMIT_STYLE)
    if before is not None:
        ax.plot(t, _profile(before, len(t)), ":", color="grey", label="NFD limit, before training")


def _profile(kernels: np.ndarray, depths: int) -> np.ndarray:
    """Mean diagonal of the last recorded step's kernel, one value per depth: (D,) (NaN when no
    step was recorded, as for the gradient kernel without training; JSON keeps no shape for
    such an empty list)."""
    if kernels.size == 0:
        return np.full(depths, np.nan)
    return np.mean(np.diagonal(kernels[-1], axis1=-2, axis2=-1), axis=-1)


def _result_times(result: Result) -> list[float]:
    kernels, producer = result.kernels, result.producer
    if "layers" in kernels and "depth" in producer:
        return [layer / producer["depth"] for layer in kernels["layers"]]
    if "layers" in kernels and "depth_steps" in producer:
        return [point / producer["depth_steps"] for point in kernels["layers"]]
    return list(kernels["t"])


def _float(value) -> float:
    return np.nan if value is None else float(value)


def _finish(ax: Axes) -> None:
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")


def _array(values) -> np.ndarray:
    return np.asarray(values, dtype=float)
