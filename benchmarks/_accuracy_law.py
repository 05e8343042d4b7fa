"""From units to errors and times (`time_to_accuracy.py`).

* **Errors** are relative: over every f_eval entry j (step, input, output), divided by
  max |f_ref|. A pooled estimate's error bound is max_j (|bias_j| + 2 se_j) / max |f_ref|, the
  rule of `solve --target-error`; its realized error is max_j |f_j - f_ref_j| / max |f_ref|.
* **Measured time**: the units pooled in the order they ran until the bound meets the target;
  the time is their summed wall time.
* **The law.** R independent units give se_j^2 = v_j / R (v_j: a unit's variance), so a bound E
  takes R(E) = max_j (2 sqrt(v_j) / (E max|f_ref| - |bias_j|))^2 units (never if a |bias_j|
  exceeds E max|f_ref|), at the median unit time.
* **The fit**: disjoint blocks of 1, 2, 4, ... units, realized error against wall time, log-log
  slope (-1/2 for pure Monte Carlo error) with its 95% interval.
* **Biases.** (a): its own syserr. (b) plain Euler at M: f_M - f from the reference's three
  nested levels on shared paths (c1 / M + c2 / M^2). (c): the depth residual of Richardson over
  (L/2, L), from the same levels; the width residual after Richardson in n is taken as zero, so
  (c)'s times are lower bounds.
"""

import dataclasses
import math
import statistics

import numpy as np
from _accuracy import Unit, finite_shapes

from solvers import extrapolate, fit_loglog


