"""Two-layer blocks: the first internal layer's collapse under depth-muP and its L^c correction,
the muP coordinate check, the transfer sweep's bookkeeping (with a fake trainer), pre- vs
post-activation norms, and the `collapse` / `transfer` / `norms` commands.

Slope windows: Z standard errors of the fitted slope, the larger of the seed spread (standard
error of per-seed slopes) and the fit's own standard error, plus a finite-L curvature budget of
0.05 (over L = 4..64 the measured slopes at the expected order sit within 0.03 of it for 1 and 3
steps). The standard error itself is capped so that the window cannot silently grow.
"""

import argparse
import functools
import json
import math

import jax
import numpy as np
import pytest

from nfd_sde import Config, load_config, load_stream
from nfd_sde.experiments import (
    COMMANDS,
    run_collapse,
    run_norms,
    run_transfer,
    transfer_run_name,
)
from nfd_sde.experiments.common._arguments import learning_rates_type, numbers_type, sizes_type
from nfd_sde.experiments.two_layer._plots import (
    plot_collapse,
    plot_coordinate_check,
    plot_norms,
    plot_transfer,
)
from nfd_sde.finite import LossCurves, train_finite, train_losses, train_losses_ensemble
from nfd_sde.validation import first_layer_change_exponent, forward_second_moment
from tests._figures import layout_defects

Z = 4.0  # a false failure has probability ~6e-5 per check
CURVATURE = 0.05
MAX_SLOPE_SE = 0.06
DEPTHS = (4, 8, 16, 32, 64)


def _config(**training) -> Config:
    return Config().replace(
        model={"block": "two_layer", "activation": "relu", "dim": 8},
        training={"eta": 0.5, "batch": 8, "steps": 1, **training},
        data={"eval_size": 8},
    )


@functools.cache
def _collapse() -> dict:
    config = _config()
    return run_collapse(
        config,
        load_stream(config),
        depths=DEPTHS,
        exponents=(0.0, 0.5),
        widths=(256,),
        seeds=6,
        steps=1,
        key=jax.random.key(0),
    )


def _slope(c: float, quantity: str) -> dict:
    return next(f for f in _collapse()["slopes"] if f["c"] == c and f["quantity"] == quantity)


def _assert_slope(fit: dict, expected: float) -> None:
    se = max(fit["seed_se"], fit["stderr"])
    assert se < MAX_SLOPE_SE, fit
    assert abs(fit["slope"] - expected) < Z * se + CURVATURE, (fit, expected)


@pytest.mark.slow
@pytest.mark.parametrize("c", [0.0, 0.5])
def test_first_layer_change_scales_like_l_to_the_c_minus_half(c):
    """Delta u_l = O(L^{c - 1/2}): slope -1/2 without the correction, ~0 with c = 1/2."""
    _assert_slope(_slope(c, "first_layer"), first_layer_change_exponent(c))


def test_second_layer_and_total_change_depth_independent():
    """L x (per-layer block-output change) and the total change Delta h_L are O(1) in L."""
    _assert_slope(_slope(0.0, "block_output"), 0.0)
    _assert_slope(_slope(0.0, "total"), 0.0)


def test_correction_makes_total_change_grow():
    """With c = 1/2 the first layers' coherent contribution to h_L grows like L^c on top of the
    O(1) second-layer part, so the total change's slope lies strictly between 0 and 1/2."""
    fit = _slope(0.5, "total")
    assert Z * fit["seed_se"] < fit["slope"] < 0.5 - Z * fit["seed_se"], fit


@pytest.mark.slow
def test_first_layer_exponent_after_several_steps():
    """Three SGD steps, L up to 128 and an intermediate exponent: slope c - 1/2 still."""
    config = _config(steps=3)
    result = run_collapse(
        config,
        load_stream(config),
        depths=(*DEPTHS, 128),
        exponents=(0.0, 0.25, 0.5),
        widths=(256,),
        seeds=6,
        steps=3,
        key=jax.random.key(2),
    )
    for fit in result["slopes"]:
        if fit["quantity"] == "first_layer":
            _assert_slope(fit, first_layer_change_exponent(fit["c"]))
        elif fit["quantity"] == "block_output":
            _assert_slope(fit, 0.0)


