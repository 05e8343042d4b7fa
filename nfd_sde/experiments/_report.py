"""A Markdown report of a finite-vs-limit comparison: `write_report(DIR)` reads DIR/compare.json
and writes DIR/report.md, which embeds the figures (drawn from the JSON if missing) and states
the fitted rates, the standard-decoupled gap and the limit's Monte Carlo error in words.
"""

import math
from pathlib import Path
from typing import Any

import numpy as np

from ._compare import read_compare
from ._compare_plots import FIGURES, plot_compare
from ._records import write_text

REPORT_FILE = "report.md"


def write_report(directory: str | Path) -> Path:
    """Write DIR/report.md from DIR/compare.json; returns its path."""
    out = Path(directory)
    data = read_compare(out)
    if not all((out / name).is_file() for name in FIGURES.values()):
        plot_compare(data, out)
    path = out / REPORT_FILE
    return write_text(path, render_report(data))


def render_report(data: dict[str, Any]) -> str:
    """The report's Markdown text (figures referenced by their file names)."""
    grid = data["grid"]
    sections = [
        _setup(data),
        _monte_carlo(data),
        _errors(data),
        _gap(data),
        _kernels(data),
        _losses(data),
    ]
    title = "# Finite networks vs the NFD limit\n"
    intro = (
        f"Finite depth-muP ResNets of widths {_list(grid['widths'])} and depths "
        f"{_list(grid['depths'])} ({grid['seeds']} seeds each, standard and decoupled backward, "
        "the same initial weights for both modes of a seed) against the NFD limit, all trained on "
        "the same data stream. Numbers are seed means ± standard errors.\n"
    )
    return "\n".join([title, intro, *sections])


def describe_fit(fit: dict[str, Any] | None, *, quantity: str, symbol: str) -> str:
    """One sentence: `decoupled error falls like n^-0.49 ± 0.05 (95% CI [-0.60, -0.38], ...)`."""
    if fit is None:
        return f"{quantity}: no rate (fewer than two sizes, or a value that is not positive)"
    where = ", ".join(f"{_SYMBOLS[k]} = {fit[k]}" for k in ("width", "depth") if k in fit)
    sizes = f"{fit['points']} sizes {_list(fit['sizes'])}" + (f" at {where}" if where else "")
    power = f"{symbol}^{fit['slope']:.2f}"
    if fit["ci95"] is None:
        return f"{quantity} goes like {power} ({sizes}: an exact two-point slope, no interval)"
    low, high = fit["ci95"]
    interval = f"95% CI [{low:.2f}, {high:.2f}], {sizes}"
    power = f"{power} ± {fit['stderr']:.2g}"
    if high < 0:
        return f"{quantity} falls like {power} ({interval})"
    if low > 0:
        return f"{quantity} grows like {power} ({interval})"
    return f"{quantity} shows no significant trend: {power} ({interval}; the interval contains 0)"


_SYMBOLS = {"width": "n", "depth": "L"}


def _slopes(fits, held: str, symbol: str) -> str:
    """`L = 4: n^-0.52 ± 0.03; L = 8: ...` for fits on every slice of the grid."""
    parts = []
    for fit in fits or []:
        if fit is None:
            continue
        se = "" if fit["stderr"] is None else f" ± {fit['stderr']:.2g}"
        parts.append(f"{_SYMBOLS[held]} = {fit[held]}: {symbol}^{fit['slope']:.2f}{se}")
    return "; ".join(parts) or "no fits"


def _setup(data) -> str:
    grid, config, limit = data["grid"], data["config"], data["limit"]
    model, training, data_cfg = config["model"], config["training"], config["data"]
    meta = data["meta"]
    rows = [
        ("model", f"{model['activation']} activation, {model['readout']} readout, "
         f"d = {model['dim']}, C = {model['outputs']}, gamma0 = {model['gamma0']}, "
         f"beta(t) = {model['beta_profile']}, eta_lr(t) = {model['lr_profile']}"),
        ("training", f"{training['steps']} SGD steps of batch {training['batch']}, "
         f"eta = {training['eta']}, {training['loss']} loss"),
        ("data", f"{data_cfg['source']} ({data_cfg['teacher']} teacher), "
         f"{data_cfg['eval_size']} eval inputs"),
        ("limit", f"N = {grid['particles']} particles, M = {grid['depth_steps']} depth steps, "
         f"{limit['producer']['representation']} space, {grid['limit_seeds']} seeds"),
        ("finite", f"n in {_list(grid['widths'])}, L in {_list(grid['depths'])}, "
         f"{grid['seeds']} seeds x 2 backward modes"),
        ("run", f"{meta['wall_time_s']:.0f} s on {meta['device']['kind']} "
         f"({meta['device']['platform']}), seed {meta['seed']}, {meta['dtype']}"),
    ]  # fmt: skip
    table = "| | |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    return f"## Setup\n\n{table}\n"


