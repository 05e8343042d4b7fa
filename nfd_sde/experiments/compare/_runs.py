"""The work of a comparison: limit solves and finite seed ensembles, each piece kept in the
`RunStore` the moment it finishes and reused when it is already there.

Every piece is a dict of arrays with a leading member axis: `f_eval` (members, K+1, P, C),
`f_train` (members, K, B, C), `loss_eval`, `loss_train`. Limit pieces also carry their kernels per
member; finite pieces carry their kernels reduced over the piece's samples (`kernel_sum_*`,
`kernel_sumsq_*`, `kernel_count`), which is all the summary needs. With antithetic pairs the
members are interleaved, [seed 0, its mirror, seed 1, its mirror, ...] (`train_ensemble`), and a
*sample* is a pair's mean; otherwise a sample is a member.

Keys. `limit_key` is split into the limit seeds; with common noise, limit seed r solves every
depth-step count M from the same key, with its noise drawn `refinement` = M_max / M times finer
and summed (`build_solver`), so the solves on nested grids share their Brownian paths (without,
`run_compare` folds M into the key); its mirror has the readouts V negated. Finite seed s of width n has the key fold_in(fold_in(finite_key, n), s),
shared by every depth (`depth_refinement` = L_max / L: common random numbers across depths) and
by both backward modes (the gap is paired); without common noise it is folded with L too.
`per_seed_runs` is the previous design, kept to reproduce its numbers: `train_finite` per seed,
with the key fold_in(fold_in(split(finite_key, seeds)[s], n), L).
"""

from collections.abc import Callable, Iterable

import equinox as eqx
import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from ...finite import train_ensemble, train_finite
from ...limit import build_solver, plan_for, solve_limit
from ...model import Config, DataStream, Result
from ._store import RunStore

KERNELS = ("feature_eval", "feature_train", "grad_train")
OUTPUTS = ("f_eval", "f_train", "loss_eval", "loss_train")


def limit_solves(
    config: Config,
    stream: DataStream,
    *,
    depth_steps: int,
    refinement: int,
    seeds: int,
    antithetic: bool,
    limit_key: PRNGKeyArray,
    store: RunStore,
    tick: Callable[[str], None],
) -> dict[str, np.ndarray]:
    """Every solve of the decoupled limit on `depth_steps` steps (`config.solver` gives the
    particles), stacked as members."""
    config = config.replace(solver={"depth_steps": depth_steps, "backward": "decoupled"})
    pieces = []
    for seed, key in enumerate(jax.random.split(limit_key, seeds)):
        for sign in (1.0, -1.0)[: 2 if antithetic else 1]:
            name = f"limit_M{depth_steps}_r{seed}_{'mirror' if sign < 0 else 'plain'}"
            tick(f"NFD limit M={depth_steps}, seed {seed}{' mirror' if sign < 0 else ''}")
            arrays = store.load(name)
            if arrays is None:
                arrays = _result_arrays(_solve(config, stream, key, refinement, sign))
                store.save(name, arrays)
            pieces.append(arrays)
    return merge(pieces)


def _solve(config: Config, stream: DataStream, key, refinement: int, sign: float) -> Result:
    if refinement == 1 and sign > 0:
        return solve_limit(config, stream, key=key)
    with jax.enable_x64(config.run.dtype == "float64"):
        key_solver, key_state = jax.random.split(key)
        solver = build_solver(
            config, stream, key=key_solver, plan=plan_for(config, stream), refinement=refinement
        )
        state = solver.init_state(key=key_state)
        state = eqx.tree_at(
            lambda s: (s.readout, s.initial_readout),
            state,
            (sign * state.readout, sign * state.initial_readout),
        )
    return solve_limit(config, stream, key=key, solver=solver, state=state)