def test_per_layer_changes_recorded():
    for run in _collapse()["runs"]:
        depth = run["depth"]
        assert run["layers"]["first_layer"].shape == (depth,)
        assert run["layers"]["block_output"].shape == (depth,)
        assert run["layers"]["total"].shape == (depth + 1,)
        assert run["coordinates"]["h"].shape == (2, depth + 1)
        assert run["coordinates"]["u"].shape == (2, depth)
        assert run["coordinates"]["df"].shape == (2,)
        assert run["coordinates"]["dh"][0].max() == 0.0
        assert len(run["aggregate"]["first_layer"]) == 6


def test_coordinate_check_flat_across_width():
    """muP: the one-step feature change and the activations do not grow or shrink with width.
    Seed-mean rms Delta h_L at n = 64 and 256 agree within Z standard errors plus an O(n^-1/2)
    finite-width budget of 1/sqrt(64) (a standard-parametrisation learning rate would change
    it by a factor 4 between these widths)."""
    config = _config(steps=2)
    result = run_collapse(
        config,
        load_stream(config),
        depths=(8,),
        exponents=(0.0,),
        widths=(64, 256),
        seeds=4,
        steps=2,
        key=jax.random.key(1),
    )
    assert result["slopes"] == []
    runs = {r["width"]: r for r in result["runs"]}
    total = {n: np.array(r["aggregate"]["total"]) for n, r in runs.items()}
    se = math.sqrt(sum(v.var(ddof=1) / len(v) for v in total.values()))
    gap = abs(total[256].mean() - total[64].mean())
    assert gap < Z * se + total[256].mean() / math.sqrt(64), (total, se)
    for name in ("h", "u"):
        narrow, wide = runs[64]["coordinates"][name], runs[256]["coordinates"][name]
        assert np.all(np.abs(narrow - wide) < 0.1 * wide), name  # |a| ~ O(1), seed SE ~ 1e-2


def test_train_losses_matches_train_finite():
    """The scanned trainer takes the same steps as `train_finite` (float32 round-off)."""
    config = _config(steps=3, first_layer_exponent=0.5).replace(network={"width": 16, "depth": 4})
    stream = load_stream(config)
    reference = train_finite(config, stream, key=jax.random.key(3))
    curves = train_losses(config, stream, key=jax.random.key(3))
    np.testing.assert_allclose(curves.loss_train, reference.loss_train, rtol=1e-5)
    np.testing.assert_allclose(curves.loss_eval, reference.loss_eval, rtol=1e-5)
    keys = jax.random.split(jax.random.key(4), 3)
    ensemble = train_losses_ensemble(config, stream, keys=keys)
    for i in (0, 2):  # the vmapped members are the per-key runs (float32 round-off)
        single = train_losses(config, stream, key=keys[i])
        np.testing.assert_allclose(ensemble.loss_train[i], single.loss_train, rtol=1e-5)
        np.testing.assert_allclose(ensemble.loss_eval[i], single.loss_eval, rtol=1e-5)


def test_feature_norms_pre_matches_closed_form_and_post_is_measured():
    """Pre-activation, one-layer ReLU blocks at init: E[h_l^2] / E[h_0^2] = (1 + 1/(2L))^l,
    within the sampling error of an rms over width x eval inputs x seeds (~3% here; window
    10%). Post-activation norms are only checked to be recorded and finite."""
    config = Config().replace(data={"eval_size": 8}, training={"steps": 1})
    norms = run_norms(
        config, load_stream(config), depths=(16,), width=128, seeds=2, key=jax.random.key(0)
    )
    for run in norms["runs"]:
        init = np.asarray(run["init"])
        assert init.shape == (run["depth"] + 1,)
        assert np.all(np.isfinite(init))
        if run["block_order"] == "pre":
            t = np.arange(run["depth"] + 1) / run["depth"]
            ratio = (init / init[0]) ** 2
            expected = forward_second_moment(t, activation="relu", depth=run["depth"])
            np.testing.assert_allclose(ratio, expected, rtol=0.1)


