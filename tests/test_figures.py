"""Every figure reads at a glance: drawn from cheap data, no legend lies outside the figure or
over an axis label, no axis label or title over another panel (`tests/_figures.py`). The
figures of `compare`, `collapse`, `transfer`, `norms` and `audit` are checked the same way where
their end-to-end tests produce the data."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from nfd_sde.experiments import plot_kernels_along_depth, plot_loss_curves, plot_overlay
from nfd_sde.experiments.common._plots import new_figure
from nfd_sde.experiments.single_runs._demo_plots import plot_demo
from nfd_sde.model import Result
from tests._figures import layout_defects

K, P = 4, 5


def _result(kind: str, **producer) -> Result:
    rng = np.random.default_rng(len(producer))
    f_eval = rng.normal(size=(K + 1, P, 1))
    loss = 1.0 / np.arange(1, K + 2)
    return Result(
        f_train=np.zeros((K, 2, 1)), f_eval=f_eval, loss_train=loss[:K], loss_eval=loss,
        kernels={"t": [0.0]}, config={}, producer={"kind": kind, **producer},
        meta={"wall_time_s": 1.0}, stderr={"f_eval": 0.1 * np.abs(f_eval), "loss_eval": 0.1 * loss},
    )  # fmt: skip


# the longest labels the commands write: a limit with its groups, extrapolated grids and space
LIMIT = _result("limit", particles=4096, groups=4, grids=[16, 8, 4], depth_steps=16,
                representation="field", backward="decoupled")  # fmt: skip


def _with_kernels(result: Result, band: bool) -> Result:
    eye = np.broadcast_to(np.eye(P), (K + 1, 3, P, P)) * np.linspace(0.5, 0.8, 3)[:, None, None]
    result.kernels = {"t": [0.0, 0.5, 1.0], "feature_eval": eye, "grad_train": eye[:K, :, :2, :2]}
    if band:
        result.stderr = dict(result.stderr, kernels={k: 0.02 * v for k, v in result.kernels.items()
                                                     if k != "t"})  # fmt: skip
    return result


def _demo_summary() -> dict:
    rows = []
    for mode in ("decoupled", "standard"):
        for width, resolved in ((8, True), (16, True), (32, True), (64, False)):
            value = 2.4 / width
            rows.append({"mode": mode, "width": width, "diverged": False, "seeds": 128,
                         "distance": value, "noise_floor": 0.6 / width**0.5, "debiased": value,
                         "stderr": 0.1 * value, "low": 0.8 * value if resolved else 0.0,
                         "high": 1.2 * value, "resolved": resolved,
                         "loss_eval": np.linspace(0.09, 0.04, K + 1) + 0.1 / width,
                         "loss_eval_stderr": np.full(K + 1, 0.002)})  # fmt: skip
    rate = {"sizes": [8, 16, 32], "values": [0.3, 0.15, 0.075], "slope": -1.0,
            "ci95": [-1.2, -0.8], "prefactor": 2.4, "expected": -1.0}  # fmt: skip
    return {"depth": 4, "rows": rows, "rate": rate, "caveats": [],
            "limit_loss_eval": np.linspace(0.05, 0.03, K + 1),
            "limit_loss_eval_stderr": np.full(K + 1, 0.001)}  # fmt: skip


FIGURES = {
    "train/solve losses.png": lambda path: plot_loss_curves(
        {
            "NFD limit (4096 particles x 4 groups, depth steps 4,8,16, field space, decoupled)": LIMIT,
            "finite ResNet (width 256, depth 16, decoupled backward)": _result("finite", width=256),
        },
        path,
    ),  # fmt: skip
    "overlay": lambda path: plot_overlay(
        LIMIT,
        {f"n = {n}": _result("finite", width=n, backward="decoupled") for n in (64, 256)},
        path,
    ),
    "demo overlay.png": lambda path: plot_demo(_demo_summary(), path),
    "kernels along depth": lambda path: plot_kernels_along_depth(
        _with_kernels(_result("limit", particles=512, depth_steps=4), band=True),
        {"finite n = 64": _with_kernels(_result("finite", width=64), band=False)},
        path,
    ),
}


def test_the_kernel_figure_draws_the_limit_s_band(tmp_path):
    figure = FIGURES["kernels along depth"](tmp_path / "kernels.png")
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "NFD limit's 95% band" in labels


@pytest.mark.parametrize("name", FIGURES)
def test_figure_layout(name, tmp_path):
    figure = FIGURES[name](tmp_path / "figure.png")
    assert layout_defects(figure) == []


def test_the_layout_check_fails_on_a_legend_outside_or_over_labels():
    figure = new_figure(1, 2, width=8.0)
    left, right = figure.axes
    for ax in figure.axes:
        ax.plot([0, 1], [0, 1], label="a label long enough to reach over the next panel's labels")
        ax.set(xlabel="x", ylabel="a y label")
    left.legend(loc="center left", bbox_to_anchor=(0.5, 0.5))
    assert any("overlaps the y label of axes 1" in d for d in layout_defects(figure))
    right.legend(loc="upper left", bbox_to_anchor=(1.5, 1.0))
    assert any("legend of axes 1 lies (partly) outside" in d for d in layout_defects(figure))
    assert isinstance(figure, Figure)
