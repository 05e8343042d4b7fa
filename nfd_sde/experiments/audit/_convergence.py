"""Claim 2 of the audit, read off `run_compare` (docs/compare.md): the decoupled finite
networks' bias in width and depth error in depth. The compare keeps its own per-run resume store
under the audit's work directory."""

from typing import Any, final

import numpy as np
from matplotlib.figure import Figure

from ...model import load_stream
from ..common import new_figure, palette
from ..compare import run_compare
from ._claims import AbstractClaim, AuditContext, interval_text, value_text
from ._verdicts import (
    RATE_RULE,
    combine,
    rate_verdict,
    size_axis,
)

BLOCKS = ("one_layer", "two_layer")


def _compare(context: AuditContext, block: str) -> dict[str, Any]:
    sizes = context.scale.compare
    config = context.config.replace(model={"block": block}, training={"steps": sizes.steps})
    data = run_compare(
        config,
        load_stream(config),
        widths=sizes.widths,
        depths=sizes.depths,
        seeds=sizes.seeds,
        particles=sizes.particles,
        limit_seeds=sizes.limit_seeds,
        key=context.key,
        progress=context.progress,
        out_dir=context.folder(f"compare_{block}", sizes),
    )
    summary, fits = data["summary"], data["fits"]
    return {
        "block": block,
        "grid": {k: data["grid"][k] for k in ("widths", "depths", "seeds", "modes")},
        "particles": sizes.particles,
        "limit_seeds": sizes.limit_seeds,
        "steps": sizes.steps,
        "bias": summary["bias"]["decoupled"],
        "depth": summary["depth"]["decoupled"],
        "gap_infinite_width": summary["gap_infinite_width"],
        "fits": {
            "bias": fits["headline"]["bias"],
            "depth": fits["headline"]["depth"],
            "gap": fits["gap_infinite_width_vs_depth"],
        },
        "notes": summary["notes"],
    }


def _resolved_points(ax, sizes, cells, *, color, marker, label) -> None:
    """Resolved cells as points with 95% intervals (no line through them); unresolved ones as
    open triangles at their upper bound X ("not resolved, below X")."""
    ok = [c is not None and c.get("resolved") for c in cells]
    x = np.asarray(sizes, float)
    values, errors = _points(cells), 1.96 * _points(cells, "stderr")
    ax.errorbar(np.where(ok, x, np.nan), np.where(ok, values, np.nan), yerr=np.nan_to_num(errors),
                fmt=marker, color=color, capsize=3, label=label)  # fmt: skip
    bounds = [(s, c["high"]) for s, c, r in zip(x, cells, ok) if c is not None and not r]
    if bounds:
        ax.plot(*zip(*bounds), linestyle="none", marker="v", mfc="none", color=color,
                label=f"{label}: not resolved, below")  # fmt: skip


def _points(cells, key="debiased"):
    values = [np.nan if c is None else c.get(key, np.nan) for c in cells]
    return np.asarray([np.nan if v is None else v for v in values], float)


@final
class ConvergenceClaim(AbstractClaim):
    name = "convergence"
    scale_fields = ("compare",)
    title = "2. Finite decoupled networks converge to NFD: O(1/n) in width, O(1/L) in depth"
    statement = (
        "During training, the mean of finite decoupled depth-muP ResNets approaches the NFD limit "
        "at O(1/n) in width (the ensemble mean's bias) and O(1/L) in depth (the depth error)."
    )
    rule = (
        "`nfd-sde compare`: seed ensembles (antithetic pairs, common noise across depths) against "
        "the limit at M = L; the bias is fitted against n at the largest L and the depth error "
        "(successive depths) against L at the largest n. Each rate: " + RATE_RULE + ". The claim "
        "holds if both rates hold, fails if either fails, else inconclusive."
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        return _compare(context, "one_layer")

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        return combine(
            [
                rate_verdict(data["fits"]["bias"], -1.0, "bias vs n"),
                rate_verdict(data["fits"]["depth"], -1.0, "depth error vs L"),
            ]
        )

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, 2, height=4.2)
        widths, depths = data["grid"]["widths"], data["grid"]["depths"]
        bias_ax, depth_ax = figure.axes
        for j, (depth, colour) in enumerate(zip(depths, palette(len(depths)))):
            cells = [row[j] for row in data["bias"]]
            _resolved_points(bias_ax, widths, cells, color=colour, marker="o", label=f"L = {depth}")
        for i, (width, colour) in enumerate(zip(widths, palette(len(widths)))):
            cells = data["depth"][i]
            _resolved_points(
                depth_ax, depths, cells, color=colour, marker="s", label=f"n = {width}"
            )
        for ax, name in ((bias_ax, "bias"), (depth_ax, "depth")):
            fit = data["fits"].get(name)
            if fit and fit.get("slope") is not None:
                x = np.geomspace(min(fit["sizes"]), max(fit["sizes"]), 20)
                ax.plot(x, fit["prefactor"] * x ** fit["slope"], color="tab:blue",
                        label=f"fit {fit['slope']:.2f} [{fit['ci95'][0]:.2f}, {fit['ci95'][1]:.2f}]")  # fmt: skip
        for ax, sizes, what in ((bias_ax, widths, "n"), (depth_ax, depths, "L")):
            x = np.asarray(sizes, float)
            firsts = [np.asarray(line.get_ydata(), float)[0] for line in ax.get_lines()]
            ref = np.nanmax(firsts) if np.any(np.isfinite(firsts)) else 1.0
            ax.plot(x, ref * x[0] / x, "k:", label=f"expected 1/{what}")
            ax.set(yscale="log", xlabel=what)
            size_axis(ax, sizes)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize="x-small")
        bias_ax.set(title="decoupled bias |E f_n - f_NFD| / |f_NFD| (95%)", ylabel="relative")
        depth_ax.set(title="decoupled depth error |E f_L - E f_2L| (95%)", ylabel="relative")
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        rows = []
        for name, what in (("bias", "bias rate in n"), ("depth", "depth-error rate in L")):
            fit = data["fits"][name] or {}
            ci = fit.get("ci95") or (None, None)
            rows.append([what, value_text(fit.get("slope")), interval_text(*ci), "-1"])
        return rows
