"""A Markdown report of a finite-vs-limit comparison: `write_report(DIR)` reads DIR/compare.json
and writes DIR/report.md, which embeds the figures (drawn from the JSON if missing) and states in
words the rates (bias, fluctuation, depth error), the gap at infinite width, what was not
resolved and the budget that would resolve it, and the limit's Monte Carlo error.
"""

import math
from pathlib import Path
from typing import Any

from ..common import rate_caveats, write_text
from ._plots import FIGURES, plot_compare
from ._report_format import join, num, pct, pm, table
from ._store import COMPARE_FILE, read_compare

REPORT_FILE = "report.md"
# what the report reads of compare.json (`run_compare`'s data)
COMPARE_KEYS = ("grid", "scale", "limits", "ensembles", "summary", "fits", "config", "meta")
_SYMBOLS = {"width": "n", "depth": "L"}


def write_report(directory: str | Path) -> Path:
    """Write DIR/report.md from DIR/compare.json; returns its path. A compare.json that is not
    what `compare` writes (truncated, another structure) is a ValueError naming the file."""
    out = Path(directory)
    data = read_compare(out)
    source = out / COMPARE_FILE
    missing = [k for k in COMPARE_KEYS if k not in data] if isinstance(data, dict) else None
    try:
        if missing is None or missing:
            raise ValueError(
                f"it holds a JSON {type(data).__name__}, not an object"
                if missing is None
                else f"it lacks {', '.join(repr(k) for k in missing)}"
            )
        if not all((out / name).is_file() for name in FIGURES.values()):
            plot_compare(data, out)
        text = render_report(data)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError, ArithmeticError) as error:
        what = f"{type(error).__name__} {error}" if not isinstance(error, ValueError) else error
        raise ValueError(
            f"{str(source)!r} is not the result of `nfd-sde compare` ({what}); run "
            "`nfd-sde compare` again"
        ) from error
    return write_text(out / REPORT_FILE, text)


def render_report(data: dict[str, Any]) -> str:
    """The report's Markdown text (figures referenced by their file names)."""
    grid = data["grid"]
    intro = (
        f"Finite depth-muP ResNets of widths {join(grid['widths'])} and depths "
        f"{join(grid['depths'])}, standard and decoupled backward (paired: the same initial "
        "weights for both modes of a seed), against the NFD limit, all trained on one data stream. "
        "Every distance is that of an ensemble mean, with its noise floor removed, "
        f"{_scale_words(data)}; ± is one standard error.\n"
    )
    sections = [_setup(data), rate_lines(data), _bias(data), _depth(data), _gap(data)]
    sections += [_kernels(data), _losses(data), _notes(data)]
    return "\n".join(["# Finite networks vs the NFD limit\n", intro, *sections])


def describe_fit(fit: dict[str, Any] | None, *, quantity: str, symbol: str) -> str:
    """One sentence: `decoupled bias falls like n^-0.95 ± 0.15 (95% CI [-1.24, -0.66], ...)`,
    followed by the caveats of the shared evidence rule (`_evidence.rate_caveats`): a rate from
    fewer than three resolved sizes, an interval that excludes the expected exponent."""
    sentence = _describe_fit(fit, quantity=quantity, symbol=symbol)
    caveats = rate_caveats(fit, symbol)
    return sentence + "".join(f"; NOTE: {c}" for c in caveats)


def _describe_fit(fit: dict[str, Any] | None, *, quantity: str, symbol: str) -> str:
    """The sentence of `describe_fit`, before its caveats."""
    if fit is None or fit.get("slope") is None:
        left = _excluded(fit)
        return f"{quantity}: no rate (fewer than two resolved sizes{left})"
    where = ", ".join(f"{_SYMBOLS[k]} = {fit[k]}" for k in ("width", "depth") if k in fit)
    sizes = f"{len(fit['sizes'])} sizes {join(fit['sizes'])}" + (f" at {where}" if where else "")
    if fit.get("expected") is not None:
        sizes += f"; expected {symbol}^{fit['expected']:g}"
    sizes += _excluded(fit)
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
    budget = fit.get("budget_factor")
    more = f"; about {budget:.2g}x the seeds would resolve it" if budget else ""
    return (
        f"{quantity} shows no significant trend: {power} ({interval}; the interval contains "
        f"0{more})"
    )