# ---------------------------------------------------------------------------------------------
# The transfer sweep's bookkeeping, with a fake trainer


LOG2_LRS = (-3, -2, -1, 0, 1, 2, 3)


def _fake_optimum(depth: int, c: float) -> float:
    """log2 of the optimal learning rate: moves by -1/2 per doubling of L at c = 0, fixed at
    c = 1/2."""
    return 1.0 - (0.5 - c) * math.log2(depth)


class FakeTrainer:
    """Final loss base(L) * exp((log2 eta - optimum)^2 / 4) * (1 + seed / 100): log-quadratic,
    so the parabola refinement is exact. Diverges two octaves above the optimum (a finite loss
    1e4 x the initial one) and NaN three or more octaves above. Raises KeyboardInterrupt once
    `interrupt_after` runs have been trained."""

    def __init__(self, interrupt_after: int | None = None, shift: float = 0.0):
        self.calls = []
        self.interrupt_after = interrupt_after
        self.shift = shift

    def __call__(self, config, stream, *, key):
        if self.interrupt_after is not None and len(self.calls) >= self.interrupt_after:
            raise KeyboardInterrupt
        depth, c = config.network.depth, config.training.first_layer_exponent
        x = math.log2(config.training.eta)
        self.calls.append((c, depth, config.network.width, x, config.run.seed))
        optimum = _fake_optimum(depth, c) + self.shift
        final = 0.1 / depth * math.exp((x - optimum) ** 2 / 4) * (1 + config.run.seed / 100)
        if x - optimum >= 3:
            final = math.nan
        elif x - optimum >= 2:
            final = 1e4
        loss_train = np.full(stream.steps, final)
        loss_train[0] = 1.0
        loss_eval = final + (1.0 - final) * np.linspace(1.0, 0.0, stream.steps + 1)
        return LossCurves(loss_train=loss_train, loss_eval=loss_eval)


def _sweep(out, trainer, **kwargs):
    config = Config().replace(model={"block": "two_layer"}, training={"steps": 4})
    grid = dict(
        depths=(4, 16),
        widths=(32,),
        lrs=[2.0**k for k in LOG2_LRS],
        exponents=(0.0, 0.5),
        seeds=2,
    )
    grid |= kwargs
    return run_transfer(config, out_dir=out, train_fn=trainer, **grid)


def test_sweep_finds_optimum_and_marks_divergence(tmp_path):
    trainer = FakeTrainer()
    summary = _sweep(tmp_path, trainer)
    assert len(trainer.calls) == 2 * 2 * 7 * 2
    assert len(list((tmp_path / "runs").glob("*.json"))) == len(trainer.calls)
    for panel in summary["panels"]:
        c = panel["c"]
        expected = [_fake_optimum(d, c) for d in panel["depths"]]
        for criterion in ("train", "eval"):
            stats = panel[criterion]
            assert stats["optimum_log2_lr"] == expected
            np.testing.assert_allclose(stats["optimum_log2_lr_interp"], expected, atol=1e-9)
            assert stats["spread_log2_lr"] == pytest.approx(max(expected) - min(expected))
            for i, depth in enumerate(panel["depths"]):
                above = np.array(LOG2_LRS) - expected[i]
                diverged = np.array(stats["diverged"][i])
                np.testing.assert_array_equal(diverged, np.where(above >= 2, 2, 0))
                assert all((m is None) == (a >= 2) for m, a in zip(stats["mean"][i], above))
                assert stats["best_loss"][i] == pytest.approx(0.1 / depth * 1.005)
    spreads = summary["spread_log2_lr"]["train"]
    assert spreads == {"c=0.0, n=32": 1.0, "c=0.5, n=32": 0.0}
    with (tmp_path / "transfer.json").open() as fh:
        assert json.load(fh)["panels"] == summary["panels"]
    name = transfer_run_name(c=0.0, depth=16, width=32, lr=8.0, seed=0)
    with (tmp_path / "runs" / f"{name}.json").open() as fh:
        run = json.load(fh)
    assert run["diverged"] and run["final_train"] is None  # NaN stored as null