def _monte_carlo(data) -> str:
    grid, mc = data["grid"], data["limit"]["mc_error"]
    loss = data["limit"]["loss_eval"][-1]
    if mc["f_eval_single"] is None:
        return (
            "## The limit's Monte Carlo error\n\nOne limit seed only: its Monte Carlo error is "
            f"not estimated. NFD final eval loss: {loss:.4g}.\n"
        )
    return (
        "## The limit's Monte Carlo error\n\n"
        f"One solve of the limit scatters by {_pct(mc['f_eval_single'])} of the reference's "
        "norm (relative L2 over all steps and eval inputs; the sample spread over "
        f"{grid['limit_seeds']} particle seeds). The reference is their mean, with Monte Carlo "
        f"error about {_pct(mc['f_eval_mean'])}: a finite network's distance to it "
        "cannot be resolved below that floor (drawn dotted in the figures). The NFD final eval "
        f"loss is {loss:.4g} ± {mc['loss_eval_final_stderr']:.2g}.\n"
    )


def _errors(data) -> str:
    grid, fits = data["grid"], data["fits"]
    lines = []
    for mode in grid["modes"]:
        fit = fits[f"error_{mode}"]
        lines.append("- " + describe_fit(fit["vs_width"], quantity=f"{mode} error", symbol="n"))
        lines.append("- " + describe_fit(fit["vs_depth"], quantity=f"{mode} error", symbol="L"))
        lines.append(f"  - every depth: {_slopes(fit.get('vs_width_each_depth'), 'depth', 'n')}")
    note = (
        "Expected: at L = M the decoupled network converges to this limit like n^-1/2 (Monte "
        "Carlo over the network's own random weights). The reference is solved on M = "
        f"{grid['depth_steps']} depth steps, so a network with L != M also differs from it by the "
        "depth discretisation, O(|1/L - 1/M|), and the trend in L mixes that with the width "
        "error. The standard network does not converge to the NFD: its error levels off at the "
        "gap below."
    )
    tables = "\n".join(
        _table(grid, data["summary"][mode]["error"], f"{mode}: relative error")
        for mode in grid["modes"]
    )
    return (
        "## Distance to the limit\n\n"
        "Error = ||f - f_limit|| / ||f_limit|| over every step k = 0..K, eval input and "
        "output.\n\n" + "\n".join(lines) + f"\n\n{note}\n\n{tables}\n"
        f"![errors]({FIGURES['errors']})\n"
    )


def _gap(data) -> str:
    grid, fits, gap = data["grid"], data["fits"], data["summary"]["gap"]
    mean = np.asarray(gap["mean"], dtype=float)
    lines = [
        "- " + describe_fit(fits["gap"]["vs_width"], quantity="the gap", symbol="n"),
        f"  - every depth: {_slopes(fits['gap'].get('vs_width_each_depth'), 'depth', 'n')}",
        "- " + describe_fit(fits["gap"]["vs_depth"], quantity="the gap", symbol="L"),
        f"  - every width: {_slopes(fits['gap'].get('vs_depth_each_width'), 'width', 'L')}",
    ]
    extrapolated = gap.get("infinite_width")
    if extrapolated is not None:
        values = ", ".join(
            f"{_pct_pm(a, se)} at L = {d}"
            for a, se, d in zip(extrapolated["gap"], extrapolated["stderr"], grid["depths"])
        )
        lines.append(
            "- extrapolated to infinite width (gap² = a² + c/n fitted over the widths, per "
            f"seed): a = {values}"
        )
    error = np.asarray(data["summary"]["decoupled"]["error"]["mean"], dtype=float)
    ratio = mean[-1, -1] / error[-1, -1]
    verdict = _gap_verdict(grid, fits, extrapolated)
    return (
        "## Standard vs decoupled backward (the gradient-independence gap)\n\n"
        "Gap = ||f_standard - f_decoupled|| / ||f_limit||, paired by seed (the two networks "
        "share their initial forward weights; the decoupled one has independent backward "
        "copies). At finite width it holds the O(n^-1/2) noise of the backward copies plus the "
        "reused-weight coupling term that the NFD drops.\n\n" + "\n".join(lines) + "\n\n"
        f"At the largest network (n = {grid['widths'][-1]}, L = {grid['depths'][-1]}) the gap "
        f"is {_pct(mean[-1, -1])}, {ratio:.2g} times the decoupled network's distance to the "
        f"limit. {verdict}\n\n" + _table(grid, gap, "gap") + f"\n![gap]({FIGURES['gap']})\n"
    )


