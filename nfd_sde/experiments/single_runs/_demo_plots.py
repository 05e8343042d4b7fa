"""The demo's figure: eval losses against the limit's, and the ensemble mean's distance to the
limit against width with its noise floor, its fitted rate and the widths it did not resolve."""

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..common import LIMIT_STYLE, draw_band, new_figure, palette, save_figure
from ..compare import expected_line, tends_to_the_limit

COLOURS = {"decoupled": "tab:blue", "standard": "tab:red"}


def plot_demo(summary: dict[str, Any], path: str | Path) -> Figure:
    """Two panels. Left: eval loss against the SGD step, the limit (black, 95% band) and the
    decoupled ensembles' means (one colour per width, 95% bands). Right: the ensemble mean's
    debiased distance to the limit against width, log-log, with 95% intervals; a width whose
    distance is not resolved is an upper limit (a bar at X with an arrow down, "below X"); the
    noise floor (the seeds' and the limit's Monte Carlo noise) in grey; the fitted rate with its
    interval and the expected n^-1 through the points."""
    figure = new_figure(1, 2, width=14.0, height=5.6)
    loss_ax, width_ax = figure.axes
    _losses(loss_ax, summary)
    _distances(width_ax, summary)
    return save_figure(figure, path)


def _losses(ax, summary: dict[str, Any]) -> None:
    limit = np.asarray(summary["limit_loss_eval"], dtype=float)
    steps = np.arange(len(limit))
    ax.plot(steps, limit, label="NFD limit (95% band)", **LIMIT_STYLE)
    limit_se = summary["limit_loss_eval_stderr"]
    if limit_se is not None:
        draw_band(ax, steps, limit, 1.96 * np.asarray(limit_se, float), color="black")
    rows = [r for r in summary["rows"] if tends_to_the_limit(r["mode"])]
    for row, colour in zip(rows, palette(len(rows))):
        mean = np.asarray(row["loss_eval"], dtype=float)
        ax.plot(steps, mean, "o-", color=colour, markersize=3, label=f"n = {row['width']}")
        se = np.asarray(row["loss_eval_stderr"], dtype=float)
        draw_band(ax, steps, mean, 1.96 * se, color=colour)
    ax.set(
        title="Eval loss: decoupled ensembles vs the NFD limit",
        xlabel="SGD step k",
        ylabel="mean eval loss",
    )
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper right")


def _distances(ax, summary: dict[str, Any]) -> None:
    rows = [r for r in summary["rows"] if not r["diverged"]]
    widths = sorted({r["width"] for r in summary["rows"]})
    for mode in ("decoupled", "standard"):
        chosen = [r for r in rows if r["mode"] == mode]
        colour = COLOURS[mode]
        resolved = [r for r in chosen if r["resolved"]]
        nfd = tends_to_the_limit(mode)
        label = (
            "decoupled (the NFD's network), 95% interval"
            if nfd
            else "standard backprop (tends to the gap)"
        )
        marker = "o" if nfd else "^"
        shift = 1.0 if nfd else 1.06  # side by side, not on top of each other
        fill = colour if nfd else "none"
        if chosen:
            ax.plot([], [], marker=marker, mfc=fill, color=colour, linestyle="none", label=label)
        if resolved:
            n = shift * np.array([r["width"] for r in resolved], dtype=float)
            value = np.array([r["debiased"] for r in resolved])
            errors = [value - np.array([r["low"] for r in resolved]),
                      np.array([r["high"] for r in resolved]) - value]  # fmt: skip
            ax.errorbar(n, value, yerr=errors, color=colour, capsize=4, linestyle="none",
                        marker=marker, mfc=fill)  # fmt: skip
        for r in chosen:
            if not r["resolved"]:
                _upper_limit(ax, shift * r["width"], r["high"], colour)
    decoupled = [r for r in rows if tends_to_the_limit(r["mode"])]
    if any(not r["resolved"] for r in rows):
        ax.plot([], [], linestyle="none", marker="$\\downarrow$", color="grey", markersize=10,
                label="not resolved: below the bar")  # fmt: skip
    if decoupled:
        n = [r["width"] for r in decoupled]
        ax.plot(n, [r["noise_floor"] for r in decoupled], color="grey", linestyle="--",
                label="noise floor (seeds + limit)")  # fmt: skip
    rate = summary["rate"]
    if rate is not None and rate.get("slope") is not None:
        x = np.geomspace(min(rate["sizes"]), max(rate["sizes"]), 20)
        interval = "" if rate["ci95"] is None else " [{:.2f}, {:.2f}]".format(*rate["ci95"])
        ax.plot(x, rate["prefactor"] * x ** rate["slope"], color=COLOURS["decoupled"],
                label=f"fit n^{rate['slope']:.2f}{interval}")  # fmt: skip
        line = expected_line(rate)
        if line is not None:
            ax.plot(*line, color="black", linestyle=":", label="expected n^-1")
    caveat = "" if not summary["caveats"] else "\n" + "; ".join(summary["caveats"])
    ax.set(
        title=f"Ensemble mean's distance to the limit, L = {summary['depth']}{caveat}",
        xlabel="width n",
        ylabel="|mean f - f_limit| / |f_limit| (debiased)",
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [str(w) for w in widths])
    ax.set_xlim(min(widths) / 1.3, max(widths) * 1.6)  # room for the "below X" labels
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="best")


def _upper_limit(ax, width: float, high: float, colour) -> None:
    """`below high`: a bar at `high` and an arrow down to half of it."""
    ax.plot([width], [high], marker="_", markersize=16, markeredgewidth=2, color=colour)
    ax.plot([width], [high / 2], linestyle="none", alpha=0.0)  # the arrow's end within the axes
    ax.annotate("", xy=(width, high / 2), xytext=(width, high),
                arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})  # fmt: skip
    ax.annotate(f"below {high:.2g}", xy=(width, high), xytext=(6, 0),
                textcoords="offset points", fontsize="small", color=colour, va="center")  # fmt: skip