def test_sweep_interpolates_between_grid_points(tmp_path):
    summary = _sweep(tmp_path, FakeTrainer(shift=0.3), exponents=(0.5,))
    stats = summary["panels"][0]["train"]
    assert stats["optimum_log2_lr"] == [1.0, 1.0]
    np.testing.assert_allclose(stats["optimum_log2_lr_interp"], [1.3, 1.3], atol=1e-9)


def test_sweep_resumes_after_interrupt_without_redoing_runs(tmp_path):
    total = 2 * 2 * 7 * 2
    with pytest.raises(KeyboardInterrupt):
        _sweep(tmp_path, FakeTrainer(interrupt_after=5))
    assert len(list((tmp_path / "runs").glob("*.json"))) == 5
    assert not (tmp_path / "transfer.json").exists()
    resumed = FakeTrainer()
    summary = _sweep(tmp_path, resumed)
    assert len(resumed.calls) == total - 5
    assert (summary["runs_trained"], summary["runs_resumed"]) == (total - 5, 5)
    reference = _sweep(tmp_path / "fresh", FakeTrainer())
    assert summary["panels"] == reference["panels"]
    again = FakeTrainer()
    _sweep(tmp_path, again)
    assert again.calls == []
    # Another grid is refused (it would replace transfer.json); overwrite restarts.
    before = (tmp_path / "transfer.json").read_text()
    extended = FakeTrainer()
    with pytest.raises(ValueError, match=r"another grid \(its lrs differ\).*--overwrite"):
        _sweep(tmp_path, extended, lrs=[2.0**k for k in (*LOG2_LRS, 4)])
    assert extended.calls == []
    assert (tmp_path / "transfer.json").read_text() == before
    restarted = FakeTrainer()
    _sweep(tmp_path, restarted, overwrite=True)
    assert len(restarted.calls) == total


def test_sweep_refuses_another_config_and_bad_grids(tmp_path):
    _sweep(tmp_path, FakeTrainer(), exponents=(0.0,), depths=(4,))
    other = Config().replace(model={"block": "two_layer", "dim": 4}, training={"steps": 4})
    with pytest.raises(ValueError, match="different config"):
        run_transfer(
            other,
            depths=(4,),
            widths=(32,),
            lrs=(1.0,),
            exponents=(0.0,),
            seeds=1,
            out_dir=tmp_path,
            train_fn=FakeTrainer(),
        )
    with pytest.raises(ValueError, match="lrs"):
        _sweep(tmp_path / "a", FakeTrainer(), lrs=(1.0, -1.0))
    with pytest.raises(ValueError, match="depths"):
        _sweep(tmp_path / "b", FakeTrainer(), depths=(4, 4))
    one_layer = Config().replace(training={"steps": 4})
    with pytest.raises(ValueError, match="one_layer"):
        run_transfer(
            one_layer,
            depths=(4,),
            widths=(32,),
            lrs=(1.0,),
            exponents=(0.0, 0.5),
            seeds=1,
            out_dir=tmp_path / "c",
            train_fn=FakeTrainer(),
        )


def test_sweep_of_one_layer_blocks(tmp_path):
    config = Config().replace(training={"steps": 4})
    trainer = FakeTrainer()
    summary = run_transfer(
        config,
        depths=(4, 16),
        widths=(32,),
        lrs=[2.0**k for k in LOG2_LRS],
        exponents=(0.0,),
        seeds=1,
        out_dir=tmp_path,
        train_fn=trainer,
    )
    assert summary["panels"][0]["train"]["optimum_log2_lr"] == [0.0, -1.0]


# ---------------------------------------------------------------------------------------------
# Command line


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


def _main(argv):
    parser = _Parser(prog="nfd-sde")
    subparsers = parser.add_subparsers(required=True)
    for command in COMMANDS:
        command.register(subparsers)
    args = parser.parse_args([str(a) for a in argv])
    args.command(args)