def rate_lines(data: dict[str, Any]) -> str:
    """The headline rates and the gap at infinite width, one line each."""
    grid, fits, summary = data["grid"], data["fits"], data["summary"]
    lines = [
        describe_fit(fits["headline"]["bias"], quantity="decoupled bias", symbol="n"),
        describe_fit(
            fits["fluctuation_decoupled"][-1], quantity="decoupled fluctuation", symbol="n"
        ),
        describe_fit(fits["headline"]["depth"], quantity="decoupled depth error", symbol="L"),
    ]
    if fits.get("depth_limit") is not None:
        lines.append(
            describe_fit(fits["depth_limit"], quantity="the limit's depth error", symbol="L")
        )
    for depth, cell in zip(grid["depths"], summary.get("gap_infinite_width") or []):
        lines.append(describe_infinite_gap(cell, depth))
    budget = _budget(data)
    return (
        "## Rates\n\n"
        + "\n".join(f"- {line}" for line in lines)
        + (f"\n\n{budget}" if budget else "")
        + "\n"
    )


def _excluded(fit) -> str:
    """`; left out: n = 64 (not resolved, below 0.028)` for the points a fit left out."""
    if not fit or not fit.get("excluded"):
        return ""
    symbol = "n" if "depth" in fit else "L"
    parts = [f"{symbol} = {e['size']} ({e['reason']})" for e in fit["excluded"]]
    return "; left out: " + ", ".join(parts)


def describe_infinite_gap(cell, depth) -> str:
    """One line on the gap at infinite width at depth L: its value with its 95% interval when
    resolved, "not resolved, below X" when not, "undefined" without an error estimate."""
    where = f"gap at infinite width, L = {depth}"
    if cell is None:
        return f"{where}: undefined (fewer than two widths)"
    if not cell["resolved"] and _finite(cell.get("high")):
        return f"{where}: not resolved, below {num(cell['high'])} (the 95% interval contains 0)"
    if not all(_finite(cell.get(k)) for k in ("debiased", "stderr", "high")):
        return f"{where}: undefined (no error estimate)"
    return (
        f"{where}: {pm(cell['debiased'], cell['stderr'])} (95% CI "
        f"[{num(cell['low'])}, {num(cell['high'])}], excludes 0)"
    )


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _budget(data) -> str:
    """What the unresolved headline claims would need, from the measured finite wall time."""
    fits, meta = data["fits"], data["meta"]
    parts = []
    for name, fit in (
        ("bias", fits["headline"]["bias"]),
        ("depth error", fits["headline"]["depth"]),
    ):
        if fit is None or fit.get("slope") is None:
            reasons = " ".join(e["reason"] for e in (fit or {}).get("excluded", []))
            if "not resolved" in reasons:
                parts.append(f"the decoupled {name} has too few resolved points for a rate; more "
                             "seeds (--max-seeds), more limit seeds or smaller widths would "
                             "resolve them")  # fmt: skip
        elif fit.get("budget_factor"):
            factor = fit["budget_factor"]
            seconds = factor * meta.get("finite_wall_time_s", math.nan)
            parts.append(f"the decoupled {name}'s rate is not resolved: about {factor:.2g}x the "
                         f"seeds (about {seconds:.0f} s of finite training) would resolve it")  # fmt: skip
    return ("Not resolved at this budget: " + "; ".join(parts) + ".") if parts else ""