def _gap_verdict(grid, fits, extrapolated) -> str:
    """Whether the gap falls with depth, which GIA becoming valid at infinite depth needs."""
    sentences = [
        "The paper's claim that the gradient-independence assumption becomes valid at infinite "
        "depth needs this gap to vanish as L grows."
    ]
    falls, judged = False, False
    raw = fits["gap"]["vs_depth"]
    if raw is not None and raw["ci95"] is not None:
        judged = True
        low, high = raw["ci95"]
        falls |= high < 0
        trend = "falls" if high < 0 else "does not fall significantly"
        sentences.append(
            f"At n = {raw['width']} the measured gap {trend} over L in "
            f"[{min(raw['sizes'])}, {max(raw['sizes'])}] (slope {raw['slope']:.2f}, 95% CI "
            f"[{low:.2f}, {high:.2f}])."
        )
    if extrapolated is not None and len(grid["depths"]) >= 2:
        a, se = np.asarray(extrapolated["gap"], float), np.asarray(extrapolated["stderr"], float)
        first, last = grid["depths"][0], grid["depths"][-1]
        if np.isfinite(se[0]) and np.isfinite(se[-1]):
            judged = True
            diff, spread = a[-1] - a[0], math.hypot(se[0], se[-1])
            falls |= diff + 2 * spread < 0
            trend = "falls" if diff + 2 * spread < 0 else "does not fall"
            sentences.append(
                f"The infinite-width extrapolation {trend}: {_pct_pm(a[0], se[0])} at L = "
                f"{first}, {_pct_pm(a[-1], se[-1])} at L = {last} (change "
                f"{_pct_pm(diff, spread)})"
                + (
                    "; at the largest depth it is more than two standard errors above zero."
                    if a[-1] > 2 * se[-1]
                    else "."
                )
            )
    if not judged:
        sentences.append("Too few depths, widths or seeds for a verdict.")
    elif falls:
        sentences.append(
            "Over these depths the gap shrinks; whether to zero, more depths must say."
        )
    else:
        sentences.append("Over these depths these runs do not support the claim.")
    return " ".join(sentences)


def _kernels(data) -> str:
    grid = data["grid"]
    t = data["grid"]["kernel_depths"]
    rows = []
    for mode in grid["modes"]:
        for name, table in data["summary"][mode]["kernel_error"].items():
            mean = np.asarray(table["mean"], dtype=float)[-1, -1]
            se = np.asarray(table["stderr"], dtype=float)[-1, -1]
            cells = " | ".join(_pm(m, s) for m, s in zip(mean, se))
            rows.append(f"| {mode} | {name} | {cells} |")
    mc = data["limit"]["mc_error"]["kernels_single"]
    for name, values in mc.items():
        if values is not None:
            floor = np.asarray(values, dtype=float) / math.sqrt(grid["limit_seeds"])
            rows.append(f"| limit MC | {name} | " + " | ".join(f"{v:.3g}" for v in floor) + " |")
    header = "| mode | kernel | " + " | ".join(f"t = {v:g}" for v in t) + " |\n"
    header += "|---|---|" + "---|" * len(t) + "\n"
    return (
        "## Kernels along depth\n\n"
        f"Relative Frobenius error ||K - K_limit|| / ||K_limit|| per recorded depth, over all "
        f"steps and input pairs, at n = {grid['widths'][-1]}, L = {grid['depths'][-1]}:\n\n"
        + header
        + "\n".join(rows)
        + f"\n\n![kernels]({FIGURES['kernels']})\n"
    )


def _losses(data) -> str:
    grid, limit = data["grid"], data["limit"]
    parts = [f"NFD limit {limit['loss_eval'][-1]:.4g}"]
    for mode in grid["modes"]:
        table = data["summary"][mode]["loss_eval_final"]
        mean = np.asarray(table["mean"], dtype=float)[-1, -1]
        se = np.asarray(table["stderr"], dtype=float)[-1, -1]
        parts.append(f"{mode} {_pm(mean, se)}")
    return (
        "## Loss curves and scaling\n\n"
        f"Final eval loss at n = {grid['widths'][-1]}, L = {grid['depths'][-1]}: "
        + ", ".join(parts)
        + f".\n\n![losses]({FIGURES['losses']})\n\n![scaling]({FIGURES['scaling']})\n"
    )


def _table(grid, table, what: str) -> str:
    mean = np.asarray(table["mean"], dtype=float)
    se = np.asarray(table["stderr"], dtype=float)
    header = f"| {what} | " + " | ".join(f"L = {d}" for d in grid["depths"]) + " |\n"
    header += "|---|" + "---|" * len(grid["depths"]) + "\n"
    rows = [
        f"| n = {w} | " + " | ".join(_pm(m, s) for m, s in zip(mean[i], se[i])) + " |"
        for i, w in enumerate(grid["widths"])
    ]
    return header + "\n".join(rows) + "\n"


def _pm(mean: float, se: float) -> str:
    return f"{mean:.3g}" if not np.isfinite(se) else f"{mean:.3g} ± {se:.2g}"


def _pct(value: float) -> str:
    return f"{100 * value:.3g}%"


def _pct_pm(value: float, se: float) -> str:
    if not np.isfinite(se):
        return _pct(value)
    return f"{100 * value:.3g} ± {100 * se:.2g}%"


def _list(values) -> str:
    return ", ".join(str(v) for v in values)
