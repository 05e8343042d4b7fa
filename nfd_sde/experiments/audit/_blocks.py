"""Claims 4 and 6 of the audit: the first-layer collapse of two-layer blocks in finite networks
and in the limit (`run_collapse_limit`), and pre- against post-activation feature norms
along depth (`run_norms`), both on the synthetic teacher."""

import math
from typing import Any, final

import jax
import numpy as np
from matplotlib.figure import Figure

from solvers import fit_loglog

from ...model import load_stream
from ..common import new_figure, palette
from ..two_layer import run_collapse_limit, run_norms
from ._claims import AbstractClaim, AuditContext, interval_text, value_text
from ._verdicts import (
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    RATE_RULE,
    combine,
    rate_verdict,
    size_axis,
    verdict,
)


def _fit(sizes, values, stderrs=None) -> dict[str, Any] | None:
    values = np.asarray(values, float)
    if len(values) < 2 or not np.all(np.isfinite(values) & (values > 0)):
        return None
    fit = fit_loglog(sizes, values, stderrs=stderrs)
    return {
        "slope": fit.slope,
        "stderr": fit.slope_stderr,
        "ci95": list(fit.ci95),
        "points": len(values),
    }


@final
class CollapseClaim(AbstractClaim):
    name = "collapse"
    scale_fields = ("collapse",)
    title = "4. Two-layer blocks: the first-layer collapse ~ L^-1/2"
    statement = (
        "In two-layer residual blocks under depth-muP, one SGD step moves the first internal "
        "layer's pre-activation by Delta u_l = O(L^(c - 1/2)) when W_{l,1} learns at eta L^c: at "
        "c = 0 the first layer stops learning like L^-1/2, in finite networks and in the limit."
    )
    rule = (
        "rms over layers of Delta u_l after one step on the eval inputs, against L (log-log): the "
        "limit solved at M = L (standard errors from particle groups, delta method for the rms), "
        "and finite networks (seed means; the interval from the fit's residuals) at the largest "
        "width. At c = 0 each rate: " + RATE_RULE + " (predicted -1/2). The claim holds if both "
        "hold, fails if either fails, else inconclusive. Other c are shown, not judged."
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        sizes = context.scale.collapse
        config = context.config.replace(model={"block": "two_layer"}, solver={"levels": 1})
        data = run_collapse_limit(
            config,
            load_stream(config),
            depths=sizes.depths,
            exponents=sizes.exponents,
            widths=sizes.widths,
            seeds=sizes.seeds,
            steps=1,
            particles=sizes.particles,
            groups=sizes.groups,
            key=context.key,
        )
        fits = []
        for c in data["exponents"]:
            rows = [r for r in data["rows"] if r["c"] == c]
            depths = [r["depth"] for r in rows]
            limit = [r["limit_rms"] for r in rows]
            limit_se = [_rms_stderr(r["limit"], r["limit_stderr"]) for r in rows]
            entry = {"c": c, "depths": depths, "limit": limit, "limit_stderr": limit_se,
                     "limit_fit": _fit(depths, limit, limit_se), "finite": {}, "finite_fit": {}}  # fmt: skip
            for w in data["widths"]:
                values = [r["finite_rms"][str(w)] for r in rows]
                entry["finite"][str(w)] = values
                entry["finite_fit"][str(w)] = _fit(depths, values)
            fits.append(entry)
        return {k: data[k] for k in ("depths", "widths", "seeds", "particles", "groups")} | {
            "fits": fits
        }

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        entry = next((f for f in data["fits"] if f["c"] == 0.0), None)
        if entry is None:
            return verdict(INCONCLUSIVE, "c = 0 was not run")
        width = str(max(data["widths"]))
        return combine(
            [
                rate_verdict(entry["limit_fit"], -0.5, "limit, c = 0"),
                rate_verdict(entry["finite_fit"][width], -0.5, f"finite n = {width}, c = 0"),
            ]
        )

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, 1, width=6.5, height=4.4)
        ax = figure.axes[0]
        colours = palette(len(data["fits"]) * (1 + len(data["widths"])))
        k = 0
        for entry in data["fits"]:
            depths = np.asarray(entry["depths"], float)
            ax.errorbar(depths, entry["limit"], yerr=1.96 * np.asarray(entry["limit_stderr"]),
                        fmt="o-", color="black" if k == 0 else colours[k], capsize=3,
                        label=f"limit M = L, c = {entry['c']:g} (95%)")  # fmt: skip
            k += 1
            for w, values in entry["finite"].items():
                ax.plot(
                    depths, values, "s--", color=colours[k], label=f"n = {w}, c = {entry['c']:g}"
                )
                k += 1
            ref = entry["limit"][0] * (depths / depths[0]) ** (entry["c"] - 0.5)
            ax.plot(depths, ref, ":", color="grey", label=f"expected L^{entry['c'] - 0.5:g}")
        size_axis(ax, data["depths"])
        ax.set(yscale="log", xlabel="depth L", ylabel="rms_l Delta u_l",
               title="first-layer change after one SGD step")  # fmt: skip
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        rows = []
        for entry in data["fits"]:
            expected = f"{entry['c'] - 0.5:g}"
            fits = [("limit", entry["limit_fit"])]
            fits += [(f"finite n = {w}", f) for w, f in entry["finite_fit"].items()]
            for label, fit in fits:
                fit = fit or {}
                rows.append([f"c = {entry['c']:g}, {label}: slope in L", value_text(fit.get("slope")),
                             interval_text(*(fit.get("ci95") or (None, None))), expected])  # fmt: skip
        return rows


