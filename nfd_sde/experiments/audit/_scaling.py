"""Claim 7 of the audit: the final loss of finite networks against width and depth, on real
data, approaching the NFD limit's loss with diminishing returns. Every (width, depth) ensemble
is kept under the audit's work directory as it finishes, so a killed claim resumes."""

import math
from typing import Any, final

import jax
import numpy as np
from matplotlib.figure import Figure

from ...finite import train_ensemble
from ...limit import solve_limit
from ...model import interval95, load_stream
from ..common import new_figure, palette, read_json, write_json
from ._claims import AbstractClaim, AuditContext, interval_text, value_text
from ._verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    linear_fit,
    short_origin,
    size_axis,
    verdict,
)

# One-hot MSE, the loss the standard run's numbers were measured with (docs/audit.md).
LOSS = "mse"
RESOLUTION = 0.25  # the test must resolve the asymptote to 25% of what the NFD learns


@final
class ScalingClaim(AbstractClaim):
    name = "scaling"
    scale_fields = ("scaling",)
    title = "7. Scaling: loss against depth and width approaches the NFD asymptote"
    statement = (
        "Growing width and depth gives diminishing returns: the final loss of finite networks "
        "approaches that of the NFD limit (infinite width and depth) like loss_NFD + a/n + b/L, "
        "on real data."
    )
    rule = (
        "Seed ensembles of decoupled networks over widths x depths trained for the scale's steps "
        "(100 at the standard scale), one-hot MSE (final eval loss, mean and "
        "standard error over seeds; diverged members left out and counted) and the NFD limit at "
        "infinite depth (three nested grids, extrapolated; 95% band from its Monte Carlo and "
        "discretisation errors). Weighted least squares loss(n, L) = loss_inf + a/n + b/L, "
        "intervals scaled by the Birge ratio. holds if the 95% interval of loss_inf - loss_NFD "
        f"contains 0 and its half-width is under {RESOLUTION:.0%} of the NFD loss's decrease "
        "over training (so the test could tell a network that learned nothing from the limit); "
        "fails if it excludes 0; otherwise inconclusive."
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        sizes = context.scale.scaling
        config = context.data_config.replace(
            network={"backward": "decoupled"},
            training={"steps": sizes.steps, "batch": sizes.batch, "loss": LOSS},
            data={"eval_size": sizes.eval_size},
        )
        stream = load_stream(config)
        folder = context.folder(f"scaling_{LOSS}", sizes)
        cells = []
        for width in sizes.widths:
            for depth in sizes.depths:
                path = folder / f"n{width}_L{depth}_s{sizes.seeds}.json"
                if path.is_file():
                    cells.append(read_json(path))
                    continue
                cell = _ensemble(config, stream, width, depth, sizes.seeds, context.key)
                write_json(path, cell)
                cells.append(cell)
        limit_config = config.replace(solver={"particles": sizes.particles, "levels": 3,
                                              "depth_steps": sizes.depth_steps})  # fmt: skip
        path = folder / f"limit_N{sizes.particles}_M{sizes.depth_steps}.json"
        if path.is_file():
            limit = read_json(path)
        else:
            result = solve_limit(limit_config, stream, key=context.key)
            band = interval95(result, "loss_eval")
            limit = {
                "loss_eval": np.asarray(result.loss_eval, float),
                "half95": None if band is None else np.asarray(band, float),
                "diverged": result.status["diverged"],
            }
            write_json(path, limit)
        return {"data": stream.origin, "widths": list(sizes.widths), "depths": list(sizes.depths),
                "seeds": sizes.seeds, "steps": sizes.steps, "particles": sizes.particles,
                "depth_steps": sizes.depth_steps, "cells": cells, "limit": limit,
                "fit": _fit(cells)}  # fmt: skip

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        limit, fit = data["limit"], data["fit"]
        if limit["diverged"] or limit["half95"] is None:
            return verdict(INCONCLUSIVE, "the limit diverged or has no error bars")
        if fit is None:
            return verdict(INCONCLUSIVE, "fewer than four finite (n, L) cells for the fit")
        nfd, nfd_half = limit["loss_eval"][-1], limit["half95"][-1]
        diff = fit["intercept"] - nfd
        half = 1.96 * math.hypot(fit["intercept_stderr"], nfd_half / 1.96)
        text = (f"loss_inf {fit['intercept']:.4g} vs NFD {nfd:.4g} +- {nfd_half:.2g}: difference "
                f"{diff:.3g} [{diff - half:.3g}, {diff + half:.3g}]")  # fmt: skip
        if abs(diff) > half:
            return verdict(FAILS, f"{text}, excludes 0")
        learned = abs(limit["loss_eval"][0] - nfd)
        if half > RESOLUTION * learned:
            return verdict(
                INCONCLUSIVE,
                f"{text}, contains 0 but is wider than {RESOLUTION:.0%} of the NFD loss's decrease "
                f"in training ({learned:.3g})",
            )
        return verdict(HOLDS, f"{text}, contains 0")

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, 3, height=4.2)
        width_ax, depth_ax, curve_ax = figure.axes
        _draw_curves(curve_ax, data)
        nfd, half = data["limit"]["loss_eval"][-1], (data["limit"]["half95"] or [math.nan])[-1]
        cells = {(c["width"], c["depth"]): c for c in data["cells"]}
        for ax, outer, inner, what in ((width_ax, data["depths"], data["widths"], "n"),
                                       (depth_ax, data["widths"], data["depths"], "L")):  # fmt: skip
            for o, colour in zip(outer, palette(len(outer))):
                row = [cells[(i, o) if what == "n" else (o, i)] for i in inner]
                mean = [c["mean"] for c in row]
                err = [1.96 * (c["stderr"] or 0.0) for c in row]
                other = "L" if what == "n" else "n"
                ax.errorbar(inner, [np.nan if m is None else m for m in mean], yerr=err, fmt="o-",
                            color=colour, capsize=3, label=f"{other} = {o}")  # fmt: skip
            ax.axhline(nfd, color="black", linewidth=2, label="NFD limit (infinite depth)")
            ax.axhspan(nfd - half, nfd + half, color="grey", alpha=0.3, label="its 95% band")
            size_axis(ax, inner)
            ax.set(xlabel=what, ylabel="final eval loss (one-hot MSE)",
                   title=f"loss against {'width' if what == 'n' else 'depth'}, {short_origin(data['data'])}")  # fmt: skip
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize="x-small")
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        fit, limit = data["fit"] or {}, data["limit"]
        nfd, half = limit["loss_eval"][-1], (limit["half95"] or [None])[-1]
        rows = [["NFD loss (limit, infinite depth)", value_text(nfd),
                 interval_text(nfd - half, nfd + half) if half is not None else "-", "-"]]  # fmt: skip
        for name, label, expected in (("intercept", "loss_inf (fit)", "= NFD loss"),
                                      ("a", "a (coefficient of 1/n)", "-"),
                                      ("b", "b (coefficient of 1/L)", "-")):  # fmt: skip
            rows.append([label, value_text(fit.get(name)),
                         interval_text(*(fit.get(f"{name}_ci95") or (None, None))), expected])  # fmt: skip
        return rows


