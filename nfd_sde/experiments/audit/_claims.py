"""The audit's claims: one final class per claim of the paper, behind `AbstractClaim`.

A claim `measure`s (runs the package's own experiments at the sizes of an `AuditScale`, keeping
their finer-grained resume files under the audit's work directory) and returns plain data; its
`verdict` applies the rule it states (`rule`) to the 95% intervals in that data; its `figure`
and `table` are drawn from the data alone, so a cached claim renders exactly as a fresh one.
This module holds the context and claims 1-3 (kernels, convergence, the backward gap).
"""

import abc
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar, final

import numpy as np
from jaxtyping import PRNGKeyArray
from matplotlib.figure import Figure
from scipy import stats

from ...limit import solve_limit
from ...model import Config, interval95, load_stream
from ...validation import initial_sigma, ode_kernel, relu_expectation
from ..common import new_figure, palette
from ._scales import AuditScale
from ._verdicts import FAILS, HOLDS, INCONCLUSIVE, verdict


@dataclasses.dataclass(frozen=True)
class AuditContext:
    """What every claim measures with: the synthetic-teacher config, the real-data config
    (claims 5 and 7), the sizes, a folder for the experiments' own resume files, a key."""

    config: Config
    data_config: Config
    scale: AuditScale
    work: Path
    key: PRNGKeyArray
    progress: bool = False

    def folder(self, name: str, sizes) -> Path:
        """The work folder of one experiment at these sizes (a dataclass): another grid gets
        another folder, so the experiments' own resume stores never see a changed grid."""
        text = json.dumps(dataclasses.asdict(sizes), sort_keys=True)
        return self.work / f"{name}_{hashlib.sha1(text.encode()).hexdigest()[:10]}"

    def sizes_of(self, claim: "AbstractClaim") -> dict[str, Any]:
        """The claim's sizes at this scale, as plain data (what its cache file is valid for)."""
        sizes = {
            field: None if getattr(self.scale, field) is None
            else dataclasses.asdict(getattr(self.scale, field))
            for field in claim.scale_fields
        }  # fmt: skip
        return json.loads(json.dumps(sizes))


class AbstractClaim(abc.ABC):
    """One claim: `name` (its cache file), `title`, `statement` (the claim in words), `rule` (how
    the verdict is reached); `measure` -> data, `verdict(data)`, `figure(data)`, `table(data)`
    (rows of quantity, value, 95% interval, prediction)."""

    name: ClassVar[str]
    scale_fields: ClassVar[tuple[str, ...]]  # the `AuditScale` fields it measures with
    title: ClassVar[str]
    statement: ClassVar[str]
    rule: ClassVar[str]

    @abc.abstractmethod
    def measure(self, context: AuditContext) -> dict[str, Any]: ...

    @abc.abstractmethod
    def verdict(self, data: dict[str, Any]) -> dict[str, str]: ...

    @abc.abstractmethod
    def figure(self, data: dict[str, Any]) -> Figure: ...

    @abc.abstractmethod
    def table(self, data: dict[str, Any]) -> list[list[str]]: ...


def interval_text(low, high) -> str:
    if low is None or high is None:
        return "-"
    return f"[{low:.4g}, {high:.4g}]"


def value_text(value) -> str:
    return "-" if value is None else f"{value:.4g}"


# ---------------------------------------------------------------- claim 1: kernels at init

ACTIVATIONS = ("linear", "relu")


