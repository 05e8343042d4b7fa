"""Finite networks against their NFD limit: bias, fluctuation, depth error and the backward gap,
each against its own target and resolved against its own noise (docs/compare.md).

`run_compare` solves the decoupled NFD limit once per depth L of the grid, on M = L steps (the
exact n -> infinity limit of the depth-L decoupled network, spec section 2), and trains seed
ensembles of finite ResNets over widths n and depths L in both backward modes, all on one
`DataStream`. With f the eval predictions at every step (K+1, P, C), a sample the mean of an
antithetic pair of networks (v and -v) or one network, and every distance debiased by its noise
floor (`solvers.mean_distance`) and divided by the scale |f_limit| (the limit at the largest M;
absolute numbers when K = 0, where the limit's outputs vanish):

    bias(n, L)         = |E f_n,L - f_limit(M = L)|                 expected O(1/n) (decoupled)
    fluctuation(n, L)  = sqrt(tr Var f_n,L), one network's spread   expected O(n^-1/2)
    depth error(n, L)  = |E f_n,L - f_ref(L)|, f_ref from `depth_reference` (default the next
                         depth of the grid, paired by seed)         expected O(1/L)
    gap(n, L)          = |E (f_standard - f_decoupled)|, paired by seed; extrapolated linearly in
                         1/n to n -> infinity: the reused-weight coupling that the NFD drops

Common random numbers: every depth of a width shares its seeds' noise (`depth_refinement` =
L_max / L), and every limit seed shares its Brownian paths across M, so depth differences carry
little noise. Seeds adapt to width: rounds of seeds until every decoupled bias is resolved to
`precision` (relative standard error) or `max_seeds` is reached; an unresolved bias is reported
as "not resolved, below X". Every finished piece is stored under out_dir/runs/ at once, so a
killed comparison resumes (`_compare_store`).
"""

import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jaxtyping import PRNGKeyArray
from tqdm.auto import tqdm

from solvers import mean_distance

from ...finite import default_chunk, plan_finite
from ...limit import plan_limit
from ...model import Config, DataStream, run_meta, to_dict
from ..common import count, sizes
from ._depth_reference import AbstractDepthReference, depth_reference_of
from ._fits import fit_rates
from ._modes import tends_to_the_limit
from ._runs import limit_solves, pair_means, per_seed_runs, width_ensembles
from ._store import RunStore
from ._summary import diverged, noise, summarise

MODES = ("decoupled", "standard")
MAX_SEEDS = 4096
PRECISION = 0.15
CHUNK = 128


def check_grid(
    *, widths, depths, seeds, particles, depth_steps, limit_seeds, max_seeds=MAX_SEEDS,
    common_noise=False, antithetic=False, vmap_seeds=True, precision=PRECISION,
) -> tuple[tuple[int, ...], tuple[int, ...]]:  # fmt: skip
    """Refuse a bad grid or a bad combination of options with a message naming it; returns the
    sorted widths and depths."""
    widths, depths = sizes("widths", widths), sizes("depths", depths)
    for name, value in (("particles", particles), ("limit_seeds", limit_seeds)):
        count(name, value)
    for name, value in (("seeds", seeds), ("depth_steps", depth_steps)):
        if value is not None:
            count(name, value)
    count("max_seeds", max_seeds)
    if not 0 < precision < 1:
        raise ValueError(f"precision={precision!r}: must be a relative error in (0, 1)")
    if common_noise and any(max(depths) % d for d in depths):
        raise ValueError(
            f"depths={list(depths)}: with common noise across depths every depth must divide the "
            f"largest, {max(depths)}; change the depths or pass --no-common-noise "
            "(common_noise=False)"
        )
    if not vmap_seeds and (seeds is None or common_noise or antithetic):
        raise ValueError(
            "training every seed on its own (vmap_seeds=False, the previous design) needs a "
            "fixed number of seeds, common_noise=False and antithetic=False"
        )
    return widths, depths