def _ensemble(config, stream, width: int, depth: int, seeds: int, key) -> dict[str, Any]:
    sized = config.replace(network={"width": width, "depth": depth})
    keys = jax.random.split(jax.random.fold_in(key, 1000 * width + depth), seeds)
    result = train_ensemble(sized, stream, keys=keys)
    losses = np.asarray(result.loss_eval, float)
    final = losses[:, -1]
    ok = np.all(np.isfinite(losses), axis=1)
    mean = float(final[ok].mean()) if ok.any() else None
    stderr = float(final[ok].std(ddof=1) / math.sqrt(ok.sum())) if ok.sum() > 1 else None
    curve = losses[ok].mean(axis=0) if ok.any() else None
    return {"width": width, "depth": depth, "mean": mean, "stderr": stderr, "curve": curve,
            "members": int(len(final)), "diverged": int((~ok).sum())}  # fmt: skip


def _draw_curves(ax, data: dict[str, Any]) -> None:
    """The limit's eval loss at every step with its 95% band, and the widest networks' mean
    curve at each depth (cells of older records keep no curve and are left out)."""
    limit = data["limit"]
    steps = np.arange(len(limit["loss_eval"]))
    ax.plot(steps, limit["loss_eval"], color="black", linewidth=2, label="NFD limit")
    if limit["half95"] is not None:
        low = np.asarray(limit["loss_eval"]) - np.asarray(limit["half95"])
        high = np.asarray(limit["loss_eval"]) + np.asarray(limit["half95"])
        ax.fill_between(steps, low, high, color="grey", alpha=0.3, label="its 95% band")
    widest = max(data["widths"])
    cells = [c for c in data["cells"] if c["width"] == widest and c.get("curve") is not None]
    for cell, colour in zip(cells, palette(len(cells))):
        ax.plot(steps, cell["curve"], color=colour, label=f"n = {widest}, L = {cell['depth']}")
    ax.set(xlabel="SGD step k", ylabel="eval loss (one-hot MSE)",
           title=f"training curves ({data['steps']} steps)")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small")


def _fit(cells) -> dict[str, Any] | None:
    used = [c for c in cells if c["mean"] is not None and c["stderr"]]
    if len(used) < 4:
        return None
    design = np.array([[1.0, 1.0 / c["width"], 1.0 / c["depth"]] for c in used])
    y = np.array([c["mean"] for c in used])
    weights = 1.0 / np.square([c["stderr"] for c in used])
    return linear_fit(design, y, weights, names=("intercept", "a", "b"))
