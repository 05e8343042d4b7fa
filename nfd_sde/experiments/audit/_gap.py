"""Claim 3 of the audit: does the gap between real backprop and the NFD vanish with depth?

Measured on the limit itself (`nfd_sde.limit.coupling_gap`): at every depth L the n -> infinity
limit of the depth-L network (M = L depth steps) with standard backprop (two-sided field space)
and with decoupled backward weights (the NFD), on common noise, paired by particle group; then
the gap extrapolated linearly in 1/L to infinite depth, and its log-log slope in L. One-layer
blocks and two-layer blocks at each first-layer exponent c. Beside it, the reuse coupling's
share of the products per layer and the first-step closed forms of spec sections 3 and 5.
"""

from typing import Any, final

import jax
import numpy as np
from matplotlib.figure import Figure

from solvers import extrapolated_distance, fit_loglog

from ...limit import coupling_gap
from ...model import load_stream
from ...validation import first_step_change, two_layer_first_step_change
from ..common import new_figure, palette
from ._claims import AbstractClaim, AuditContext, interval_text, value_text
from ._verdicts import FAILS, HOLDS, INCONCLUSIVE, combine, size_axis, verdict


def _cases(sizes) -> list[tuple[str, float, tuple[int, ...]]]:
    cases = [("one_layer", 0.0, sizes.one_layer_depths)]
    if sizes.two_layer_depths:  # () at scales whose budget leaves two-layer blocks out
        cases += [("two_layer", c, sizes.two_layer_depths) for c in sizes.exponents]
    return cases


def _label(block: str, exponent: float) -> str:
    return "one-layer" if block == "one_layer" else f"two-layer, c = {exponent:g}"


def _measure_case(context: AuditContext, block, exponent, depths) -> dict[str, Any]:
    sizes = context.scale.gap
    config = context.config.replace(
        model={"block": block},
        training={"steps": sizes.steps, "first_layer_exponent": exponent},
        solver={
            "particles": sizes.particles,
            "groups": sizes.groups,
            "levels": 1,
            "driver": "scan",  # the same numbers as diffrax's, compiled in half the time
        },
    )
    stream = load_stream(config)
    cells, differences = [], []
    for depth in depths:
        case = config.replace(solver={"depth_steps": depth})
        out = coupling_gap(case, stream, key=jax.random.fold_in(context.key, depth))
        differences.append(out.pop("differences"))
        share = out["coupling"] or {}
        cells.append(
            {
                "depth": depth,
                "gap": out["gap"],
                "scale": out["scale"],
                "layer_share": {k: float(np.mean(v["layer_share"])) for k, v in share.items()},
                "accumulated": {k: float(v["accumulated"][0 if "backward" in k else -1])
                                for k, v in share.items()},
            }
        )  # fmt: skip
    return {
        "block": block,
        "exponent": exponent,
        "cells": cells,
        "infinite_depth": _infinite_depth(depths, differences, cells),
        "slope": _slope(cells),
    }


def _infinite_depth(depths, differences, cells) -> dict[str, Any] | None:
    """The paired differences extrapolated linearly in 1/L (weights from each mean's noise) to
    L -> infinity, as a debiased distance relative to the deepest limit's |f_NFD|: the gap of
    the infinite-depth limit, with its 95% interval. Depths whose solve diverged are left out;
    needs three depths."""
    valid = [(d, x) for d, x in zip(depths, differences) if x is not None]
    if len(valid) < 3:
        return None
    out, _ = extrapolated_distance(
        [d for d, _ in valid], [x for _, x in valid], scale=cells[-1]["scale"]
    )
    return {**out.__dict__, "depths": [d for d, _ in valid]}


def _slope(cells) -> dict[str, Any] | None:
    """Log-log slope of the resolved gaps against L, with its 95% interval."""
    points = [(c["depth"], c["gap"]) for c in cells if c["gap"] and c["gap"]["resolved"]]
    if len(points) < 2:
        return None
    depths = np.asarray([d for d, _ in points], float)
    values = np.asarray([g["debiased"] for _, g in points])
    errors = np.asarray([g["stderr"] for _, g in points])
    fit = fit_loglog(depths, values, stderrs=errors)
    return {"slope": fit.slope, "ci95": list(fit.ci95), "points": len(points)}


GAP_RULE = (
    "Per case (one-layer; two-layer at each c), the gap is extrapolated linearly in 1/L to "
    "infinite depth from every depth measured (at least three). Holds (the gap vanishes) if "
    "that extrapolated gap's 95% interval reaches 0 and the fitted log-log slope's interval "
    "lies below 0; fails if the extrapolated gap's interval excludes 0 (a gap remains at "
    "infinite depth); otherwise inconclusive at this scale. Claim: every case holds -> holds; "
    "any fails -> fails; else inconclusive."
)


def _case_verdict(run: dict[str, Any]) -> dict[str, str]:
    what = _label(run["block"], run["exponent"])
    limit, slope = run["infinite_depth"], run["slope"]
    if limit is None:
        return verdict(INCONCLUSIVE, f"{what}: fewer than three depths solved")
    where = (
        f"{what}: gap at L -> infinity {limit['debiased']:.3g} "
        f"[{limit['low']:.3g}, {limit['high']:.3g}]"
    )
    if slope is not None:
        low, high = slope["ci95"]
        where += f", slope L^{slope['slope']:.2f} [{low:.2f}, {high:.2f}]"
    if limit["resolved"]:
        return verdict(FAILS, f"{where}: a gap remains at infinite depth")
    if slope is not None and slope["ci95"][1] < 0:
        return verdict(HOLDS, f"{where}: the gap decays to within its error of 0")
    return verdict(INCONCLUSIVE, f"{where}: neither resolved nor decaying")


