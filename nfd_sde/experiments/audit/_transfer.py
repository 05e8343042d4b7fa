"""Claim 5 of the audit, on real data (`data.source = digits`, or CIFAR-10 from a local folder):
learning-rate transfer across depth per exponent c (`run_transfer`, which resumes from its
own run files under the audit's work directory)."""

from typing import Any, final

import numpy as np
from matplotlib.figure import Figure

from ..common import MIN_SIZES, new_figure, palette, read_json, too_few_sizes
from ..two_layer import run_transfer, transfer_run_name
from ._claims import AbstractClaim, AuditContext, interval_text, value_text
from ._verdicts import FAILS, HOLDS, INCONCLUSIVE, short_origin, verdict

TOLERANCE = 1.0  # octaves of learning rate: "transfers" means optima within one octave
BOOTSTRAP = 2000


@final
class TransferClaim(AbstractClaim):
    name = "transfer"
    scale_fields = ("transfer",)
    title = "5. The depth-aware correction: learning-rate transfer across depth"
    statement = (
        "With two-layer blocks, W_{l,1} learning at eta L^c (the depth-aware correction): some c "
        "restores learning-rate transfer across depth on real data, i.e. the optimal learning "
        "rate does not move with L."
    )
    rule = (
        "One network per (c, L, eta, seed), trained for a fixed budget (standard backprop, "
        "cross-entropy); the optimal log2 eta per depth is the grid point of least seed-mean "
        "final train loss among those where no seed diverged; its spread across depths (max - "
        "min) gets a 95% interval from a bootstrap over seeds (2000 resamples, seeded). Per c: "
        f"transfers if the interval's upper end is <= {TOLERANCE:g} octave; does not transfer "
        f"if its lower end is > {TOLERANCE:g}; undecided otherwise or when an optimum sits at the "
        "edge of the learning-rate grid. The claim holds if some c transfers, fails if no c "
        "does and every c is decided, else inconclusive; an optimum compared across fewer than "
        f"{MIN_SIZES} depths never transfers (two depths agree on a coarse grid by chance)."
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        sizes = context.scale.transfer
        config = context.data_config.replace(
            model={"block": "two_layer"},
            network={"backward": "standard"},
            training={"steps": sizes.steps, "batch": sizes.batch, "loss": "cross_entropy"},
            data={"eval_size": sizes.eval_size},
        )
        lrs = [2.0**k for k in sizes.log2_lrs]
        out = context.folder("transfer", sizes)
        summary = run_transfer(
            config, depths=sizes.depths, widths=(sizes.width,), lrs=lrs,
            exponents=sizes.exponents, seeds=sizes.seeds, out_dir=out, progress=context.progress,
        )  # fmt: skip
        finals = {}
        for c in sizes.exponents:
            names = [
                [[transfer_run_name(c=c, depth=d, width=sizes.width, lr=lr, seed=config.run.seed + s)
                  for s in range(sizes.seeds)] for lr in lrs] for d in sizes.depths
            ]  # fmt: skip
            finals[repr(c)] = [
                [[_final(read_json(out / "runs" / f"{name}.json")) for name in seeds] for seeds in row]
                for row in names
            ]  # fmt: skip
        panels = [
            {"c": p["c"], "optimum": p["train"]["optimum_log2_lr"], "mean": p["train"]["mean"],
             "best_loss": p["train"]["best_loss"], "spread": p["train"]["spread_log2_lr"]}
            for p in summary["panels"]
        ]  # fmt: skip
        for panel in panels:
            panel["spread_ci95"] = _bootstrap_spread(finals[repr(panel["c"])], sizes.log2_lrs)
        return {"data": summary["data"], "depths": list(sizes.depths), "width": sizes.width,
                "log2_lrs": list(sizes.log2_lrs), "seeds": sizes.seeds, "steps": sizes.steps,
                "runs_diverged": summary["runs_diverged"], "panels": panels}  # fmt: skip

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        parts, edges = [], (min(data["log2_lrs"]), max(data["log2_lrs"]))
        few = too_few_sizes(len(data["depths"]), "transfer")
        for p in data["panels"]:
            where = f"c = {p['c']:g}"
            if p["spread"] is None or p["spread_ci95"] is None or None in p["optimum"]:
                parts.append((None, f"{where}: no optimum at some depth (all diverged)"))
                continue
            low, high = p["spread_ci95"]
            text = f"{where}: spread {p['spread']:g} octaves [{low:g}, {high:g}]"
            if any(o in edges for o in p["optimum"]):
                parts.append((None, f"{text}, an optimum sits at the grid's edge"))
            elif high <= TOLERANCE and few:
                parts.append((None, f"{text}, optima {few}"))
            elif high <= TOLERANCE:
                parts.append((True, f"{text}, transfers"))
            elif low > TOLERANCE:
                parts.append((False, f"{text}, does not transfer"))
            else:
                parts.append((None, f"{text}, undecided"))
        reason = "; ".join(text for _, text in parts)
        if any(ok is True for ok, _ in parts):
            return verdict(HOLDS, reason)
        if parts and all(ok is False for ok, _ in parts):
            return verdict(FAILS, reason)
        return verdict(INCONCLUSIVE, reason)

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, len(data["panels"]), height=4.2)
        colours = palette(len(data["depths"]))
        for ax, p in zip(figure.axes, data["panels"]):
            for depth, row, colour in zip(data["depths"], p["mean"], colours):
                values = [np.nan if v is None else v for v in row]
                ax.plot(data["log2_lrs"], values, "o-", color=colour, label=f"L = {depth}")
            for o, colour in zip(p["optimum"], colours):
                if o is not None:
                    ax.axvline(o, color=colour, linestyle=":", alpha=0.7)
            ax.set(title=f"c = {p['c']:g}: final train loss, {short_origin(data['data'])}",
                   xlabel="log2 eta", ylabel="seed-mean final train loss (diverged: absent)")  # fmt: skip
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize="x-small")
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        rows = []
        for p in data["panels"]:
            optima = " / ".join("-" if o is None else f"{o:g}" for o in p["optimum"])
            ci = p["spread_ci95"] or (None, None)
            rows.append([f"c = {p['c']:g}: spread of optimal log2 eta (optima {optima})",
                         value_text(p["spread"]), interval_text(*ci), f"<= {TOLERANCE:g}"])  # fmt: skip
        return rows


def _final(record: dict[str, Any]) -> float | None:
    return None if record["diverged"] or record["final_train"] is None else record["final_train"]


def _bootstrap_spread(finals, log2_lrs) -> list[float] | None:
    """95% percentile interval of the optima's spread, resampling each cell's seeds."""
    rng = np.random.default_rng(0)
    x = np.asarray(log2_lrs, float)
    spreads = []
    for _ in range(BOOTSTRAP):
        optima = []
        for row in finals:  # one depth: [lr][seed]
            means = []
            for seeds in row:
                if any(v is None for v in seeds):
                    means.append(np.inf)
                    continue
                means.append(np.mean(rng.choice(np.asarray(seeds, float), size=len(seeds))))
            if not np.isfinite(np.min(means)):
                return None
            optima.append(x[int(np.argmin(means))])
        spreads.append(max(optima) - min(optima))
    return [float(np.percentile(spreads, 2.5)), float(np.percentile(spreads, 97.5))]