def test_list_parsing_names_the_flag():
    assert sizes_type("4, 8,16") == (4, 8, 16)
    assert numbers_type("0,0.25") == (0.0, 0.25)
    assert learning_rates_type("2^-2:1,3") == (0.25, 0.5, 1.0, 2.0, 3.0)
    assert learning_rates_type("2^-1,0.1") == (0.5, 0.1)
    for text, flag in [
        ("4,x", "--depths"),
        ("4,,8", "--widths"),
        ("0,nan", "--c"),
        ("2^3:1", "--lrs"),
        ("fast", "--lrs"),
    ]:
        with pytest.raises(ValueError, match=flag):
            _main(["transfer", flag, text, "--depths", "4", "--lrs", "1", "--out", "o"])


TINY = ["--set", "network.width=8", "--set", "data.eval_size=2", "--set", "training.batch=2"]


def test_collapse_and_norms_commands(tmp_path, capsys):
    out = tmp_path / "collapse"
    argv = ["collapse", "--depths", "2,4", "--c", "0,0.5", "--seeds", "2", "--out", out, *TINY]
    _main(argv)
    with (out / "collapse.json").open() as fh:
        data = json.load(fh)
    assert {"slopes", "runs", "config", "meta"} <= set(data)
    assert data["config"]["model"]["block"] == "two_layer"
    assert data["exponents"] == [0.0, 0.5]
    assert (out / "collapse.png").stat().st_size > 0
    assert (out / "coordinate_check.png").stat().st_size > 0
    for draw in (plot_collapse, plot_coordinate_check):
        assert layout_defects(draw(data, tmp_path / "figure.png")) == [], draw.__name__
    assert "first_layer: slope" in capsys.readouterr().out
    with pytest.raises(ValueError, match="overwrite"):
        _main(argv)
    with pytest.raises(ValueError, match="--depths"):
        _main(["collapse", "--depths", "4,x", "--out", tmp_path / "x", *TINY])

    out = tmp_path / "norms"
    _main(["norms", "--depths", "3", "--seeds", "1", "--out", out, *TINY])
    with (out / "norms.json").open() as fh:
        norms = json.load(fh)
    runs = norms["runs"]
    assert sorted((r["block_order"], r["depth"]) for r in runs) == [("post", 3), ("pre", 3)]
    assert (out / "norms.png").stat().st_size > 0
    assert layout_defects(plot_norms(norms, tmp_path / "figure.png")) == []


def test_transfer_command_resumes(tmp_path, capsys):
    out = tmp_path / "transfer"
    argv = ["transfer", "--depths", "2,4", "--lrs", "2^-1:0", "--seeds", "1", "--out", out]
    argv += [*TINY, "--set", "training.steps=2", "--set", "model.block=two_layer"]
    _main([*argv, "--c", "0,0.5"])
    assert "8 runs trained, 0 resumed" in capsys.readouterr().out
    assert (out / "transfer.png").stat().st_size > 0
    with (out / "transfer.json").open() as fh:
        assert layout_defects(plot_transfer(json.load(fh), tmp_path / "figure.png")) == []
    _main([*argv, "--c", "0,0.5"])
    assert "0 runs trained, 8 resumed" in capsys.readouterr().out
    _main([*argv, "--c", "0", "--overwrite"])
    assert "4 runs trained, 0 resumed" in capsys.readouterr().out
    with pytest.raises(ValueError, match="--lrs"):
        _main([*argv, "--lrs", "fast"])


def test_an_exponent_sweep_needs_a_block_whose_weight_group_declares_it(tmp_path):
    """Sweeping training.first_layer_exponent is refused before any work for a block none of
    whose weight groups reads it (one-layer), with the block named; a two-layer block's grid
    (its W1 declares the exponent) keeps both exponents."""
    from nfd_sde.experiments import run_transfer
    from nfd_sde.experiments.two_layer._transfer import _grid

    sweep = dict(depths=[2], widths=[8], lrs=[0.1], exponents=[0.0, 0.5])
    one_layer = load_config(None, ["model.block='one_layer'"])
    with pytest.raises(ValueError, match="model.block='one_layer' has no weight group"):
        run_transfer(one_layer, seeds=1, out_dir=tmp_path, **sweep)
    two_layer = load_config(None, ["model.block='two_layer'"])
    assert list(_grid(two_layer, seeds=1, **sweep)["exponents"]) == [0.0, 0.5]
