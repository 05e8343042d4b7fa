"""Figures of results: loss curves, and finite networks overlaid on the NFD limit.

Figures are drawn on the Agg canvas directly (no pyplot, no global backend state), saved at
150 dpi, and returned so that callers can inspect or restyle them.
"""

import io
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...model import Result, interval95
from ._records import write_text

# finite networks' styles by backward mode: standard backprop dashed, with triangles
MARKERS = {"standard": "^", "decoupled": "s"}
LINESTYLES = {"standard": "--", "decoupled": "-"}

DPI = 150
LIMIT_STYLE = dict(color="black", linewidth=3.0, zorder=3)


def plot_loss_curves(results: Mapping[str, Result], path: str | Path) -> Figure:
    """Train loss (minibatch of step k, before its update) and eval loss (after k steps) against
    the SGD step, one line per result; log y when every finite value is positive. A diverged
    run's line stops at its last finite value, and its label names the first bad step."""
    figure = new_figure(1, 2, width=10.0)
    train_ax, eval_ax = figure.axes
    colours = palette(len(results))
    for (name, result), colour in zip(results.items(), colours):
        name = label_with_status(name, result)
        for ax, field in ((train_ax, "loss_train"), (eval_ax, "loss_eval")):
            values = np.asarray(getattr(result, field))
            steps = np.arange(len(values))
            ax.plot(steps, values, "o-", color=colour, label=name)
            draw_band(ax, steps, values, interval95(result, field), color=colour)
    train_ax.set_title("Training loss\n(minibatch of step k, before its update)")
    eval_ax.set_title("Eval loss\nafter k SGD steps")
    for ax in (train_ax, eval_ax):
        ax.set_xlabel("SGD step k")
        ax.set_ylabel("mean loss")
        log_if_positive(ax)
        integer_ticks(ax)
        ax.grid(alpha=0.3)
    legend_below(figure, eval_ax)
    return save_figure(figure, path)


def plot_overlay(limit: Result, finite: Mapping[str, Result], path: str | Path) -> Figure:
    """Finite networks against the NFD limit; one colour per width, dashed for standard backprop.

    Left: eval loss against the SGD step (limit: thick black line). Middle: eval predictions
    (output 0) after the last step against the eval input, inputs ordered by the limit's
    prediction; the limit at step 0 is shown dotted for scale. Right: RMS distance between each
    network's eval predictions and the limit's, against the step.
    """
    figure = new_figure(1, 3, width=15.0)
    loss_ax, pred_ax, gap_ax = figure.axes
    f_limit = np.asarray(limit.f_eval)[..., 0]  # (steps + 1, eval)
    steps = np.arange(f_limit.shape[0])
    order = np.argsort(f_limit[-1])
    inputs = np.arange(f_limit.shape[1])

    limit_label = label_with_status(_limit_label(limit), limit)
    loss_ax.plot(steps, np.asarray(limit.loss_eval), label=limit_label, **LIMIT_STYLE)
    draw_band(loss_ax, steps, limit.loss_eval, interval95(limit, "loss_eval"), color="black")
    pred_ax.plot(inputs, f_limit[-1, order], "o-", label=limit_label, **LIMIT_STYLE)
    band = interval95(limit, "f_eval")
    if band is not None:
        draw_band(pred_ax, inputs, f_limit[-1, order], band[-1, order, 0], color="black")
    pred_ax.plot(inputs, f_limit[0, order], ":", color="grey", label="limit, step 0")

    for (name, result), colour in zip(finite.items(), _colours_by_width(finite.values())):
        f = np.asarray(result.f_eval)[..., 0]
        if f.shape != f_limit.shape:
            raise ValueError(
                f"{name}: eval predictions of shape {f.shape} cannot be overlaid on the limit's "
                f"{f_limit.shape}; run both on the same data stream"
            )
        name = label_with_status(name, result)
        style = dict(color=colour, linestyle=_linestyle(result), label=name)
        loss_ax.plot(steps, np.asarray(result.loss_eval), marker="o", markersize=3, **style)
        marker = MARKERS.get(result.producer.get("backward"), "s")
        pred_ax.plot(inputs, f[-1, order], marker, color=colour, alpha=0.85, label=name)
        gap = np.sqrt(np.mean((f - f_limit) ** 2, axis=-1))
        gap_ax.plot(steps, gap, marker="o", markersize=3, **style)

    loss_ax.set(
        title="Eval loss: finite networks vs NFD limit",
        xlabel="SGD step k",
        ylabel="mean eval loss",
    )
    pred_ax.set(
        title=f"Eval predictions after {steps[-1]} steps",
        xlabel="eval input (ordered by the limit's prediction)",
        ylabel="f(x), output 0",
    )
    gap_ax.set(
        title="Distance to the limit",
        xlabel="SGD step k",
        ylabel="RMS over eval inputs of f_finite - f_limit",
    )
    log_if_positive(loss_ax)
    log_if_positive(gap_ax)
    for ax in figure.axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for ax in figure.axes:
        integer_ticks(ax)
    return save_figure(figure, path)


