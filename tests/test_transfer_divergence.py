"""The transfer sweep's divergence rule on real training runs (the default trainer, not a fake).

The rule (`nfd_sde.experiments.two_layer._transfer` docstring): a run is diverged when a loss is
not finite or its final loss, max(final train loss, final eval loss), exceeds `divergence_factor`
(1e3) times the eval loss at init. The final train loss is the mean minibatch loss over the last
max(1, K // 10) steps, each taken before its update; the final eval loss is taken after all K
updates, so in a run that blows up it is the larger of the two.

Two data streams, K = 2 steps of a linear-activation network (width 64, depth 4), learning rates
1/8, 1, 2, 32:
  * teacher targets (train and eval losses of the same size at init): at eta = 2 the eval loss
    after the last update exceeds 1e3 times its initial value while the last minibatch loss does
    not (the eval loss decides); at eta = 32 the losses overflow (not finite);
  * shifted targets (train targets 3, eval targets 0: the first minibatch loss is ~180 times the
    initial eval loss): at eta = 1 the run blows up past 1e3 times the initial eval loss but not
    past 1e3 times the first minibatch loss (the reference decides).
Each premise is asserted on the recorded curves first, so a change of numbers that removes the
situation fails loudly instead of leaving a check that cannot fail.
"""

import json
import math

import numpy as np

from nfd_sde import load_config, load_stream
from nfd_sde.experiments import run_transfer, transfer_run_name
from tests._limit_helpers import stream_from

LRS = (0.125, 1.0, 2.0, 32.0)
FACTOR = 1e3


def _config():
    return load_config(
        None,
        [
            "model.activation=linear",
            "model.dim=4",
            "training.steps=2",
            "training.batch=4",
            "data.eval_size=4",
            "data.teacher=linear",
            "network.width=64",
            "network.depth=4",
        ],
    )


def _sweep(out, stream):
    run_transfer(
        _config(),
        depths=(4,),
        widths=(64,),
        lrs=LRS,
        exponents=(0.0,),
        seeds=1,
        out_dir=out,
        stream=stream,
        divergence_factor=FACTOR,
    )
    runs = {}
    for lr in LRS:
        name = transfer_run_name(c=0.0, depth=4, width=64, lr=lr, seed=0)
        with (out / "runs" / f"{name}.json").open() as fh:
            runs[lr] = json.load(fh)
    with (out / "transfer.json").open() as fh:
        return runs, json.load(fh)


def _curves(run):
    """The recorded loss curves (non-finite values are stored as null)."""
    return tuple(
        np.asarray([math.nan if v is None else v for v in run[name]])
        for name in ("loss_train", "loss_eval")
    )


def _documented_rule(run):
    train, evals = _curves(run)
    if not (np.all(np.isfinite(train)) and np.all(np.isfinite(evals))):
        return True
    tail = max(1, len(train) // 10)
    return max(float(np.mean(train[-tail:])), float(evals[-1])) > FACTOR * evals[0]


def test_eval_loss_decides_divergence_in_a_real_run(tmp_path):
    stream = load_stream(_config())
    runs, summary = _sweep(tmp_path, stream)
    for lr, run in runs.items():
        assert run["diverged"] == _documented_rule(run), (lr, run)
    train, evals = _curves(runs[2.0])
    # premise: all finite, the last minibatch loss below the threshold, the eval loss above it
    assert np.all(np.isfinite(train)) and np.all(np.isfinite(evals)), (train, evals)
    assert train[-1] < FACTOR * evals[0] < evals[-1], (train, evals)
    assert runs[2.0]["diverged"]
    assert runs[32.0]["diverged"] and not np.all(np.isfinite(_curves(runs[32.0])[1]))
    assert not runs[0.125]["diverged"] and not runs[1.0]["diverged"]
    # the optimum is chosen among the runs that did not diverge
    panel = summary["panels"][0]["eval"]
    assert panel["diverged"] == [[0, 0, 1, 1]]
    assert panel["optimum_log2_lr"][0] in (-3.0, 0.0)


def test_divergence_is_measured_against_the_initial_eval_loss(tmp_path):
    base = load_stream(_config())
    stream = stream_from(
        base.x_train, np.full_like(base.y_train, 3.0), base.x_eval, np.zeros_like(base.y_eval)
    )
    runs, _ = _sweep(tmp_path, stream)
    for lr, run in runs.items():
        assert run["diverged"] == _documented_rule(run), (lr, run)
    train, evals = _curves(runs[1.0])
    final = max(train[-1], evals[-1])
    # premise: train and eval losses differ at init, and the blow-up lies between the two
    # thresholds they would give
    assert train[0] > 100 * evals[0], (train, evals)
    assert FACTOR * evals[0] < final < FACTOR * train[0], (train, evals)
    assert runs[1.0]["diverged"]