def run_compare(
    config: Config,
    stream: DataStream,
    *,
    widths,
    depths,
    particles: int,
    seeds: int | None = None,
    max_seeds: int = MAX_SEEDS,
    limit_seeds: int = 4,
    depth_steps: int | None = None,
    common_noise: bool = True,
    antithetic: bool = True,
    vmap_seeds: bool = True,
    depth_reference: str | AbstractDepthReference = "successive",
    precision: float = PRECISION,
    key: PRNGKeyArray | None = None,
    progress: bool = False,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Compare finite networks with the NFD limit; returns plain data (module docstring).

    `seeds` fixes the seeds per width (None: adaptive, up to `max_seeds`); `limit_seeds` limit
    solves (pairs with `antithetic`) of `particles` particles make each reference.
    `depth_steps=M` solves one limit on M steps for every depth (the previous design) instead of
    one per depth. `common_noise`, `antithetic` and `vmap_seeds` switch the variance reductions
    and the vmapped ensembles off (with all three off and a fixed `seeds`, this is the previous
    design's computation, number for number). `key` defaults to `jax.random.key(run.seed)`.
    With `out_dir`, every finished solve and chunk of seeds is kept under out_dir/runs/ and
    reused by a rerun of the same config and grid; another config or grid there is refused
    unless `overwrite`. Everything is checked before any solve or training.
    """
    widths, depths = check_grid(
        widths=widths, depths=depths, seeds=seeds, particles=particles, depth_steps=depth_steps,
        limit_seeds=limit_seeds, max_seeds=max_seeds, common_noise=common_noise,
        antithetic=antithetic, vmap_seeds=vmap_seeds, precision=precision,
    )  # fmt: skip
    reference = depth_reference_of(depth_reference)
    # each limit seed is one particle system on one depth grid (the M-step limit): the seeds'
    # spread is the limit's Monte Carlo error here
    config = config.replace(
        solver={
            "particles": particles,
            "backward": "decoupled",
            "groups": 1,
            "levels": 1,
            "control_variates": False,
        }
    )
    steps_of = {d: (depth_steps or d) for d in depths}
    limit_steps = sorted(set(steps_of.values()))
    plans = [
        plan_limit(
            config.replace(solver={"depth_steps": m}), dim=stream.dim, steps=stream.steps,
            batch=stream.batch, eval_size=stream.x_eval.shape[0],
        )
        for m in limit_steps
    ]  # fmt: skip
    # the widest, deepest network (the others need less), before any work
    plan_finite(
        config.replace(network={"width": max(widths), "depth": max(depths), "backward": "decoupled"}),
        batch=stream.batch, eval_size=stream.x_eval.shape[0], antithetic=antithetic,
    )  # fmt: skip
    key = jax.random.key(config.run.seed) if key is None else key
    grid = {
        "widths": list(widths), "depths": list(depths), "modes": list(MODES),
        "seeds": seeds, "max_seeds": max_seeds, "precision": precision,
        "particles": particles, "limit_seeds": limit_seeds, "depth_steps": depth_steps,
        "limit_depth_steps": [steps_of[d] for d in depths], "common_noise": common_noise,
        "antithetic": antithetic, "vmap_seeds": vmap_seeds, "depth_reference": reference.name,
        "representation": plans[-1].representation,
        "kernel_depths": list(config.run.kernel_depths),
    }  # fmt: skip
    manifest = {"config": to_dict(config), "grid": grid, "key": _key_data(key)}
    store = RunStore(out_dir, manifest, overwrite=overwrite)
    start = time.perf_counter()
    limit_key, finite_key = jax.random.split(key)
    with tqdm(desc="compare", unit="run", disable=not progress) as bar:

        def tick(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update()

        limits = {}
        for m in limit_steps:
            # common noise: one key for every M (nested grids); otherwise independent solves
            independent = not common_noise and len(limit_steps) > 1
            limits[m] = limit_solves(
                config, stream, depth_steps=m, seeds=limit_seeds, antithetic=antithetic,
                refinement=max(limit_steps) // m if common_noise else 1,
                limit_key=jax.random.fold_in(limit_key, m) if independent else limit_key,
                store=store, tick=tick,
            )  # fmt: skip
        limit_time = time.perf_counter() - start
        scale = _scale(limits[max(limit_steps)], stream, antithetic)
        if vmap_seeds:
            ensembles = {}
            for width in widths:
                network = config.replace(
                    network={"width": width, "depth": max(depths), "backward": "decoupled"}
                )
                chunk = min(CHUNK, default_chunk(network, antithetic=antithetic), seeds or CHUNK)
                rule = _Rounds(
                    limits, steps_of, scale, antithetic, seeds, max_seeds, precision, chunk
                )
                cells = width_ensembles(
                    config, stream, width=width, depths=depths, modes=MODES,
                    finite_key=finite_key, common_noise=common_noise, antithetic=antithetic,
                    chunk=chunk, first=seeds or min(chunk, max_seeds), next_total=rule,
                    store=store, tick=tick,
                )  # fmt: skip
                ensembles |= {(mode, width, d): arrays for (mode, d), arrays in cells.items()}
        else:
            ensembles = per_seed_runs(
                config, stream, widths=widths, depths=depths, modes=MODES, seeds=seeds,
                finite_key=finite_key, store=store, tick=tick,
            )  # fmt: skip
    summary = summarise(grid, limits, ensembles, scale=scale["value"], reference=reference)
    return {
        "grid": grid,
        "scale": scale,
        "limits": [_limit_record(m, limits[m], antithetic) for m in limit_steps],
        "ensembles": [_ensemble_record(cell, arrays) for cell, arrays in ensembles.items()],
        "summary": summary,
        "fits": fit_rates(grid, summary),
        "config": to_dict(config),
        "meta": run_meta(
            config,
            wall_time=time.perf_counter() - start,
            limit_wall_time_s=limit_time,
            finite_wall_time_s=time.perf_counter() - start - limit_time,
            pieces_reused=store.reused,
            pieces_saved=store.saved,
        ),
    }


class _Rounds:
    """The adaptive seed rule of one width: after each round, the total seeds for the next (None:
    stop). A decoupled bias needs no more seeds once it is resolved with relative standard error
    <= `precision`, or once the finite ensemble's noise is under a quarter of the limit's (then
    only a better limit helps) or zero (outputs at initialisation of antithetic pairs).
    Otherwise the next total is what would reach `precision` (errors fall like 1/sqrt(seeds)),
    four times as many where nothing is resolved yet, but at most twice as many as now, rounded
    up to whole chunks (a partial chunk is padded: its seeds would be trained anyway), and at
    most `max_seeds`."""

    def __init__(self, limits, steps_of, scale, antithetic, seeds, max_seeds, precision, chunk=1):
        self.limits, self.steps_of, self.scale = limits, steps_of, scale["value"]
        self.antithetic, self.fixed, self.max_seeds = antithetic, seeds, max_seeds
        self.precision, self.chunk = precision, chunk

    def __call__(self, cells) -> int | None:
        current = len(pair_means(next(iter(cells.values()))["f_eval"], self.antithetic))
        if self.fixed is not None or current >= self.max_seeds:
            return None
        wanted = 0.0
        for (mode, depth), arrays in cells.items():
            limit = self.limits[self.steps_of[depth]]
            if not tends_to_the_limit(mode) or diverged(arrays)[0] or diverged(limit)[0]:
                continue
            finite = pair_means(arrays["f_eval"], self.antithetic)
            reference = pair_means(limit["f_eval"], self.antithetic)
            distance = mean_distance([(1.0, finite), (-1.0, reference)], scale=self.scale)
            ratio = distance.relative_stderr / self.precision
            helps = noise(finite) > 0 and not noise(finite) < noise(reference) / 4
            if (distance.resolved and ratio <= 1) or not helps:
                continue
            wanted = max(wanted, current * ratio**2 if distance.resolved else 4.0 * current)
        if wanted <= current:
            return None
        total = math.ceil(min(2 * current, wanted) / self.chunk) * self.chunk
        return int(min(self.max_seeds, total))


def _scale(limit: dict[str, np.ndarray], stream: DataStream, antithetic: bool) -> dict[str, Any]:
    """|f_limit| over every step, eval input and output; absolute numbers (scale 1) when there
    are no training steps (the limit's outputs at initialisation vanish) or it is not finite."""
    norm = float(np.linalg.norm(pair_means(limit["f_eval"], antithetic).mean(axis=0)))
    if stream.steps == 0 or not (math.isfinite(norm) and norm > 0):
        why = "no training steps" if stream.steps == 0 else f"the limit's norm is {norm:.3g}"
        return {"value": 1.0, "kind": "absolute", "why": why}
    return {"value": norm, "kind": "relative", "why": "divided by |f_limit| at the largest M"}


def _limit_record(steps: int, arrays: dict[str, np.ndarray], antithetic: bool) -> dict[str, Any]:
    samples = pair_means(arrays["f_eval"], antithetic)
    reference = samples.mean(axis=0)
    norm = float(np.linalg.norm(reference))
    count_, first = diverged(arrays)
    kernels = {
        name: pair_means(arrays[name], antithetic).mean(axis=0)
        for name in ("feature_eval", "feature_train", "grad_train")
    }
    # one sample's spread sqrt(tr Cov) and the reference's own error sqrt(tr Cov / samples)
    spread = math.sqrt(float(np.sum(samples.var(axis=0, ddof=1)))) if len(samples) > 1 else None
    relative = norm if norm > 0 else math.nan
    mc = {
        "f_eval_single": None if spread is None else spread / relative,
        "f_eval_mean": None if spread is None else spread / math.sqrt(len(samples)) / relative,
    }
    return {
        "depth_steps": steps,
        "samples": len(samples),
        "solves": len(arrays["f_eval"]),
        "f_eval": reference,
        "f_train": pair_means(arrays["f_train"], antithetic).mean(axis=0),
        "norm": norm,
        "mc_error": mc,
        "kernels": kernels,
        "kernel_t": [int(p) / steps for p in arrays["kernel_layers"]],
        "solve_f_eval": arrays["f_eval"],
        "wall_time_s": float(np.sum(arrays["wall_time_s"])),
        "diverged": count_,
        "first_bad_step": first,
    }


def _ensemble_record(cell, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    mode, width, depth = cell
    count_, first = diverged(arrays)
    return {
        "mode": mode,
        "width": width,
        "depth": depth,
        "members": len(arrays["f_eval"]),
        "samples": int(arrays["kernel_count"]),
        "kernel_t": [int(layer) / depth for layer in arrays["kernel_layers"]],
        "kernels": {
            name: arrays[f"kernel_sum_{name}"] / arrays["kernel_count"]
            for name in ("feature_eval", "feature_train", "grad_train")
        },
        "wall_time_s": float(np.sum(arrays["wall_time_s"])),
        "diverged": count_,
        "first_bad_step": first,
    }


def _key_data(key) -> list[int]:
    return np.asarray(jax.random.key_data(key)).ravel().tolist()