def legend_below(figure: Figure, ax: Axes, *, columns: int = 2) -> None:
    """One legend for the whole figure (the entries of `ax`), below the panels: long labels
    (a limit's sizes, a run's description) then never cover a curve or a neighbour's labels."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    figure.set_layout_engine("constrained")
    figure.legend(handles, labels, loc="outside lower center", fontsize="small",
                  ncols=min(columns, len(labels)))  # fmt: skip


def draw_band(ax: Axes, x, y, half, *, color, alpha: float = 0.2) -> None:
    """Shade y +- half (a 95% band) where `half` is given and finite."""
    if half is None:
        return
    y, half = np.asarray(y, dtype=float), np.asarray(half, dtype=float)
    ok = np.isfinite(y) & np.isfinite(half)
    if ok.any():
        ax.fill_between(np.asarray(x)[ok], (y - half)[ok], (y + half)[ok], color=color, alpha=alpha)


def new_figure(
    nrows: int, ncols: int, *, width: float | None = None, height: float | None = None
) -> Figure:
    """A figure on the Agg canvas (no pyplot state) with an nrows x ncols grid of axes, read
    back as the flat list `figure.axes`; default size 6 x 4.2 inches per panel."""
    figure = Figure(figsize=(width or 6.0 * ncols, height or 4.2 * nrows), layout="tight")
    FigureCanvasAgg(figure)
    figure.subplots(nrows, ncols, squeeze=False)
    return figure


def save_figure(figure: Figure, path: str | Path) -> Figure:
    """Save `figure` at `path` (format from its suffix, PNG without one) through the one atomic
    writer: drawn in memory first, so a failed write leaves no partial image."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=DPI)
    write_text(path, buffer.getvalue())
    return figure


def palette(n: int) -> list[tuple[float, ...]]:
    """n colours from the viridis map (its light end left out, for white backgrounds)."""
    return [tuple(c) for c in colormaps["viridis"](np.linspace(0.0, 0.85, max(n, 1)))][:n]


def _colours_by_width(results: Iterable[Result]) -> list[tuple[float, ...]]:
    """One colour per width (narrow: dark, wide: light); results without a width get their own."""
    keys = [
        (0, result.producer["width"]) if "width" in result.producer else (1, i)
        for i, result in enumerate(results)
    ]
    unique = sorted(set(keys))
    by_key = dict(zip(unique, palette(len(unique))))
    return [by_key[k] for k in keys]


def _linestyle(result: Result) -> str:
    return LINESTYLES.get(result.producer.get("backward"), "-")


def _limit_label(result: Result) -> str:
    producer = result.producer
    sizes = [f"N={producer[k]}" for k in ("particles",) if k in producer]
    if producer.get("groups", 1) > 1:
        sizes[-1:] = [f"{sizes[-1]} x {producer['groups']}"] if sizes else []
    grids = producer.get("grids")
    if grids and len(grids) > 1:
        sizes.append(f"M={','.join(str(m) for m in grids[::-1])} extrapolated")
    elif "depth_steps" in producer:
        sizes.append(f"M={producer['depth_steps']}")
    band = " with 95% band" if interval95(result, "f_eval") is not None else ""
    return "NFD limit" + (f" ({', '.join(sizes)})" if sizes else "") + band


def label_with_status(name: str, result: Result) -> str:
    """`name`, with the first bad step of a diverged result."""
    status = result.status
    return f"{name} (diverged at step {status['first_bad_step']})" if status["diverged"] else name


def log_if_positive(ax: Axes) -> None:
    """Log y when the axes' finite values are all positive (non-finite ones are gaps)."""
    values = np.concatenate([np.asarray(line.get_ydata(), float) for line in ax.get_lines()])
    values = values[np.isfinite(values)]
    if values.size and np.all(values > 0):
        ax.set_yscale("log")


def integer_ticks(ax: Axes) -> None:
    ax.xaxis.get_major_locator().set_params(integer=True)
