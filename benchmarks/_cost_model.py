"""Reading the field/weight grid of `representations.py`: crossover, `auto`'s agreement with the
measurements, the cost-model constants that fit them, the report and the figure."""

import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from _timing import header, ms, table

from solvers import FIELD_BIAS, RNG_COST, FieldSpace, ProblemSizes, WeightSpace

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TITLES = {"ratio": "default BLAS threads", "ratio_blas1": "field space with 1 BLAS thread"}


def model_costs(point: dict[str, Any], field_bias: float, rng_cost: float) -> tuple[float, float]:
    """The representations' own cost models (`solvers.ProblemSizes`) for one-layer blocks and
    decoupled backward weights, with chosen constants: (field cost, weight cost) in
    multiply-adds."""
    sizes = ProblemSizes(
        particles=point["particles"],
        depth_steps=point["depth_steps"],
        stored=point["stored_pairs"],
        new=point["batch"] + point["eval_size"],
        batch=point["batch"],
        field_bias=field_bias,
        rng_cost=rng_cost,
    )
    return FieldSpace.cost(sizes), WeightSpace.cost(sizes)


def crossover(stored: list[int], ratios: list[float]) -> dict[str, Any]:
    """The K*B where field/weight first reaches 1 (log-log interpolation between grid points)."""
    logs = np.log(np.asarray(ratios))
    if logs[0] >= 0:
        return {"stored_pairs": None, "text": f"<= {stored[0]} (weight faster everywhere)"}
    for i in range(len(stored) - 1):
        if logs[i] < 0 <= logs[i + 1]:
            a, b = math.log(stored[i]), math.log(stored[i + 1])
            value = float(math.exp(a - logs[i] * (b - a) / (logs[i + 1] - logs[i])))
            return {"stored_pairs": value, "text": f"~{value:.0f}"}
    return {"stored_pairs": None, "text": f"> {stored[-1]} (field faster everywhere)"}