def pooled_levels(runs: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The level means (finest first) pooled over units, their extrapolation and its residual."""
    levels = np.mean([run["levels"] for run in runs], axis=0)
    value, syserr = extrapolate(levels, order=1)
    return levels, value, syserr


def euler_bias(levels: np.ndarray, limit: np.ndarray, finest: int, depth_steps) -> np.ndarray:
    """f_M - f_limit of plain Euler at M, from three nested levels (M = finest, /2, /4) that
    share their paths: f_M = f + c1 / M + c2 / M^2 through the two finest levels' differences
    from the 3-level extrapolation `limit` (which itself is the fit's value at M = infinity)."""
    h = np.array([1.0 / finest, 2.0 / finest])
    design = np.stack([h, h**2], axis=1)
    diffs = (levels[:2] - limit).reshape(2, -1)
    c1, c2 = np.linalg.solve(design, diffs)
    return (c1 / depth_steps + c2 / depth_steps**2).reshape(limit.shape)


def pool(units: list[Unit]) -> Unit:
    r = len(units)
    value = np.mean([u.value for u in units], axis=0)
    var = np.sum([u.var for u in units], axis=0) / r**2
    return Unit(value, var, float(sum(u.wall_s for u in units)))


def bound(est: Unit, bias: np.ndarray, scale: float) -> float:
    return float(np.max(np.abs(bias) + 2 * np.sqrt(est.var))) / scale


def realized(est: Unit, ref: Unit, scale: float) -> tuple[float, float]:
    """(max |f - f_ref| / scale, max z-score against the two standard errors combined)."""
    diff = np.abs(est.value - ref.value)
    se = np.sqrt(est.var + ref.var)
    z = np.where(se > 0, diff / np.where(se > 0, se, 1.0), 0.0)
    return float(np.max(diff)) / scale, float(np.max(z))


def measured_time(units, bias, ref: Unit, scale: float, target: float) -> dict | None:
    """Pool units in the order run until the bound meets `target`: the units and wall time
    that took, with the realized error there; None if all units together fall short."""
    for r in range(1, len(units) + 1):
        est = pool(units[:r])
        if bound(est, bias, scale) <= target:
            error, z = realized(est, ref, scale)
            return {"units": r, "time_s": est.wall_s, "realized": error, "z": z}
    return None


def law_time(units, bias, scale: float, target: float, unit_s: float, dof: int) -> dict:
    """R(target) units from the per-unit variance v = mean of the units' variances (the law in
    the module docstring), times `unit_s`; the interval from v's 95% interval (chi-square with
    `dof` degrees of freedom, normal approximation)."""
    v = np.mean([u.var for u in units], axis=0)
    room = target * scale - np.abs(bias)
    if np.any(room <= 0):
        return {"units": math.inf, "time_s": math.inf, "interval_s": [math.inf, math.inf]}

    def time_for(factor):
        return float(np.max(4 * v * factor / room**2)) * unit_s

    spread = 1.96 * math.sqrt(2.0 / max(dof, 1))
    return {
        "units": time_for(1.0) / unit_s,
        "time_s": time_for(1.0),
        "interval_s": [time_for(max(1 - spread, 0.0)), time_for(1 + spread)],
    }


def block_fit(units, ref: Unit, scale: float, blocks) -> dict:
    """Disjoint blocks of 1, 2, 4, ... units: wall time against realized error; the log-log
    slope (expected -1/2 for pure Monte Carlo error) with its 95% interval."""
    points, start = [], 0
    for size in blocks:
        if start + size > len(units):
            break
        est = pool(units[start : start + size])
        points.append(
            {"units": size, "time_s": est.wall_s, "realized": realized(est, ref, scale)[0]}
        )
        start += size
    out = {"points": points}
    if len(points) >= 3:
        fit = fit_loglog([p["time_s"] for p in points], [p["realized"] for p in points])
        out |= {"slope": fit.slope, "ci95": list(fit.ci95)}
    return out


def calibration(units: list[Unit]) -> float | None:
    """Spread of the units' values over their stated variance (1 if the stderr is honest),
    averaged over the entries that vary."""
    if len(units) < 2:
        return None
    values = np.stack([u.value for u in units])
    stated = np.mean([u.var for u in units], axis=0)
    mask = stated > 0
    return float(np.mean(values.var(0, ddof=1)[mask] / stated[mask])) if mask.any() else None


def analyse(sizes, problem, runs, finite_units, warm, finite_compile) -> dict:
    ref = pool([r["unit"] for r in runs["ref"]])
    scale = float(np.max(np.abs(ref.value)))
    levels, limit, syserr = pooled_levels(runs["ref"])
    finest = sizes.reference_depth

    def bias_at(m):
        return euler_bias(levels, limit, finest, m)

    deep, shallow = max(sizes.depths), min(sizes.depths)
    depth_residual = 2 * bias_at(deep) - bias_at(shallow)
    cv = [r["variance_ratios"]["control_variates"] for r in runs["ref"]]
    nested = [r["variance_ratios"]["nested_difference"] for r in runs["ref"]]
    reference = {
        "units": len(runs["ref"]),
        "particles_total": len(runs["ref"]) * sizes.groups * sizes.particles,
        "f_eval": ref.value,
        "stderr": np.sqrt(ref.var),
        "syserr": syserr,
        "scale": scale,
        "rel_2stderr": float(np.max(2 * np.sqrt(ref.var))) / scale,
        "rel_syserr": float(np.max(syserr)) / scale,
        "calibration": calibration([r["unit"] for r in runs["ref"]]),
        "cv_variance_ratio_median": statistics.median(cv),
        "nested_variance_ratio_median": statistics.median(nested),
        "euler_bias": {m: float(np.max(np.abs(bias_at(m)))) / scale for m in (8, 16, 32, 64, 128)},
        "richardson_depth_residual": float(np.max(np.abs(depth_residual))) / scale,
        "levels_f_eval": levels,
        "raw_units": [dataclasses.asdict(r["unit"]) for r in runs["ref"]],
    }
    rows = {}

    def add(name, units, bias, dof, compile_s, note):
        unit_s = statistics.median(u.wall_s for u in units)
        row = {"note": note, "units": len(units), "unit_s": unit_s, "compile_s": compile_s}
        row |= {"bias": float(np.max(np.abs(bias))) / scale, "calibration": calibration(units)}
        row["realized_all"], row["z_all"] = realized(pool(units), ref, scale)
        row["fit"] = block_fit(units, ref, scale, sizes.blocks)
        v = np.mean([u.var for u in units], axis=0)
        row["unit_2se"] = float(np.max(2 * np.sqrt(v))) / scale
        row["raw_units"] = [dataclasses.asdict(u) for u in units]
        for target in sizes.targets:
            row[f"measured_{target:g}"] = measured_time(units, bias, ref, scale, target)
            row[f"law_{target:g}"] = law_time(units, bias, scale, target, unit_s, dof)
        rows[name] = row

    g, s = sizes.groups, sizes.seeds
    solver_rows = [(f"a_M{m}", m) for m in sizes.depth_a]
    b_depths = [m for m in (sizes.depth_b, sizes.depth_b_check) if f"b_M{m}" in runs]
    solver_rows += [(f"b_M{m}", m) for m in b_depths]
    for name, m in solver_rows:
        units = [r["unit"] for r in runs[name]]
        compile_s = warm[name] - statistics.median(u.wall_s for u in units)
        if name.startswith("a_"):
            bias = pooled_levels(runs[name])[2]
            note = f"(a) 3 levels {m}/{m // 2}/{m // 4}, CV; bias = its own syserr"
        else:
            bias, note = bias_at(m), f"(b) Euler M={m}, no CV; bias from the reference's levels"
        add(name, units, bias, len(units) * (g - 1), compile_s, note)
        ratios = [r["variance_ratios"]["control_variates"] for r in runs[name]]
        if all(x is not None for x in ratios):
            rows[name]["cv_variance_ratio_median"] = statistics.median(ratios)
    b_units = {m: [r["unit"] for r in runs[f"b_M{m}"]] for m in b_depths}
    names = finite_units[0].keys()
    for name in names:
        units = [fu[name] for fu in finite_units]
        if name.startswith("rich_n"):
            bias, note = depth_residual, "(c) Richardson in n and L; width residual taken as 0"
        elif name.endswith("_richL"):
            bias, note = depth_residual, "Richardson in L only; width bias not included"
        else:
            depth = int(name.split("_L")[1])
            bias, note = bias_at(depth), "ensemble mean; width bias not included"
        compile_s = sum(finite_compile[n, depth] for n, depth in finite_shapes(name, sizes.depths))
        add(name, units, bias, len(units) * (s - 1), compile_s, note)
    rows.update(b_sweep(sizes, b_units, rows, bias_at, scale))
    return {
        "sizes": dataclasses.asdict(sizes),
        "problem": dataclasses.asdict(problem),
        "reference": reference,
        "methods": rows,
        "width_bias": width_bias(finite_units, bias_at, limit, ref, scale),
        "summary": summary(sizes, rows),
        "warm_up_s": warm,
        "finite_compile_s": {f"n{n}_L{d}": t for (n, d), t in finite_compile.items()},
    }


def b_sweep(sizes, b_units, rows, bias_at, scale) -> dict:
    """(b) at larger M by the law: the variance per unit of the M = depth_b units, the unit time
    scaled as (M / depth_b)^q with q measured between depth_b and depth_b_check (q = 1, the
    field step's cost per depth step, where no check units ran)."""
    m0, m1 = sizes.depth_b, sizes.depth_b_check
    q = 1.0
    if f"b_M{m1}" in rows:
        q = math.log(rows[f"b_M{m1}"]["unit_s"] / rows[f"b_M{m0}"]["unit_s"]) / math.log(m1 / m0)
    out = {}
    for m in [m0 * 2**k for k in range(1, 9)]:
        unit_s = rows[f"b_M{m0}"]["unit_s"] * (m / m0) ** q
        row = {"note": f"(b) Euler M={m} by the law, unit time x (M/{m0})^{q:.2f}"}
        row |= {"unit_s": unit_s, "bias": float(np.max(np.abs(bias_at(m)))) / scale, "q": q}
        for target in sizes.targets:
            units = b_units[m0]
            dof = len(units) * (sizes.groups - 1)
            row[f"law_{target:g}"] = law_time(units, bias_at(m), scale, target, unit_s, dof)
        out[f"b_M{m}_law"] = row
    return out


def width_bias(finite_units, bias_at, limit, ref, scale) -> list[dict]:
    """Each ensemble mean against the limit at M = L (the n -> infinity limit of depth L)."""
    out = []
    for name in finite_units[0]:
        if "_L" not in name or name.startswith("rich"):
            continue
        n, depth = (int(x) for x in name[1:].split("_L"))
        est = pool([fu[name] for fu in finite_units])
        diff = est.value - (limit + bias_at(depth))
        j = np.unravel_index(np.argmax(np.abs(diff)), diff.shape)
        se = math.sqrt(float(est.var[j] + ref.var[j]))
        out.append(
            {"width": n, "depth": depth, "rel": float(diff[j]) / scale, "z": float(diff[j]) / se}
        )
    return out


def family(name: str) -> str | None:
    """Which of (a), (b), (c) a row belongs to (None: a finite estimator without width
    extrapolation, shown but not a candidate)."""
    return {"a_": "a", "b_": "b", "ri": "c"}.get(name[:2])


def summary(sizes, rows) -> dict:
    """The fastest variant of (a), (b), (c) per target: measured where the run reached it, else
    by the law; with the ratios to (a)."""
    out = {}
    for target in sizes.targets:
        best = {}
        for name, row in rows.items():
            method = family(name)
            measured = row.get(f"measured_{target:g}")
            if measured is not None:
                found = (measured["time_s"], name, "measured")
            else:
                found = (row[f"law_{target:g}"]["time_s"], name, "extrapolated (law)")
            if method and (method not in best or found[0] < best[method]["time_s"]):
                best[method] = dict(zip(("time_s", "variant", "how"), found))
        for method in ("b", "c"):
            a = best["a"]["time_s"]
            best[method]["over_a"] = best[method]["time_s"] / a if math.isfinite(a) else None
        out[f"{target:g}"] = best
    return out