def width_ensembles(
    config: Config,
    stream: DataStream,
    *,
    width: int,
    depths: tuple[int, ...],
    modes: tuple[str, ...],
    finite_key: PRNGKeyArray,
    common_noise: bool,
    antithetic: bool,
    chunk: int,
    first: int,
    next_total: Callable[[dict], int | None],
    store: RunStore,
    tick: Callable[[str], None],
) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """Ensembles of one width at every depth and mode, in rounds of seeds: `first` seeds, then
    `next_total(ensembles so far)` seeds in all, until it returns None (or no more). Each chunk of
    `chunk` seeds is one stored piece."""
    base = jax.random.fold_in(finite_key, width)
    deepest = max(depths)
    pieces: dict[tuple[str, int], list] = {(m, d): [] for d in depths for m in modes}
    done, total = 0, first
    while total > done:
        for start in range(done, total, chunk):
            stop = min(start + chunk, total)
            seeds = np.arange(start, stop)
            for depth in depths:
                keys = jax.vmap(lambda s: jax.random.fold_in(base, s))(seeds)
                if not common_noise:
                    keys = jax.vmap(lambda k, d=depth: jax.random.fold_in(k, d))(keys)
                refinement = deepest // depth if common_noise else 1
                for mode in modes:
                    name = f"{mode}_n{width}_L{depth}_s{start}-{stop}"
                    tick(f"{mode} n={width} L={depth} seeds {start}-{stop}")
                    arrays = store.load(name)
                    if arrays is None:
                        network = config.replace(
                            network={"width": width, "depth": depth, "backward": mode}
                        )
                        result = train_ensemble(
                            network,
                            stream,
                            keys=keys,
                            depth_refinement=refinement,
                            antithetic=antithetic,
                            chunk=chunk,
                        )
                        arrays = _reduced(result, antithetic)
                        store.save(name, arrays)
                    pieces[(mode, depth)].append(arrays)
        done = total
        merged = {cell: merge(parts) for cell, parts in pieces.items()}
        total = next_total(merged) or done
    return merged


def per_seed_runs(
    config: Config,
    stream: DataStream,
    *,
    widths: Iterable[int],
    depths: Iterable[int],
    modes: tuple[str, ...],
    seeds: int,
    finite_key: PRNGKeyArray,
    store: RunStore,
    tick: Callable[[str], None],
) -> dict[tuple[str, int, int], dict[str, np.ndarray]]:
    """The previous design: `train_finite` for every width, depth, seed and mode."""
    seed_keys = jax.random.split(finite_key, seeds)
    out = {}
    for width in widths:
        for depth in depths:
            for mode in modes:
                pieces = []
                for seed in range(seeds):
                    name = f"{mode}_n{width}_L{depth}_seed{seed}"
                    tick(f"{mode} n={width} L={depth} seed {seed}")
                    arrays = store.load(name)
                    if arrays is None:
                        key = jax.random.fold_in(jax.random.fold_in(seed_keys[seed], width), depth)
                        network = config.replace(
                            network={"width": width, "depth": depth, "backward": mode}
                        )
                        result = train_finite(network, stream, key=key)
                        arrays = _reduced(_with_member_axis(result), antithetic=False)
                        store.save(name, arrays)
                    pieces.append(arrays)
                out[(mode, width, depth)] = merge(pieces)
    return out


def _result_arrays(result: Result) -> dict[str, np.ndarray]:
    arrays = {name: np.asarray(getattr(result, name))[None] for name in OUTPUTS}
    arrays |= {name: np.asarray(result.kernels[name])[None] for name in KERNELS}
    arrays["kernel_layers"] = np.asarray(result.kernels["layers"])
    arrays["wall_time_s"] = np.asarray([result.meta["wall_time_s"]])
    return arrays


def _with_member_axis(result: Result) -> Result:
    for name in OUTPUTS:
        setattr(result, name, np.asarray(getattr(result, name))[None])
    result.kernels = {
        **result.kernels,
        **{name: np.asarray(result.kernels[name])[None] for name in KERNELS},
    }
    return result


def _reduced(result: Result, antithetic: bool) -> dict[str, np.ndarray]:
    """A finite piece: per-member outputs and losses; kernels summed over the piece's samples."""
    arrays = {name: np.asarray(getattr(result, name)) for name in OUTPUTS}
    for name in KERNELS:
        samples = pair_means(np.asarray(result.kernels[name]), antithetic)
        arrays[f"kernel_sum_{name}"] = samples.sum(axis=0)
        arrays[f"kernel_sumsq_{name}"] = np.square(samples).sum(axis=0)
    arrays["kernel_count"] = np.asarray(len(samples))
    arrays["kernel_layers"] = np.asarray(result.kernels["layers"])
    arrays["wall_time_s"] = np.asarray([result.meta["wall_time_s"]])
    return arrays


def pair_means(members: np.ndarray, antithetic: bool) -> np.ndarray:
    """Independent samples: the means of antithetic pairs (interleaved members), or the members."""
    members = np.asarray(members, dtype=float)
    if not antithetic:
        return members
    return members.reshape(len(members) // 2, 2, *members.shape[1:]).mean(axis=1)


def merge(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Pieces of one ensemble as one: members concatenated, kernel sums added."""
    merged = {}
    for name in pieces[0]:
        values = [np.asarray(p[name]) for p in pieces]
        if name.startswith("kernel_sum") or name == "kernel_count":
            merged[name] = np.sum(values, axis=0)
        elif name == "kernel_layers":
            merged[name] = values[0]
        else:
            merged[name] = np.concatenate(values)
    return merged