def fit_constants(grid: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """(FIELD_BIAS, RNG_COST) minimising the squared log error of the model's field/weight cost
    ratio against the measured time ratio `key` over the grid (log-spaced search), with the
    fraction of grid points where `auto` would then pick the measured faster one."""
    measured = np.log([g[key] for g in grid])

    def score(bias, rng):
        predicted = np.log([np.divide(*model_costs(g, bias, rng)) for g in grid])
        return float(np.mean((predicted - measured) ** 2)), float(
            np.mean((predicted <= 0) == (measured < 0))
        )

    biases, rngs = np.logspace(-2, 3, 101), np.logspace(0, 4, 41)
    err, bias, rng = min((score(b, r)[0], b, r) for r in rngs for b in biases)
    # a best fit at the edge of the searched range is poorly determined by the grid
    at_edge = bool(bias in (biases[0], biases[-1]) or rng in (rngs[0], rngs[-1]))
    err_bias, bias_only = min((score(b, RNG_COST)[0], b) for b in biases)
    current = score(FIELD_BIAS, RNG_COST)
    return {
        "current": {
            "FIELD_BIAS": FIELD_BIAS,
            "RNG_COST": RNG_COST,
            "rms_log_error": math.sqrt(current[0]),
            "agreement": current[1],
        },
        "fitted": {
            "FIELD_BIAS": float(bias),
            "RNG_COST": float(rng),
            "rms_log_error": math.sqrt(err),
            "agreement": score(bias, rng)[1],
            "at_search_edge": at_edge,
        },
        "fitted_bias_only": {
            "FIELD_BIAS": float(bias_only),
            "RNG_COST": RNG_COST,
            "rms_log_error": math.sqrt(err_bias),
            "agreement": score(bias_only, RNG_COST)[1],
        },
    }


def analyse(grid: list[dict[str, Any]], particles: list[int], stored: list[int]) -> dict:
    """Per measured ratio (default threads, and 1 BLAS thread where taken): `auto`'s agreement,
    the crossover at each N, and the fitted constants."""
    analysis = {}
    for key in TITLES:
        if not all(key in g for g in grid):
            continue
        analysis[key] = {
            "agreement": float(np.mean([(g[key] < 1) == (g["auto"] == "field") for g in grid])),
            "crossover": {
                str(n): crossover(stored, [g[key] for g in grid if g["particles"] == n])
                for n in particles
            },
            "constants": fit_constants(grid, key),
        }
    return analysis


def _constants_text(analysis: dict, points: int) -> str:
    c = analysis["constants"]
    fitted, alone = c["fitted"], c["fitted_bias_only"]
    edge = (
        "(at the edge of the searched range: poorly determined; FIELD_BIAS/RNG_COST "
        f"= {fitted['FIELD_BIAS'] / fitted['RNG_COST']:.3g}) "
        if fitted["at_search_edge"]
        else ""
    )
    return (
        f"\nauto picks the faster representation at {analysis['agreement']:.0%} of the "
        f"{points} grid points (FIELD_BIAS={FIELD_BIAS}, RNG_COST={RNG_COST}; rms log error of "
        f"the modelled ratio {c['current']['rms_log_error']:.2f}). Best fit: "
        f"FIELD_BIAS={fitted['FIELD_BIAS']:.3g}, RNG_COST={fitted['RNG_COST']:.3g} {edge}"
        f"(rms log error {fitted['rms_log_error']:.2f}, agreement {fitted['agreement']:.0%}); "
        f"FIELD_BIAS alone: {alone['FIELD_BIAS']:.3g} (rms log error "
        f"{alone['rms_log_error']:.2f}, agreement {alone['agreement']:.0%})"
    )


def _axes(grid):
    n_values = sorted({g["particles"] for g in grid})
    s_values = sorted({g["stored_pairs"] for g in grid})
    return n_values, s_values, {(g["particles"], g["stored_pairs"]): g for g in grid}


def report(results: dict) -> str:
    grid = results["grid"]
    n_values, s_values, lookup = _axes(grid)
    out = header(results["environment"], results["sizes"], results["total_wall_s"])
    for key, analysis in results["grid_analysis"].items():
        out += [
            "",
            f"### field / weight time ratio at M={grid[0]['depth_steps']}, {TITLES[key]} "
            "(< 1: field faster; [auto's choice])",
            "",
        ]
        rows = [
            [n]
            + [f"{lookup[n, s][key]:.2g} [{lookup[n, s]['auto'][0]}]" for s in s_values]
            + [analysis["crossover"][str(n)]["text"]]
            for n in n_values
        ]
        out.append(table(["N \\ K*B", *map(str, s_values), "crossover K*B"], rows))
        out.append(_constants_text(analysis, len(grid)))
    rng = results["rng_cost"]
    out.append(
        f"\nweight-space matrices at N={rng['particles']}: one N x N normal draw "
        f"{ms(rng['draw']['min_s'])} ms vs the N x N @ N x {rng['matmul_columns']} matmul "
        f"{ms(rng['matmul']['min_s'])} ms, i.e. RNG_COST ~ {rng['rng_cost_estimate']:.3g} "
        f"multiply-adds per number on this device (the model uses {RNG_COST})"
    )
    return "\n".join(out)


def _heat_map(fig, ax, results: dict, key: str) -> None:
    n_values, s_values, lookup = _axes(results["grid"])
    ratio = np.array([[math.log2(lookup[n, s][key]) for s in s_values] for n in n_values])
    bound = max(1.0, float(np.abs(ratio).max()))
    image = ax.imshow(ratio, cmap="coolwarm", vmin=-bound, vmax=bound, origin="lower")
    for i, n in enumerate(n_values):
        for j, s in enumerate(s_values):
            g = lookup[n, s]
            agrees = (g[key] < 1) == (g["auto"] == "field")
            text = f"{g[key]:.2g}\nauto: {g['auto']}"
            colour = "k" if agrees else "m"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(s_values)), [str(s) for s in s_values])
    ax.set_yticks(range(len(n_values)), [str(n) for n in n_values])
    agreement = results["grid_analysis"][key]["agreement"]
    ax.set(
        xlabel="stored pairs K*B",
        ylabel="particles N",
        title=f"field / weight, {TITLES[key]}\nauto picks the faster at {agreement:.0%} "
        "(magenta: it does not)",
    )
    fig.colorbar(image, ax=ax, label="log2 time ratio")


def plot(results: dict, path: Path) -> None:
    grid = results["grid"]
    n_values, s_values, lookup = _axes(grid)
    keys = list(results["grid_analysis"])
    fig, axes = plt.subplots(1, 1 + len(keys), figsize=(6.5 * (1 + len(keys)), 5.5))
    ax_time, *ax_ratios = np.atleast_1d(axes)
    colours = plt.cm.viridis(np.linspace(0, 0.9, len(s_values)))
    series = [("field_min_s", "-o", "field"), ("weight_min_s", "--s", "weight")]
    if "ratio_blas1" in keys:
        series.append(("field_blas1_min_s", ":^", "field, 1 BLAS thread"))
    for s, colour in zip(s_values, colours):
        for key, style, label in series:
            times = [lookup[n, s][key] * 1e3 for n in n_values]
            ax_time.plot(n_values, times, style, color=colour, label=f"{label}, K*B={s}")
    ax_time.set(
        xscale="log",
        yscale="log",
        xlabel="particles N",
        ylabel="time per training step (ms, min)",
        title=f"limit solver step, M={grid[0]['depth_steps']} (diffrax)",
    )
    ax_time.legend(fontsize=6, ncol=2)
    for ax, key in zip(ax_ratios, keys):
        _heat_map(fig, ax, results, key)
    env = results["environment"]
    fig.suptitle(
        f"{env['device']['platform']} ({env['host']['cpu_model']}), jax "
        f"{env['versions']['jax']}, load average {env['load_average_start']}",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    plt.close(fig)
