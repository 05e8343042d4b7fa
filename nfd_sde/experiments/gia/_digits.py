"""Standard backprop against independent (decoupled) backward weights in finite networks on the
digits, under depth-muP and under plain muP: `run_gia_digits`.

For each branch scaling (`DepthMuP`: the branch multiplier beta / sqrt(L); `PlainMuP`: the same
network with beta multiplied by sqrt(L), which cancels the 1/sqrt(L)) and each depth L, seed
ensembles of width-n networks are trained with standard backprop and with decoupled backward
weights. Both modes are built from the same keys, so member s of the two ensembles has the same
forward weights (U, W_l, v): the modes differ only by the backward matrices, and the gap
d_s(k) = loss_standard_s(k) - loss_decoupled_s(k) is paired by seed (it is 0 at k = 0).

Per depth the gap is summarised over the seeds by its mean and standard error (`paired_gap`), at
the end of training and averaged over the curve, and its size is fitted against L
(`solvers.fit_loglog`): the curves merge as L grows where the fitted slope's 95% interval lies
below 0.
"""

import abc
import math
import time
from collections.abc import Sequence
from typing import Any, ClassVar, final

import jax
import numpy as np
from jaxtyping import PRNGKeyArray

from solvers import fit_loglog, t95

from ...finite import train_losses_ensemble
from ...model import Config, DataStream, first_nonfinite_step, run_meta
from ..common import count, sizes

BACKWARD_MODES = ("standard", "decoupled")
# The gap summaries fitted against L (`paired_gap`): the mean over seeds of d_s(K) and of the mean
# over k = 1..K of d_s(k) (the curves' systematic gap, which merging curves drive to 0), and of
# their absolute values (the size of one network's gap, which keeps a floor from the independent
# backward draw at finite width).
FITTED = ("final", "curve", "final_abs", "curve_abs")


class AbstractBranchScaling:
    """How the residual branch scales with depth L: the factor `beta_factor(L)` multiplying the
    config's beta profile (the network's branch multiplier is beta(t) / sqrt(L) times it)."""

    name: ClassVar[str]
    label: ClassVar[str]

    @abc.abstractmethod
    def beta_factor(self, depth: int) -> float:
        """The factor on the config's beta profile at depth `depth`."""

    def configure(self, config: Config, depth: int) -> Config:
        """`config` with its beta profile multiplied by `beta_factor(depth)` (the profile must
        be a constant or a list of knots, so that the scaled one is recorded as data)."""
        factor = self.beta_factor(depth)
        profile = config.model.beta_profile.to_serialisable()
        if isinstance(profile, float):
            scaled = profile * factor
        elif isinstance(profile, list):
            scaled = [[t, value * factor] for t, value in profile]
        else:
            raise ValueError(
                f"model.beta_profile={profile!r}: {self.name} scales a constant or a knot list"
            )
        return config.replace(model={"beta_profile": scaled})


@final
class DepthMuP(AbstractBranchScaling):
    """depth-muP: branch multiplier beta / sqrt(L) (the package's network, unchanged)."""

    name = "depth_mup"
    label = "depth-muP (beta / sqrt(L))"

    def beta_factor(self, depth: int) -> float:
        return 1.0


@final
class PlainMuP(AbstractBranchScaling):
    """muP without the depth factor: beta multiplied by sqrt(L), so the branch multiplier is beta
    at every depth; the muP learning rates are unchanged."""

    name = "plain_mup"
    label = "plain muP (no 1/sqrt(L))"

    def beta_factor(self, depth: int) -> float:
        return math.sqrt(depth)


SCALINGS = (DepthMuP(), PlainMuP())


def paired_gap(standard: np.ndarray, decoupled: np.ndarray) -> dict[str, Any]:
    """The standard-minus-decoupled gap of paired loss curves (seeds, steps + 1), summarised over
    the seeds whose two curves are both finite: for `final` (d_s(K)), `final_abs` (|d_s(K)|),
    `curve` (mean over k = 1..K of d_s(k)) and `curve_abs` (of |d_s(k)|), the mean over seeds,
    its standard error (sample standard deviation / sqrt(seeds)) and the 95% interval
    (Student t with seeds - 1 degrees of freedom); None where fewer than two seeds are finite.
    `step0_max_abs` is max_s |d_s(0)|, 0 when the pairs share their forward weights."""
    standard, decoupled = np.asarray(standard, float), np.asarray(decoupled, float)
    if standard.shape != decoupled.shape or standard.ndim != 2 or standard.shape[1] < 2:
        raise ValueError("paired_gap needs two (seeds, steps + 1) arrays of one shape, steps >= 1")
    finite = np.all(np.isfinite(standard), axis=1) & np.all(np.isfinite(decoupled), axis=1)
    gap = (standard - decoupled)[finite]
    per_seed = {
        "final": gap[:, -1],
        "final_abs": np.abs(gap[:, -1]),
        "curve": np.mean(gap[:, 1:], axis=1),
        "curve_abs": np.mean(np.abs(gap[:, 1:]), axis=1),
    }
    out: dict[str, Any] = {"seeds_used": int(finite.sum())}
    for name, values in per_seed.items():
        out[name] = _mean_and_error(values)
    out["step0_max_abs"] = float(np.max(np.abs(gap[:, 0]))) if len(gap) else None
    return out