def _setup(data) -> str:
    grid, config, meta = data["grid"], data["config"], data["meta"]
    model, training, data_cfg = config["model"], config["training"], config["data"]
    seeds = {e["width"]: e["samples"] for e in data["ensembles"]}
    per = "antithetic pairs (v, -v)" if grid["antithetic"] else "networks"
    target = (
        "M = L for every depth" if grid["depth_steps"] is None else f"M = {grid['depth_steps']}"
    )
    rows = [
        ("model", f"{model['activation']} activation, {model['readout']} readout, "
         f"d = {model['dim']}, C = {model['outputs']}, gamma0 = {model['gamma0']}"),
        ("training", f"{training['steps']} SGD steps of batch {training['batch']}, "
         f"eta = {training['eta']}, {training['loss']} loss; {data_cfg['eval_size']} eval inputs"),
        ("limit", f"N = {grid['particles']} particles, {target}, {grid['limit_seeds']} seeds "
         f"({'antithetic pairs' if grid['antithetic'] else 'solves'}) each, "
         f"{grid['representation']} space"),
        ("finite", f"seeds per width ({per}): "
         + ", ".join(f"n = {w}: {s}" for w, s in sorted(seeds.items()))
         + f"; common noise across depths: {'on' if grid['common_noise'] else 'off'}"),
        ("run", f"{meta['wall_time_s']:.0f} s (limit {meta.get('limit_wall_time_s', 0):.0f} s) "
         f"on {meta['device']['kind']} ({meta['device']['platform']}), seed {meta['seed']}, "
         f"{meta['dtype']}"),
    ]  # fmt: skip
    table = "| | |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    mc = "; ".join(
        f"M = {lim['depth_steps']}: one seed {pct(lim['mc_error']['f_eval_single'])}, "
        f"the reference {pct(lim['mc_error']['f_eval_mean'])}"
        for lim in data["limits"]
    )
    return f"## Setup\n\n{table}\n\nThe limit's own Monte Carlo error (relative): {mc}.\n"


def _bias(data) -> str:
    grid, summary, fits = data["grid"], data["summary"], data["fits"]
    lines = []
    for mode in grid["modes"]:
        for fit in fits[f"bias_{mode}"]:
            lines.append("- " + describe_fit(fit, quantity=f"{mode} bias", symbol="n"))
        lines.append("- " + describe_fit(fits[f"fluctuation_{mode}"][-1],
                                         quantity=f"{mode} fluctuation", symbol="n"))  # fmt: skip
    tables = "\n".join(
        [table(grid, summary["bias"][mode], f"{mode} bias") for mode in grid["modes"]]
        + [table(grid, summary["fluctuation"]["decoupled"], "decoupled fluctuation")]
    )
    return (
        "## Bias and fluctuation\n\nBias = |E f_n,L - f_limit(M = L)|: the ensemble mean against "
        "the limit solved on as many steps as the network has layers, its exact n -> infinity "
        "limit when decoupled (expected O(1/n)); the standard network tends to the gap instead. "
        "Fluctuation = sqrt(tr Var f): one network's spread about the mean (expected n^-1/2).\n\n"
        + "\n".join(lines)
        + f"\n\n{tables}\n![bias]({FIGURES['bias']})\n"
    )


def _depth(data) -> str:
    grid, summary, fits = data["grid"], data["summary"], data["fits"]
    lines = [
        "- " + describe_fit(fit, quantity=f"{mode} depth error", symbol="L")
        for mode in grid["modes"] for fit in fits[f"depth_{mode}"]
    ]  # fmt: skip
    if fits.get("depth_limit") is not None:
        lines.append(
            "- " + describe_fit(fits["depth_limit"], quantity="limit depth error", symbol="L")
        )
    reference = summary["depth_reference"]["description"]
    return (
        f"## Depth error\n\nDepth error at L = |E f(L) - f_ref(L)|, {reference}, paired by "
        "seed (expected O(1/L)).\n\n"
        + "\n".join(lines)
        + "\n\n"
        + table(grid, summary["depth"]["decoupled"], "decoupled depth error")
        + f"\n![depth]({FIGURES['depth']})\n"
    )


