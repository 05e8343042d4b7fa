"""`nfd-sde curves`: the accuracy band's rule on outputs built by hand, the refusal of targets
that are not class labels, and a tiny whole run (record, figure, resume of its pieces)."""

import json

import numpy as np
import pytest

from nfd_sde.experiments.single_runs import _curves
from nfd_sde.experiments.single_runs._curves import accuracy, accuracy_band, class_labels
from tests.test_reliability import assert_one_line_error, run


def test_accuracy_band_counts_undecided_inputs_both_ways():
    labels = np.array([0, 1, 2, 0])
    f = np.array(
        [
            [3.0, 0.0, 0.0],  # right, decided (margin 3 > 2 x 0.5)
            [0.0, 2.0, 1.5],  # right, undecided (margin 0.5 < 1)
            [2.0, 0.0, 0.0],  # wrong (top 0, label 2), decided
            [0.2, 0.0, 0.6],  # wrong, undecided
        ]
    )[None]
    half = np.full_like(f, 0.5)
    low, high = accuracy_band(f, half, labels)
    assert accuracy(f, labels)[0] == 0.5
    assert low[0] == 0.25  # only the decided right input
    assert high[0] == 0.75  # every input but the decided wrong one
    low, high = accuracy_band(f, np.zeros_like(f), labels)  # no error: the band is the value
    assert low[0] == high[0] == 0.5
    assert accuracy_band(f, None, labels) == (None, None)


def test_targets_must_be_class_labels():
    assert list(class_labels(np.eye(3)[[2, 0, 1]])) == [2, 0, 1]
    for y in (np.ones((4, 1)), np.full((3, 2), 0.5), np.array([[1.0, 1.0], [0.0, 1.0]])):
        with pytest.raises(ValueError, match="must be class labels"):
            class_labels(y)


TINY = ["training.steps=3", "training.batch=4", "data.eval_size=16", "network.depth=2",
        "solver.particles=64", "solver.depth_steps=2", "solver.groups=2", "solver.levels=1",
        "run.dtype=float64"]  # fmt: skip


def _argv(out, *extra):
    sets = [item for s in TINY + list(extra) for item in ("--set", s)]
    return ["curves", "configs/digits_long.toml", *sets, "--widths", "4,8", "--seeds", "2",
            "--losses", "mse", "--out", str(out)]  # fmt: skip


def test_a_tiny_run_writes_its_curves_and_resumes_from_its_pieces(tmp_path, monkeypatch):
    out = tmp_path / "c"
    status, stdout, err = run(_argv(out))
    assert status == 0, err
    data = json.loads((out / "curves.json").read_text())
    assert (out / "curves.png").stat().st_size > 0
    limit = data["losses"]["mse"]["limit"]
    assert len(limit["loss"]) == len(limit["accuracy"]) == 4  # steps 0..3
    assert all(lo <= a <= hi for lo, a, hi in
               zip(limit["accuracy_low"], limit["accuracy"], limit["accuracy_high"]))  # fmt: skip
    assert [c["width"] for c in data["losses"]["mse"]["finite"]] == [4, 8]
    assert data["config"]["solver"]["backward"] == data["config"]["network"]["backward"]
    assert "NFD limit eval loss" in stdout

    # a killed run (no curves.json) resumes: nothing is solved or trained again
    (out / "curves.json").unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a stored piece")

    monkeypatch.setattr(_curves, "solve_limit", refuse)
    monkeypatch.setattr(_curves, "train_ensemble", refuse)
    status, _, err = run(_argv(out))
    assert status == 0, err
    assert json.loads((out / "curves.json").read_text())["losses"] == data["losses"]
    # another config does not reuse them
    with pytest.raises(AssertionError, match="recomputed a stored piece"):
        run([*_argv(out, "training.eta=0.25"), "--overwrite"])


def test_regression_targets_are_refused_before_any_work(tmp_path):
    status, _, err = run(["curves", "--out", str(tmp_path / "o")])
    assert_one_line_error(status, err, "must be class labels")
    assert not (tmp_path / "o").exists()


def test_unknown_losses_are_refused(tmp_path):
    status, _, err = run([*_argv(tmp_path / "o"), "--losses", "mse,hinge"])
    assert status == 2 and "give losses from" in err
