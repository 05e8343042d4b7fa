"""Claims 2 and 3 of the audit, both read off `run_compare` (docs/compare.md): the decoupled
finite networks' bias in width and depth error in depth (claim 2), and the standard-decoupled
gap at infinite width against depth, for one-layer and two-layer blocks (claim 3). Each compare
keeps its own per-run resume store under the audit's work directory; claim 3 reruns claim 2's
one-layer compare with the same arguments, which only reads that store back."""

from typing import Any, final

import numpy as np
from matplotlib.figure import Figure

from ..model import load_stream
from ._audit_claims import AbstractClaim, AuditContext, interval_text, value_text
from ._audit_verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    RATE_RULE,
    combine,
    rate_verdict,
    size_axis,
    verdict,
)
from ._compare import run_compare
from ._plots import new_figure, palette

BLOCKS = ("one_layer", "two_layer")


def _compare(context: AuditContext, block: str) -> dict[str, Any]:
    sizes = context.scale.compare if block == "one_layer" else context.scale.two_layer_compare
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


@final
class GapClaim(AbstractClaim):
    name = "gap"
    scale_fields = ("compare", "two_layer_compare")
    title = "3. Standard backprop against NFD: does the gap vanish with depth?"
    statement = (
        "The NFD drops the coupling of forward and backward weights (the gradient-independence "
        "assumption, GIA). The claim: the gap between standard backprop and the decoupled system "
        "vanishes as depth grows, so GIA becomes valid at infinite depth; for one-layer and for "
        "two-layer blocks."
    )
    rule = (
        "The gap |E(f_standard - f_decoupled)| (paired by seed) is extrapolated linearly in 1/n to "
        "infinite width at every depth L, with its 95% interval, and fitted against L (log-log, "
        "resolved points only). Per block type: holds (the gap vanishes) if the fitted slope's "
        "95% interval lies below 0; fails if its lower end is >= 0 (no decay); otherwise, or "
        "with fewer than two resolved depths, inconclusive. Claim: both block types hold -> "
        "holds; either fails -> fails; else inconclusive."
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        runs = [_compare(context, "one_layer")]
        if context.scale.two_layer_compare is None:
            runs.append({"block": "two_layer", "skipped": "not run at this scale (time budget)"})
        else:
            runs.append(_compare(context, "two_layer"))
        return {"runs": runs}

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        return combine([_gap_verdict(run) for run in data["runs"]])

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, 1, width=6.5, height=4.2)
        ax = figure.axes[0]
        for run, colour in zip(data["runs"], palette(2)):
            if "skipped" in run:
                continue
            cells = run["gap_infinite_width"]
            values = _points(cells)
            low, high = _points(cells, "low"), _points(cells, "high")
            ax.errorbar(run["grid"]["depths"], values, yerr=[values - low, high - values],
                        fmt="o-", color=colour, capsize=3,
                        label=f"{run['block']}, n -> infinity (95%)")  # fmt: skip
        depths = sorted({d for run in data["runs"] if "grid" in run for d in run["grid"]["depths"]})
        size_axis(ax, depths)
        ax.set(xlabel="depth L", ylabel="|E(f_std - f_dec)| / |f_NFD|",
               title="standard-decoupled gap at infinite width")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        rows = []
        for run in data["runs"]:
            if "skipped" in run:
                rows.append([f"{run['block']}: gap", "-", "-", run["skipped"]])
                continue
            for depth, cell in zip(run["grid"]["depths"], run["gap_infinite_width"]):
                cell = cell or {}
                rows.append([f"{run['block']}: gap at n = inf, L = {depth}",
                             value_text(cell.get("debiased")),
                             interval_text(cell.get("low"), cell.get("high")), "-> 0 as L grows"])  # fmt: skip
            fit = run["fits"]["gap"] or {}
            rows.append([f"{run['block']}: gap slope in L", value_text(fit.get("slope")),
                         interval_text(*(fit.get("ci95") or (None, None))), "< 0"])  # fmt: skip
        return rows


def _gap_verdict(run: dict[str, Any]) -> dict[str, str]:
    block = run["block"]
    if "skipped" in run:
        return verdict(INCONCLUSIVE, f"{block}: {run['skipped']}")
    fit = run["fits"]["gap"]
    if not fit or fit.get("ci95") is None:
        return verdict(INCONCLUSIVE, f"{block}: the gap is resolved at fewer than two depths")
    low, high = fit["ci95"]
    where = f"{block}: gap ~ L^{fit['slope']:.3f} [{low:.3f}, {high:.3f}]"
    if high < 0:
        return verdict(HOLDS, f"{where}, decays")
    if low >= 0:
        return verdict(FAILS, f"{where}, does not decay")
    return verdict(INCONCLUSIVE, f"{where}, contains 0")