def _gap(data) -> str:
    grid, summary, fits = data["grid"], data["summary"], data["fits"]
    if "gap" not in summary:
        return ""
    lines = [
        "- " + describe_fit(fit, quantity="the gap", symbol="L") for fit in fits["gap_vs_depth"]
    ]
    trend = fits["gap_infinite_width_vs_depth"]
    lines.append("- " + describe_fit(trend, quantity="the infinite-width gap", symbol="L"))
    verdict = (
        "The paper's claim that the gradient-independence assumption becomes exact at infinite "
        "depth needs the infinite-width gap to fall to 0 as L grows. "
    )
    if trend.get("ci95") is not None and trend["ci95"][1] < 0:
        verdict += "Over these depths it falls; whether to 0, more depths must say."
    else:
        verdict += "Over these depths it does not fall: these runs do not support the claim."
    return (
        "## Standard vs decoupled backward (the gradient-independence gap)\n\n"
        "Gap = |E (f_standard - f_decoupled)|, paired by seed, extrapolated linearly in 1/n to "
        "n -> infinity: the reused-weight coupling that the NFD drops.\n\n"
        + "\n".join(lines)
        + f"\n\n{verdict}\n\n"
        + table(grid, summary["gap"], "gap")
        + f"\n![gap]({FIGURES['gap']})\n"
    )


def _kernels(data) -> str:
    grid, summary = data["grid"], data["summary"]
    t = grid["kernel_depths"]
    rows = []
    for mode in grid["modes"]:
        for name, per_cell in summary["kernels"][mode].items():
            cells = per_cell[-1][-1]
            if cells is not None:
                text = " | ".join(f"{num(c['debiased'])} (raw {num(c['raw'])}, noise "
                                  f"{num(c['floor'])})" for c in cells)  # fmt: skip
                rows.append(f"| {mode} | {name} | {text} |")
    header = "| mode | kernel | " + " | ".join(f"t = {v:g}" for v in t) + " |\n"
    header += "|---|---|" + "---|" * len(t) + "\n"
    return (
        "## Kernels along depth\n\n|E K - K_limit| / |K_limit| per recorded depth over all steps "
        f"and input pairs, at n = {grid['widths'][-1]}, L = {grid['depths'][-1]}:\n\n"
        + header
        + "\n".join(rows)
        + f"\n\n![kernels]({FIGURES['kernels']})\n"
    )


def _losses(data) -> str:
    grid, summary = data["grid"], data["summary"]
    limit = summary["limit_losses"][str(grid["limit_depth_steps"][-1])]["loss_eval"]
    se = None if limit["stderr"] is None else limit["stderr"][-1]
    parts = [f"NFD limit {pm(limit['mean'][-1], se)}"]
    for mode in grid["modes"]:
        losses = summary["losses"][mode]["loss_eval"]
        parts.append(f"{mode} {pm(losses['mean'][-1][-1][-1], losses['stderr'][-1][-1][-1])}")
    return (
        "## Loss curves and scaling\n\nFinal eval loss at n = "
        f"{grid['widths'][-1]}, L = {grid['depths'][-1]}: "
        + ", ".join(parts)
        + f".\n\n![losses]({FIGURES['losses']})\n\n![scaling]({FIGURES['scaling']})\n"
    )


def _notes(data) -> str:
    notes = data["summary"].get("notes") or []
    if not notes:
        return ""
    return "## Notes\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"


def _scale_words(data) -> str:
    scale = data["scale"]
    if scale["kind"] == "absolute":
        return f"in absolute units ({scale['why']})"
    return f"relative to |f_limit| = {scale['value']:.3g} (all steps, eval inputs, outputs)"