def _rms_stderr(mean, stderr) -> float:
    """Delta-method standard error of sqrt(mean_l m_l^2) from the per-layer standard errors."""
    mean, stderr = np.asarray(mean, float).ravel(), np.asarray(stderr, float).ravel()
    rms = math.sqrt(float(np.mean(mean**2)))
    return float(np.sqrt(np.sum((mean * stderr) ** 2)) / (len(mean) * rms))


NORM_WINDOW = 0.1


@final
class NormsClaim(AbstractClaim):
    name = "norms"
    scale_fields = ("norms",)
    title = "6. Pre- against post-activation feature norms along depth"
    statement = (
        "Under the 1/sqrt(L) branch scale of depth-muP, feature norms stay O(1) along depth: the "
        "output features' rms h_L neither blows up nor vanishes as L grows, for pre-activation "
        "and for post-activation blocks, at initialisation and after training."
    )
    rule = (
        "rms of h_l on the eval inputs, one network per seed and depth (the same initial weights "
        "for both orders); rms h_L (seed mean, standard error over seeds) fitted against L "
        f"(log-log). Per order and stage: bounded if the slope's 95% interval lies inside "
        f"[-{NORM_WINDOW}, {NORM_WINDOW}] (a norm that moves by less than L^{NORM_WINDOW} over "
        f"the depths tested); unbounded if the interval lies outside it; else undecided. The claim "
        "holds if all four are bounded, fails if any is unbounded, else inconclusive."
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        sizes = context.scale.norms
        config = context.config.replace(training={"steps": sizes.steps})
        stream = load_stream(config)
        per_seed = [
            run_norms(config, stream, depths=sizes.depths, width=sizes.width, seeds=1,
                          key=jax.random.fold_in(context.key, seed))["runs"]
            for seed in range(sizes.seeds)
        ]  # fmt: skip
        runs = []
        for i, run in enumerate(per_seed[0]):
            entry = {"block_order": run["block_order"], "depth": run["depth"]}
            for stage in ("init", "trained"):
                profiles = np.asarray([seed[i][stage] for seed in per_seed], float)
                entry[stage] = profiles.mean(axis=0)
                entry[f"{stage}_last_stderr"] = float(
                    profiles[:, -1].std(ddof=1) / math.sqrt(len(profiles))
                )
            entry["diverged"] = sum(seed[i]["diverged"] for seed in per_seed)
            runs.append(entry)
        fits = []
        for order in dict.fromkeys(r["block_order"] for r in runs):
            chosen = [r for r in runs if r["block_order"] == order]
            for stage in ("init", "trained"):
                values = [r[stage][-1] for r in chosen]
                errors = [max(r[f"{stage}_last_stderr"], 1e-12) for r in chosen]
                fit = _fit([r["depth"] for r in chosen], values, errors)
                fits.append({"block_order": order, "stage": stage, "fit": fit})
        return {"depths": list(sizes.depths), "width": sizes.width, "seeds": sizes.seeds,
                "steps": sizes.steps, "runs": runs, "fits": fits}  # fmt: skip

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        parts = []
        for entry in data["fits"]:
            where = f"{entry['block_order']}, {entry['stage']}"
            fit = entry["fit"]
            if fit is None:
                parts.append(verdict(INCONCLUSIVE, f"{where}: no fit (diverged or not finite)"))
                continue
            low, high = fit["ci95"]
            text = f"{where}: rms h_L ~ L^{fit['slope']:.3f} [{low:.3f}, {high:.3f}]"
            if -NORM_WINDOW <= low and high <= NORM_WINDOW:
                parts.append(verdict(HOLDS, f"{text}, bounded"))
            elif high < -NORM_WINDOW or low > NORM_WINDOW:
                parts.append(verdict(FAILS, f"{text}, unbounded"))
            else:
                parts.append(verdict(INCONCLUSIVE, f"{text}, undecided"))
        return combine(parts)

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, 2, height=4.2)
        colours = dict(zip(data["depths"], palette(len(data["depths"]))))
        for ax, stage in zip(figure.axes, ("init", "trained")):
            for run in data["runs"]:
                profile = np.asarray(run[stage], float)
                t = np.arange(len(profile)) / run["depth"]
                style = "-" if run["block_order"] == "pre" else "--"
                ax.plot(t, profile, style, marker=".", color=colours[run["depth"]],
                        label=f"{run['block_order']}, L = {run['depth']}")  # fmt: skip
            ax.set(title=f"rms h_l along depth, {stage}", xlabel="depth time t = l / L",
                   ylabel="rms h_l", ylim=(0, None))  # fmt: skip
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small", ncol=2)
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        rows = []
        for entry in data["fits"]:
            fit = entry["fit"] or {}
            rows.append([f"{entry['block_order']}, {entry['stage']}: slope of rms h_L in L",
                         value_text(fit.get("slope")),
                         interval_text(*(fit.get("ci95") or (None, None))),
                         f"0 (within +-{NORM_WINDOW})"])  # fmt: skip
        return rows