def _mean_and_error(values: np.ndarray) -> dict[str, Any] | None:
    seeds = len(values)
    if seeds < 2:
        return None
    mean = float(np.mean(values))
    stderr = float(np.std(values, ddof=1) / math.sqrt(seeds))
    half = t95(seeds - 1) * stderr
    return {"mean": mean, "stderr": stderr, "ci95": [mean - half, mean + half]}


def run_gia_digits(
    config: Config,
    stream: DataStream,
    *,
    depths: Sequence[int],
    width: int,
    seeds: int,
    key: PRNGKeyArray,
    scalings: Sequence[AbstractBranchScaling] = SCALINGS,
    progress: bool = False,
) -> dict[str, Any]:
    """Train, for every branch scaling, depth and backward mode, `seeds` width-`width` networks
    on `stream` (the same keys for both modes) and summarise the paired gap between the modes'
    eval loss curves against depth (module docstring). Returns plain data: `runs` (per-seed
    curves; `diverged` counts the seeds whose eval loss stopped being finite, at
    `first_bad_step`), `gaps` (`paired_gap` per scaling and depth) and `fits` (per scaling and fitted
    quantity: slope of |mean gap| in L, its 95% interval and `merge`: True when the interval
    lies below 0, False when above, None otherwise or across a change of sign)."""
    depths = sizes("depths", depths)
    count("width", width)
    count("seeds", seeds)
    if seeds < 2:
        raise ValueError(f"seeds={seeds}: a standard error needs at least 2 seeds")
    keys = jax.random.split(key, seeds)
    runs, gaps = [], []
    for scaling in scalings:
        for depth in depths:
            sized = scaling.configure(config, depth).replace(
                network={"width": width, "depth": depth}
            )
            curves = {}
            for mode in BACKWARD_MODES:
                start = time.perf_counter()
                trained = train_losses_ensemble(
                    sized.replace(network={"backward": mode}), stream, keys=keys
                )
                curves[mode] = trained.loss_eval
                finite = np.all(np.isfinite(trained.loss_eval), axis=1)
                runs.append(
                    {
                        "scaling": scaling.name,
                        "depth": depth,
                        "backward": mode,
                        "beta": scaling.beta_factor(depth),
                        "loss_eval": trained.loss_eval,
                        "loss_train": trained.loss_train,
                        "diverged": int(np.sum(~finite)),
                        "first_bad_step": [first_nonfinite_step(c) for c in trained.loss_eval],
                        "wall_time_s": time.perf_counter() - start,
                    }
                )
                if progress:
                    print(
                        f"{scaling.name}, L={depth}, {mode}: final eval loss "
                        f"{np.nanmean(trained.loss_eval[:, -1]):.4f} "
                        f"({time.perf_counter() - start:.1f} s)",
                        flush=True,
                    )
            gap = paired_gap(curves["standard"], curves["decoupled"])
            mean_curve = (curves["standard"] + curves["decoupled"]) / 2
            gaps.append(
                {
                    "scaling": scaling.name,
                    "depth": depth,
                    **gap,
                    "loss_final": float(np.nanmean(mean_curve[:, -1])),
                    "loss_curve": float(np.nanmean(mean_curve[:, 1:])),
                }
            )
    return {
        "protocol": {
            "data": stream.origin,
            "width": width,
            "depths": list(depths),
            "seeds": seeds,
            "steps": stream.steps,
            "batch": stream.batch,
            "eval_size": int(stream.x_eval.shape[0]),
            "eta": config.training.eta,
            "loss": config.training.loss,
            "scalings": {s.name: s.label for s in scalings},
        },
        "runs": runs,
        "gaps": gaps,
        "fits": [fit_gap(gaps, s.name, q) for s in scalings for q in FITTED],
        "meta": run_meta(config, wall_time=sum(r["wall_time_s"] for r in runs)),
    }


def fit_gap(gaps: Sequence[dict[str, Any]], scaling: str, quantity: str) -> dict[str, Any]:
    """log |gap| = a + slope log L, weighted by the standard errors of the means
    (`fit_loglog(..., stderrs=...)`), over the depths where the mean is non-zero with a positive
    standard error. `signs` records the sign of each mean: a fit across a change of sign measures
    no power law, and says so with `merge` None."""
    rows = [g for g in gaps if g["scaling"] == scaling and g[quantity] is not None]
    rows = [g for g in rows if g[quantity]["mean"] != 0 and g[quantity]["stderr"] > 0]
    out: dict[str, Any] = {"scaling": scaling, "quantity": quantity, "depths": [], "signs": []}
    out.update(slope=None, intercept=None, stderr=None, ci95=None, reduced_chi2=None, merge=None)
    if len(rows) < 2:
        return out
    means = [g[quantity]["mean"] for g in rows]
    fit = fit_loglog(
        [g["depth"] for g in rows],
        np.abs(means),
        stderrs=[g[quantity]["stderr"] for g in rows],
    )
    low, high = fit.ci95
    one_sign = len({math.copysign(1.0, m) for m in means}) == 1
    out.update(
        depths=[g["depth"] for g in rows],
        signs=[int(math.copysign(1.0, m)) for m in means],
        slope=fit.slope,
        intercept=fit.intercept,
        stderr=fit.slope_stderr,
        ci95=[low, high],
        reduced_chi2=fit.reduced_chi2,
        merge=None if not one_sign else (True if high < 0 else (False if low > 0 else None)),
    )
    return out
