"""`plot_curves`: one row per loss, eval loss and eval accuracy against the SGD step, the NFD
limit's curve with its 95% band beside each width's ensemble mean with its own."""

import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from ..common import (
    LIMIT_STYLE,
    draw_band,
    legend_below,
    log_if_positive,
    new_figure,
    palette,
    save_figure,
)

LOSS_LABELS = {"cross_entropy": "cross-entropy", "mse": "one-hot MSE"}


def plot_curves(data: dict[str, Any], path: str | Path):
    losses = list(data["losses"])
    figure = new_figure(len(losses), 2, width=12.0, height=4.0 * len(losses) + 1.0)
    colours = palette(len(data["widths"]))
    steps = np.arange(data["steps"] + 1)
    for row, loss in enumerate(losses):
        loss_ax, acc_ax = figure.axes[2 * row], figure.axes[2 * row + 1]
        curves = data["losses"][loss]
        limit = curves["limit"]
        label = _limit_label(limit)
        loss_ax.plot(steps, limit["loss"], **LIMIT_STYLE, label=label)
        draw_band(loss_ax, steps, limit["loss"], limit["loss_half95"], color="black")
        acc_ax.plot(steps, limit["accuracy"], **LIMIT_STYLE, label=label)
        if limit["accuracy_low"] is not None:
            acc_ax.fill_between(steps, limit["accuracy_low"], limit["accuracy_high"],
                                color="black", alpha=0.2)  # fmt: skip
        for cell, colour in zip(curves["finite"], colours):
            name = f"n = {cell['width']} ({cell['members'] - cell['diverged']} seeds)"
            for ax, key in ((loss_ax, "loss"), (acc_ax, "accuracy")):
                if cell[key] is None:
                    continue
                ax.plot(steps, cell[key], color=colour, linewidth=1.3, label=name)
                draw_band(ax, steps, cell[key], cell[f"{key}_half95"], color=colour)
        what = LOSS_LABELS.get(loss, loss)
        loss_ax.set(title=f"eval loss, trained with {what}", xlabel="SGD step k",
                    ylabel=f"eval loss ({what})")  # fmt: skip
        acc_ax.set(title=f"eval accuracy, trained with {what}", xlabel="SGD step k",
                   ylabel="eval accuracy", ylim=(0.0, 1.0))  # fmt: skip
        log_if_positive(loss_ax)
        for ax in (loss_ax, acc_ax):
            ax.grid(alpha=0.3, which="both")
    title = (
        f"{data['data']}\nfinite networks of depth L = {data['depth']}, {data['backward']} "
        f"backward, batch {data['batch']}, {data['eval_size']} eval inputs; bands: 95%"
    )
    lines = [textwrap.fill(line, 120) for line in title.split("\n")]
    figure.suptitle("\n".join(lines), fontsize="medium")
    legend_below(figure, figure.axes[1], columns=len(data["widths"]) + 1)
    return save_figure(figure, path)


def _limit_label(limit: dict[str, Any]) -> str:
    grids = limit.get("grids") or []
    depth = f"M={','.join(str(m) for m in grids[::-1])} extrapolated" if len(grids) > 1 else (
        f"M={grids[0]}" if grids else "")  # fmt: skip
    sizes = [f"N={limit['particles']} x {limit['groups']}", depth]
    return f"NFD limit ({', '.join(s for s in sizes if s)})"
