"""The demo's figure: the limit with its 95% band against finite-network ensembles."""

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..model import interval95
from ._plots import LIMIT_STYLE, draw_band, new_figure, palette, save_figure

MODE_STYLE = {
    "decoupled": dict(linestyle="-", marker="o"),
    "standard": dict(linestyle="--", marker="^"),
}


def plot_demo(data: dict[str, Any], path: str | Path) -> Figure:
    """Four panels: eval loss against the step; the last step's eval predictions (output 0);
    the ensemble mean's distance to the limit against the step; and against the width, with the
    fitted rate. Limit: black with its 95% band; ensembles: mean +- 2 standard errors, one colour
    per width, dashed for standard backprop."""
    limit, rows = data["limit"], data["summary"]["rows"]
    figure = new_figure(1, 4, width=22.0)
    loss_ax, pred_ax, step_ax, width_ax = figure.axes
    f_limit = np.asarray(limit.f_eval)[..., 0]
    steps, inputs = np.arange(f_limit.shape[0]), np.arange(f_limit.shape[1])
    order = np.argsort(f_limit[-1])
    loss_ax.plot(steps, limit.loss_eval, label="NFD limit (95% band)", **LIMIT_STYLE)
    draw_band(loss_ax, steps, limit.loss_eval, interval95(limit, "loss_eval"), color="black")
    pred_ax.plot(inputs, f_limit[-1, order], label="NFD limit (95% band)", **LIMIT_STYLE)
    band = interval95(limit, "f_eval")
    if band is not None:
        draw_band(pred_ax, inputs, f_limit[-1, order], band[-1, order, 0], color="black")
    widths = sorted({r["width"] for r in rows})
    colours = dict(zip(widths, palette(len(widths))))
    for row in rows:
        colour, style = colours[row["width"]], MODE_STYLE[row["mode"]]
        label = f"{row['mode']} n={row['width']}"
        loss_ax.plot(steps, row["loss_eval"], color=colour, label=label, markersize=3, **style)
        if row["loss_eval_stderr"] is not None:
            draw_band(loss_ax, steps, row["loss_eval"], 2 * row["loss_eval_stderr"], color=colour)
        mean, se = row["mean"][..., 0], row["stderr"][..., 0]
        shift = 0.1 * (widths.index(row["width"]) + 1) * (1 if row["mode"] == "decoupled" else -1)
        pred_ax.errorbar(
            inputs + shift, mean[-1, order], yerr=2 * se[-1, order], color=colour,
            fmt=style["marker"], markersize=4, capsize=2, label=label,
        )  # fmt: skip
        distance = np.sqrt(np.mean((mean - f_limit) ** 2, axis=1)) / np.sqrt(np.mean(f_limit**2))
        step_ax.plot(steps, distance, color=colour, label=label, markersize=3, **style)
    for mode, style in MODE_STYLE.items():
        chosen = [r for r in rows if r["mode"] == mode]
        colour = "tab:blue" if mode == "decoupled" else "tab:red"
        n = [r["width"] for r in chosen]
        width_ax.errorbar(
            n, [r["debiased"] for r in chosen], yerr=[2 * r["distance_stderr"] for r in chosen],
            label=f"{mode}: debiased", color=colour, capsize=3, **style,
        )  # fmt: skip
        width_ax.plot(
            n, [r["distance"] for r in chosen], color=colour, alpha=0.4, linestyle=":",
            marker=style["marker"], label=f"{mode}: raw (with the seeds' noise)",
        )  # fmt: skip
    rate = data["summary"]["rate"]
    if rate is not None:
        n = np.array([min(widths), max(widths)], dtype=float)
        low, high = rate["ci95"]
        width_ax.plot(
            n, rate["prefactor"] * n ** rate["slope"], ":", color="tab:blue",
            label=f"fit n^{rate['slope']:.2f} [{low:.2f}, {high:.2f}]",
        )  # fmt: skip
    loss_ax.set(title="Eval loss", xlabel="SGD step k", ylabel="mean eval loss")
    pred_ax.set(
        title=f"Eval predictions after {steps[-1]} steps (ensembles: +-2 SE)",
        xlabel="eval input (ordered by the limit)",
        ylabel="f(x), output 0",
    )
    step_ax.set(
        title="Ensemble mean vs limit, per step",
        xlabel="SGD step k",
        ylabel="rms(mean f - f_limit) / rms(f_limit)",
    )
    width_ax.set(
        title="Ensemble mean's distance to the limit",
        xlabel="width n",
        ylabel="||mean f - f_limit|| / ||f_limit||",
        xscale="log",
        yscale="log",
    )
    for ax in figure.axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
    return save_figure(figure, path)