def first_step_gap(block: str, depth: int, exponent: float) -> float:
    """The relative standard-decoupled gap of the linear first-step problems (spec sections 3
    and 5) at depth L: |f_std - f_dec| / |f_dec|."""
    decoupled = first_step_change("decoupled", eta=1.0, depth=depth)
    if block == "one_layer":
        standard = first_step_change("standard", eta=1.0, depth=depth)
    else:
        standard = two_layer_first_step_change("standard", eta=1.0, depth=depth, exponent=exponent)
    return abs(standard - decoupled) / abs(decoupled)


@final
class GapClaim(AbstractClaim):
    name = "gap"
    scale_fields = ("gap",)
    title = "3. Standard backprop against NFD: does the gap vanish with depth?"
    statement = (
        "The NFD drops the coupling of forward and backward weights (the gradient-independence "
        "assumption, GIA). The claim: the reuse coupling accumulates to O(L^-2), so the gap "
        "between standard backprop and the decoupled system vanishes as depth grows and GIA "
        "becomes valid at infinite depth; for one-layer and for two-layer blocks."
    )
    rule = (
        "Measured on the n -> infinity limit itself: at each depth L the standard-backprop limit "
        "(two-sided field space) and the NFD on M = L depth steps, on common noise; the gap "
        "|E(f_standard - f_decoupled)| / |E f_decoupled| over every eval output and step, paired "
        "by particle group, debiased. " + GAP_RULE
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        sizes = context.scale.gap
        runs = [
            _measure_case(context, block, exponent, depths)
            for block, exponent, depths in _cases(sizes)
        ]
        return {"runs": runs, "particles": sizes.particles, "groups": sizes.groups,
                "steps": sizes.steps}  # fmt: skip

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        return combine([_case_verdict(run) for run in data["runs"]])

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, 2, width=12.0, height=4.6)
        left, right = figure.axes
        colours = palette(len(data["runs"]))
        all_depths = sorted({c["depth"] for run in data["runs"] for c in run["cells"]})
        for run, colour in zip(data["runs"], colours):
            depths = np.asarray([c["depth"] for c in run["cells"]], float)
            gaps = [c["gap"] or {} for c in run["cells"]]
            values = np.asarray([g.get("debiased", np.nan) for g in gaps], float)
            low = np.asarray([g.get("low", np.nan) for g in gaps], float)
            high = np.asarray([g.get("high", np.nan) for g in gaps], float)
            label = _label(run["block"], run["exponent"])
            left.errorbar(depths, values, yerr=[values - low, high - values], fmt="o-",
                          color=colour, capsize=3, label=f"{label} (limit, 95%)")  # fmt: skip
            closed = [first_step_gap(run["block"], int(d), run["exponent"]) for d in depths]
            left.plot(depths, closed, ":", color=colour, label=f"{label}: linear first step")
            if np.isfinite(values[0]):
                left.plot(depths, values[0] * (depths / depths[0]) ** -2.0, "--", color=colour,
                          alpha=0.5, label="O(L^-2) (the claim)")  # fmt: skip
            key = "W.forward" if run["block"] == "one_layer" else "W2.forward"
            shares = [c["layer_share"].get(key, np.nan) for c in run["cells"]]
            accumulated = [c["accumulated"].get(key, np.nan) for c in run["cells"]]
            right.plot(depths, shares, "o-", color=colour, label=f"{label}: per-layer share")
            right.plot(depths, accumulated, "s--", color=colour,
                       label=f"{label}: accumulated")  # fmt: skip
        for ax in (left, right):
            ax.set_xscale("log")
            ax.set_yscale("log")
            size_axis(ax, all_depths)
            ax.grid(alpha=0.3, which="both")
            ax.set_xlabel("depth L (= M)")
        left.set(ylabel="|E(f_std - f_dec)| / |E f_dec|", title="gap of the n -> infinity limit")
        right.set(ylabel="RMS, relative to the products", title="reuse coupling, forward products")
        left.legend(fontsize="xx-small", loc="lower left")
        right.legend(fontsize="xx-small", loc="lower left")
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        rows = []
        for run in data["runs"]:
            what = _label(run["block"], run["exponent"])
            for cell in run["cells"]:
                gap = cell["gap"] or {}
                rows.append([f"{what}: gap, L = {cell['depth']}", value_text(gap.get("debiased")),
                             interval_text(gap.get("low"), gap.get("high")),
                             f"first step {first_step_gap(run['block'], cell['depth'], run['exponent']):.3g}"])  # fmt: skip
            limit = run["infinite_depth"] or {}
            rows.append([f"{what}: gap at L -> infinity", value_text(limit.get("debiased")),
                         interval_text(limit.get("low"), limit.get("high")), "0 (the claim)"])  # fmt: skip
            slope = run["slope"] or {}
            rows.append([f"{what}: gap slope in L", value_text(slope.get("slope")),
                         interval_text(*(slope.get("ci95") or (None, None))), "-2 (the claim)"])  # fmt: skip
        return rows