@final
class KernelClaim(AbstractClaim):
    name = "kernels"
    scale_fields = ("kernels",)
    title = "1. Initialisation kernels against their closed forms"
    statement = (
        "At initialisation the NFD feature kernel <phi(h_t), phi(h_t')> solves "
        "dSigma/dt = beta(t)^2 E[phi(a) phi(b)], (a, b) ~ N(0, Sigma_t): Sigma_0 e^t for a linear "
        "phi, and the degree-1 arc-cosine ODE for ReLU (phi-kernel E[relu relu](Sigma_t))."
    )
    rule = (
        "The limit is solved at infinite depth (three nested depth grids, Richardson-extrapolated) "
        "with its Monte Carlo error (particle groups) and discretisation error. holds if every "
        "closed-form kernel entry (all eval-input pairs, all recorded depths t, both activations) "
        "lies in the limit's simultaneous 95% band (per entry t_q sqrt(stderr^2 + syserr^2), t_q "
        "the Student quantile at 1 - 0.025/k for k entries); fails if any entry lies outside it; "
        "inconclusive if the median per-entry 95% band is wider than 10% of the kernel's scale "
        "sqrt(K(x, x) K(x', x')) (too noisy to test)."
    )

    def measure(self, context: AuditContext) -> dict[str, Any]:
        sizes = context.scale.kernels
        coarse = sizes.depth_steps // 4
        times = [k / coarse for k in range(coarse + 1)]
        out = {"particles": sizes.particles, "depth_steps": sizes.depth_steps, "runs": []}
        for activation in ACTIVATIONS:
            config = context.config.replace(
                model={"activation": activation},
                training={"steps": 0},
                data={"eval_size": sizes.eval_size},
                solver={"particles": sizes.particles, "depth_steps": sizes.depth_steps,
                        "levels": 3, "representation": "field"},
                run={"kernel_depths": times},
            )  # fmt: skip
            stream = load_stream(config)
            result = solve_limit(config, stream, key=context.key)
            kernel = np.asarray(result.kernels["feature_eval"], float)[0]  # (D, P, P)
            band = interval95(result, "kernels.feature_eval")
            sd = band[0] / result.producer["interval95_factor"]
            beta = config.model.beta_profile
            closed = _closed_form(stream.x_eval, np.asarray(result.kernels["t"]), activation, beta)
            dense_t = np.linspace(0.0, 1.0, 41)
            out["runs"].append(
                {
                    "activation": activation,
                    "t": result.kernels["t"],
                    "limit": kernel,
                    "sd": sd,
                    "groups": result.producer["groups"],
                    "closed": closed,
                    "dense_t": dense_t,
                    "dense": _closed_form(stream.x_eval[:2], dense_t, activation, beta),
                    "diverged": result.status["diverged"],
                }
            )
        return out

    def verdict(self, data: dict[str, Any]) -> dict[str, str]:
        count = sum(np.asarray(r["limit"]).size for r in data["runs"])
        if any(r["diverged"] for r in data["runs"]):
            return verdict(INCONCLUSIVE, "a limit solve diverged")
        widths, outside = [], 0
        for r in data["runs"]:
            limit, sd, closed = (np.asarray(r[k], float) for k in ("limit", "sd", "closed"))
            quantile = stats.t.ppf(1 - 0.025 / count, df=r["groups"] - 1)
            outside += int(np.sum(np.abs(limit - closed) > quantile * sd))
            diagonal = np.sqrt(np.abs(np.diagonal(closed, axis1=1, axis2=2)))
            scale = diagonal[:, :, None] * diagonal[:, None, :]  # sqrt(K_ii K_jj)
            widths.append(stats.t.ppf(0.975, df=r["groups"] - 1) * sd / scale)
        median = float(np.median(np.concatenate([w.ravel() for w in widths])))
        where = f"{outside} of {count} entries outside the simultaneous band"
        if outside:
            return verdict(FAILS, f"{where} (median relative half-width {median:.2%})")
        if median > 0.10:
            return verdict(INCONCLUSIVE, f"{where}, but the band is wide ({median:.1%})")
        return verdict(HOLDS, f"{where}; median relative half-width {median:.2%}")

    def figure(self, data: dict[str, Any]) -> Figure:
        figure = new_figure(1, 2, height=4.2)
        for ax, r in zip(figure.axes, data["runs"]):
            limit, sd = np.asarray(r["limit"], float), np.asarray(r["sd"], float)
            dense = np.asarray(r["dense"], float)
            for (i, j), colour in zip(((0, 0), (0, 1), (1, 1)), palette(3)):
                ax.plot(
                    r["dense_t"], dense[:, i, j], "-", color=colour, label=f"closed form ({i},{j})"
                )
                ax.errorbar(r["t"], limit[:, i, j], yerr=1.96 * sd[:, i, j], fmt="o", color=colour,
                            capsize=3, label=f"NFD limit ({i},{j}), 95%")  # fmt: skip
            ax.set(title=f"{r['activation']}: feature kernel at init", xlabel="depth time t",
                   ylabel="<phi(h_t(x_i)), phi(h_t(x_j))>")  # fmt: skip
            ax.grid(alpha=0.3)
            ax.legend(fontsize="x-small")
        return figure

    def table(self, data: dict[str, Any]) -> list[list[str]]:
        rows = []
        for r in data["runs"]:
            limit, sd = np.asarray(r["limit"], float), np.asarray(r["sd"], float)
            closed = np.asarray(r["closed"], float)
            for i, j in ((0, 0), (0, 1)):
                value, half = limit[-1, i, j], 1.96 * sd[-1, i, j]
                rows.append([f"{r['activation']}: K_1(x_{i}, x_{j})", value_text(value),
                             interval_text(value - half, value + half),
                             f"{closed[-1, i, j]:.4g} (closed form)"])  # fmt: skip
        return rows


def _closed_form(x: np.ndarray, times: np.ndarray, activation: str, beta) -> np.ndarray:
    """<phi(h_t(x_i)), phi(h_t(x_j))> at init from the kernel ODE: (T, P, P)."""
    x = np.asarray(x, float)
    pairs = [(i, j) for i in range(len(x)) for j in range(len(x))]
    sigma0 = np.stack([initial_sigma(x[i], x[j]) for i, j in pairs], axis=1)  # (3, pairs)
    sigma = ode_kernel(sigma0, np.asarray(times, float), activation=activation, beta=beta)
    if activation == "relu":
        sigma = np.stack([np.asarray(relu_expectation(s)) for s in sigma])
    return sigma[:, 2].reshape(len(times), len(x), len(x))
