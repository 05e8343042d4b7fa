"""Nothing lost, nothing silent: divergence is a result, --out is checked before any work, zero
SGD steps give the outputs at initialisation, bad data files and bad values give one-line errors,
transfer never replaces a sweep of another grid, and the same seed gives the same bits.

The real runs share a few tiny sizes, so the module compiles each producer a few times; the
learning rate is traced, so the diverging runs reuse those compilations. The CLI fuzz tests
and the transfer command's test replace the training with fabricated results: their point is
the input handling.
"""

import contextlib
import dataclasses
import functools
import io
import json
import os
import pickle
import re
import tempfile
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

import nfd_sde._cli as cli
import nfd_sde.experiments.common._experiment as experiment
import nfd_sde.experiments.single_runs._train_solve as single_runs
import nfd_sde.experiments.two_layer._commands as two_layer
from nfd_sde import (
    Config,
    DataStream,
    load_config,
    load_stream,
    plot_collapse,
    plot_coordinate_check,
    plot_transfer,
    read_result,
    run_collapse,
    run_transfer,
    solve_limit,
    to_dict,
    train_finite,
)
from nfd_sde.model import Result, config_from_dict, first_nonfinite_step
from solvers import extrapolate, group_mean_se

# The sizes of test_cli's end-to-end runs (a full run compiles them once); ReLU by default.
TINY = [
    "training.steps=2",
    "training.batch=2",
    "data.eval_size=3",
    "network.width=16",
    "network.depth=4",
    "network.backward=decoupled",
    "solver.particles=256",
    "solver.depth_steps=4",
    "solver.groups=2",
    "solver.levels=1",
]
# Four steps, so that a diverged solve has steps left to skip (scan: half diffrax's compile time).
LONG = [*TINY, "training.steps=4", "solver.particles=32", "solver.driver=scan"]
DIVERGING = "training.eta=1e4"  # overflows at these sizes by step 2 (checked below)
NOT_A_NUMBER = re.compile(r"\b(nan|inf)\b", re.IGNORECASE)  # a NaN or infinity printed


def run(argv):
    """The CLI in-process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main([str(a) for a in argv])
        except SystemExit as exit_:  # argparse's own exits
            status = exit_.code
    return status, out.getvalue(), err.getvalue()


def assert_one_line_error(status, err, *fragments):
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _sets(overrides):
    return [item for o in overrides for item in ("--set", o)]


# ------------------------------------------------------------------------------------ divergence


def test_status_is_derived_from_the_arrays_and_old_files_read():
    assert first_nonfinite_step(np.ones((3, 2)), np.ones(3)) is None
    assert first_nonfinite_step(np.ones((3, 2)), np.array([1.0, np.inf, np.nan])) == 1
    assert first_nonfinite_step(np.array([[1.0, 1.0], [1.0, np.nan]]), np.ones(4)) == 1
    assert first_nonfinite_step(np.zeros((0, 2, 1))) is None
    nan_at_2 = np.array([1.0, 0.5, np.nan, np.nan])
    result = Result(
        f_train=np.zeros((3, 2, 1)),
        f_eval=np.zeros((4, 3, 1)),
        loss_train=np.ones(3),
        loss_eval=nan_at_2,
        kernels={"t": [0.0], "grad_train": np.zeros((3, 1, 2, 2))},
        config={},
        producer={"kind": "finite"},
        meta={},
    )
    assert result.status == {"diverged": True, "first_bad_step": 2}
    raw = json.loads(json.dumps(result.to_json()))
    assert raw["status"] == {"diverged": True, "first_bad_step": 2}
    assert raw["loss_eval"][2] is None
    # A file written before `status` existed reads back the same.
    del raw["status"]
    assert Result.from_json(raw).status == result.status


def test_train_divergence_is_a_result(tmp_path):
    out = tmp_path / "finite"
    status, stdout, err = run(["train", *_sets([*TINY, DIVERGING]), "--out", out])
    assert status == 0, err
    assert "DIVERGED" in stdout and not NOT_A_NUMBER.search(stdout)
    raw = json.loads((out / "result.json").read_text())
    assert raw["status"]["diverged"] is True
    k = raw["status"]["first_bad_step"]
    assert 1 <= k <= 2 and f"from step {k} of 2" in stdout
    result = read_result(out)
    assert np.all(np.isfinite(result.loss_eval[:k]))
    assert not np.all(np.isfinite(result.f_eval[-1]))  # NaN stored as null, read back as NaN
    assert (out / "losses.png").is_file()


@pytest.mark.filterwarnings("error::RuntimeWarning")  # a diverged run is recorded, not warned
def test_solve_divergence_stops_stepping_and_records_nan(tmp_path):
    out = tmp_path / "limit"
    status, stdout, err = run(["solve", *_sets([*LONG, DIVERGING]), "--out", out])
    assert status == 0, err
    assert "DIVERGED" in stdout
    result = read_result(out)
    k = result.status["first_bad_step"]
    assert result.status["diverged"] and 1 <= k <= 2
    # The solve stopped after the step whose outputs were not finite; the rest is NaN.
    assert result.meta["steps_solved"] == k + 1 < 4
    assert np.all(np.isnan(result.f_eval[k + 1 :]))
    assert np.all(np.isnan(result.kernels["grad_train"][k + 1 :]))
    assert np.all(np.isfinite(result.f_eval[:k]))


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_statistics_of_a_diverged_run_give_nan_without_warnings():
    values = np.array([[1.0, np.inf], [np.inf, -np.inf], [2.0, np.nan]])
    mean, se = group_mean_se(values)
    assert np.isinf(mean[0]) and np.isnan(mean[1]) and np.isnan(se).all()
    estimate, error = extrapolate(values, order=1)
    assert not np.isfinite(estimate).any() and not np.isfinite(error).any()


def test_transfer_marks_diverged_runs_and_draws_no_nan(tmp_path):
    def trainer(config, stream, *, key):
        curves = _fake_losses(config, stream, key=key)
        if config.training.eta > 1:
            curves.loss_eval[2:] = np.nan
        return curves

    config = Config().replace(model={"block": "two_layer"}, training={"steps": 4})
    grid = dict(depths=(4, 8), widths=(16,), lrs=(0.5, 4.0), exponents=(0.0,), seeds=1)
    summary = run_transfer(config, out_dir=tmp_path, train_fn=trainer, **grid)
    runs = [json.loads(p.read_text()) for p in sorted((tmp_path / "runs").glob("*.json"))]
    assert {(r["lr"], r["diverged"], r["first_bad_step"]) for r in runs} == {
        (0.5, False, None),
        (4.0, True, 2),
    }
    assert summary["runs_diverged"] == 2
    panel = summary["panels"][0]["eval"]
    assert panel["optimum_log2_lr"] == [-1.0, -1.0]
    assert panel["diverged"] == [[0, 1], [0, 1]]
    figure = plot_transfer(summary, tmp_path / "transfer.png")
    assert all(np.all(np.isfinite(ax.get_ylim())) for ax in figure.axes)


def test_collapse_marks_diverged_runs_and_fits_only_finite_depths(tmp_path):
    config = load_config(None, [*TINY, DIVERGING])
    stream = load_stream(config)
    common = dict(depths=(1, 2), exponents=(0.0,), widths=(8,), seeds=1, steps=2)
    result = run_collapse(config, stream, key=jax.random.key(0), **common)
    assert [run["diverged"] for run in result["runs"]] == [1, 1]
    assert all(fit["slope"] is None and fit["depths_fitted"] == [] for fit in result["slopes"])
    plot_collapse(result, tmp_path / "collapse.png")
    plot_coordinate_check(result, tmp_path / "coordinate_check.png")
    # No learning: the changes are exactly zero, which has no log-log slope (not an error).
    still = run_collapse(
        config.replace(training={"eta": 0.0}), stream, key=jax.random.key(0), **common
    )
    assert [run["diverged"] for run in still["runs"]] == [0, 0]
    first_layer = next(f for f in still["slopes"] if f["quantity"] == "first_layer")
    assert first_layer["slope"] is None


# ----------------------------------------------------------------------------------- zero steps


def test_zero_steps_give_the_outputs_at_initialisation():
    config = load_config(None, TINY)
    stream = load_stream(config)
    zero = config.replace(training={"steps": 0})
    stream0 = DataStream(stream.x_train[:0], stream.y_train[:0], stream.x_eval, stream.y_eval)
    assert load_stream(zero).x_train.shape == (0, 2, 8)
    key = jax.random.key(3)
    trained = train_finite(config, stream, key=key)
    for produce in (train_finite, solve_limit):
        result = produce(zero, stream0, key=key)
        assert result.f_train.shape == (0, 2, 1) and result.f_eval.shape == (1, 3, 1)
        assert result.loss_train.shape == (0,) and result.loss_eval.shape == (1,)
        assert result.kernels["feature_eval"].shape == (1, 3, 3, 3)
        assert result.kernels["feature_train"].shape == (0, 3, 2, 2)
        assert result.kernels["grad_train"].shape == (0, 3, 2, 2)
        assert result.status == {"diverged": False, "first_bad_step": None}
        assert np.all(np.isfinite(result.f_eval))
        if produce is train_finite:  # the same network as step 0 of a longer run
            np.testing.assert_array_equal(result.f_eval[0], trained.f_eval[0])


def test_zero_steps_on_the_command_line_and_from_npz(tmp_path):
    path = tmp_path / "empty.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=np.zeros((0, 2, 8)),
        y_train=np.zeros((0, 2)),
        x_eval=rng.standard_normal((3, 8)),
        y_eval=rng.standard_normal(3),
    )
    data = ["training.steps=0", "data.source=npz", f'data.path="{path}"']
    for command in ("train", "solve"):
        out = tmp_path / command
        status, stdout, err = run([command, *_sets([*TINY, *data]), "--out", out])
        assert status == 0, err
        result = read_result(out)  # JSON keeps no empty shape: read_result restores them
        assert result.f_eval.shape == (1, 3, 1) and result.loss_train.shape == (0,)
        assert result.f_train.shape == (0, 2, 1)
        assert result.kernels["grad_train"].shape == (0, 3, 2, 2)
        assert "over 0 steps" in stdout and f"npz file {path}" in stdout


# ----------------------------------------------------------------------------------- --out check


@pytest.mark.parametrize(
    "argv",
    [
        ["train"],
        ["solve"],
        ["demo", "--fast"],
        ["compare", "--widths", "8", "--depths", "2"],
        ["collapse", "--depths", "2,4"],
        ["transfer", "--depths", "2", "--lrs", "1"],
        ["norms", "--depths", "2"],
    ],
    ids=lambda argv: argv[0],
)
def test_unwritable_out_is_refused_before_any_work(tmp_path, monkeypatch, argv):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before --out was checked")

    monkeypatch.setattr(experiment, "load_stream", no_work)  # every command's one data load
    (tmp_path / "file").write_text("")
    unwritable = ((Path("/proc/nfd-sde-x"), "cannot be created"), (tmp_path / "file" / "o", ""))
    for out, reason in unwritable:
        status, _, err = run([*argv, "--out", out])
        assert_one_line_error(status, err, "--out", str(out), reason)


def test_out_check_leaves_nothing_behind(tmp_path):
    out = tmp_path / "new" / "nested"
    bad = ["--set", "data.source=npz", "--set", f'data.path="{tmp_path / "none.npz"}"']
    status, _, err = run(["train", *bad, "--out", out])
    assert_one_line_error(status, err, "no such .npz file")
    assert not (tmp_path / "new").exists()


# ---------------------------------------------------------------------------------- bad data


def _good_npz(path):
    rng = np.random.default_rng(1)
    np.savez(
        path,
        x_train=rng.standard_normal((4, 2, 3)),
        y_train=rng.standard_normal((4, 2)),
        x_eval=rng.standard_normal((3, 3)),
        y_eval=rng.standard_normal(3),
    )
    return path.read_bytes()


def _npz_cases(tmp_path):
    good = _good_npz(tmp_path / "good.npz")
    yield "truncated", good[: len(good) // 2], "truncated or corrupt"
    yield "cut", good[:-30], "truncated or corrupt"
    yield "garbage", np.random.default_rng(2).bytes(400), "not an .npz archive"
    yield "empty", b"", "the file is empty"
    single = io.BytesIO()
    np.save(single, np.zeros(3))
    yield "npy", single.getvalue(), "not an .npz archive"
    objects = io.BytesIO()
    np.savez(objects, x_train=np.array([{}], object), y_train=0, x_eval=0, y_eval=0)
    yield "objects", objects.getvalue(), "x_train holds Python objects, not numbers"
    text = io.BytesIO()
    np.savez(text, x_train=np.array(["a"]), y_train=0, x_eval=0, y_eval=0)
    yield "text", text.getvalue(), "x_train has dtype <U1; it must be numeric"


def test_bad_npz_files_are_one_line_errors(tmp_path):
    for name, content, message in _npz_cases(tmp_path):
        path = tmp_path / f"{name}.npz"
        path.write_bytes(content)
        data = ["data.source=npz", f'data.path="{path}"']
        with pytest.raises(ValueError, match=message) as error:
            load_stream(load_config(None, [*TINY, *data]))
        assert str(path) in str(error.value) and "pickle" not in str(error.value)
        status, _, err = run(["train", *_sets([*TINY, *data]), "--out", tmp_path / name])
        assert_one_line_error(status, err, str(path), message)
        assert not (tmp_path / name).exists()


def _cifar_batch(path, n, *, labels=None, seed=0):
    rng = np.random.default_rng(seed)
    labels = [int(v) for v in rng.integers(0, 10, n)] if labels is None else labels
    raw = {b"labels": labels, b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8)}
    with path.open("wb") as fh:
        pickle.dump(raw, fh, protocol=2)


def _cifar_config(root):
    return [
        "data.source=cifar10",
        f'data.path="{root}"',
        "model.dim=3072",
        "model.outputs=10",
        "training.steps=2",
        "training.batch=2",
        "data.eval_size=2",
    ]


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_corrupt_cifar_batches_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    _cifar_batch(root / "data_batch_1", 6)
    _cifar_batch(root / "test_batch", 4, seed=1)
    good = (root / "data_batch_1").read_bytes()
    cases = {
        "truncated": (good[: len(good) // 2], "truncated or corrupt"),
        "random bytes": (np.random.default_rng(3).bytes(2000), "truncated or corrupt"),
        "0 bytes": (b"", "the CIFAR-10 batch file is empty"),
        "foreign pickle": (pickle.dumps(_Payload()), "it refers to"),
        "not a batch": (pickle.dumps([1, 2, 3], protocol=2), "not a CIFAR-10 python batch"),
    }
    for name, (content, message) in cases.items():
        (root / "data_batch_1").write_bytes(content)
        status, _, err = run(["train", *_sets(_cifar_config(root)), "--out", tmp_path / "o"])
        assert_one_line_error(status, err, str(root / "data_batch_1"), message), name
    assert not (tmp_path / "pwned").exists()  # a batch file is never run as code
    _cifar_batch(root / "data_batch_1", 6, labels=[0, 1, 12, 3, 4, 5])
    status, _, err = run(["train", *_sets(_cifar_config(root)), "--out", tmp_path / "o"])
    assert_one_line_error(status, err, "data_batch_1", "label 12 is not a CIFAR-10 class")
    assert not (tmp_path / "o").exists()


def test_a_partial_cifar_folder_says_what_was_loaded(tmp_path, monkeypatch):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    _cifar_batch(root / "data_batch_1", 6)
    _cifar_batch(root / "test_batch", 4, seed=1)
    stream = load_stream(load_config(None, _cifar_config(root)))
    assert "data_batch_1 (6 training images)" in stream.origin
    assert "absent: data_batch_2, data_batch_3, data_batch_4, data_batch_5" in stream.origin
    monkeypatch.setattr(single_runs, "train_finite", _fabricate)
    status, stdout, err = run(["train", *_sets(_cifar_config(root)), "--out", tmp_path / "o"])
    assert status == 0, err
    assert f"data: {stream.origin}" in stdout


def test_results_record_the_data_origin():
    config = load_config(None, TINY)
    stream = load_stream(config)
    assert stream.origin == "tanh teacher (data.seed=1)"
    assert train_finite(config, stream, key=jax.random.key(0)).meta["data"] == stream.origin


# -------------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.beta_profile=[[-0.5, 1], [1.5, 0.5]]", "lies outside [0, 1]"),
        ("model.lr_profile=[[0, 1], [2, 1]]", "model.lr_profile: knot [2, 1] lies outside"),
        ("model.beta_profile=[[0, 'a']]", "must hold two numbers"),
        ('training.first_layer_exponent="0.5"', "must be a number, not a string"),
        ('network.width="8"', "network.width='8': must be an integer, not a string"),
        ("training.steps=-1", "training.steps=-1: must be an integer >= 0"),
        ("run.seed=4294967296", "run.seed=4294967296: must be an integer in [0, 2^32)"),
        ("data.seed=-1", "data.seed=-1: must be an integer in [0, 2^32)"),
        ("run.kernel_depths=0.5", "run.kernel_depths=0.5: give a list"),
        ("run.kernel_depths=[]", "run.kernel_depths=[]: give a list of at least one"),
        ("run.kernel_depths=['a']", "must be a number, not a string"),
        ("data.path=3", "data.path=3: must be a path in quotes"),
        # a huge level count is refused from the grid's divisors, never by computing 2^(levels-1)
        (
            "solver.levels=99999999999999999999",
            "must be divisible by 2^99999999999999999998; use levels <= 5",
        ),
        ("solver.levels=6", "must be divisible by 32; use e.g. depth_steps=32, or levels <= 5"),
    ],
)
def test_bad_values_are_named(tmp_path, override, message):
    with pytest.raises(ValueError) as error:
        load_config(None, [override])
    assert message in str(error.value)
    status, _, err = run(["train", "--set", override, "--out", tmp_path / "o"])
    assert_one_line_error(status, err, message)


def test_small_messages(tmp_path):
    status, _, err = run(["train", tmp_path, "--out", tmp_path / "o"])
    assert_one_line_error(status, err, "is a directory")
    out = tmp_path / "o"
    status, _, err = run(["transfer", "--depths", "4", "--lrs", "1", "--c", "", "--out", out])
    assert_one_line_error(status, err, "--c", "numbers, e.g. 0,0.25,0.5")
    assert "64,128" not in err
    status, _, err = run(["transfer", "--depths", "", "--lrs", "1", "--out", out])
    assert_one_line_error(status, err, "--depths", "e.g. 4,8,16")
    status, _, err = run(["collapse", "--widths", "0", "--out", out])
    assert_one_line_error(status, err, "--widths", "e.g. 128,256")


def test_sizes_too_large_to_allocate_are_one_line_errors(tmp_path):
    status, _, err = run(["train", "--set", "training.steps=1000000000000", "--out", tmp_path])
    assert_one_line_error(status, err, "out of memory")


# ------------------------------------------------------------------------------------ transfer


def _fake_losses(config, stream, *, key):
    loss = np.linspace(1.0, 0.5, config.training.steps + 1) * (1 + config.training.eta)
    return type("Curves", (), {"loss_train": loss[:-1], "loss_eval": loss})


def test_transfer_refuses_another_grid_on_the_command_line(tmp_path, monkeypatch):
    sweep = functools.partial(run_transfer, train_fn=_fake_losses)
    monkeypatch.setattr(two_layer, "run_transfer", sweep)
    out = tmp_path / "transfer"
    sizes = _sets(["training.steps=2", "training.batch=2", "data.eval_size=2", "model.dim=3"])
    argv = ["transfer", "--depths", "2", "--widths", "8", "--seeds", "1", *sizes, "--out", out]
    status, _, err = run([*argv, "--lrs", "0.5"])
    assert status == 0, err
    before = {p.name: p.read_bytes() for p in (out / "transfer.json", out / "transfer.png")}
    for change in (["--lrs", "0.25"], ["--lrs", "0.5", "--set", "run.seed=3"]):
        status, _, err = run([*argv, *change])
        assert_one_line_error(status, err, "another grid", "--overwrite")
        assert {p: (out / p).read_bytes() for p in before} == before
    status, stdout, err = run([*argv, "--lrs", "0.5"])  # the same grid resumes
    assert status == 0 and "0 runs trained, 1 resumed" in stdout, err
    status, stdout, err = run([*argv, "--lrs", "0.25", "--overwrite"])
    assert status == 0 and "1 runs trained, 0 resumed" in stdout, err


def test_transfer_refuses_zero_steps(tmp_path):
    config = Config().replace(model={"block": "two_layer"}, training={"steps": 0})
    with pytest.raises(ValueError, match="training.steps=0"):
        run_transfer(
            config,
            depths=(2,),
            widths=(8,),
            lrs=(1.0,),
            exponents=(0.0,),
            seeds=1,
            out_dir=tmp_path,
        )
    assert not (tmp_path / "sweep.json").exists()


# --------------------------------------------------------------------------------- determinism


def test_the_same_seed_gives_the_same_bits():
    config = load_config(None, TINY)
    stream = load_stream(config)
    for produce in (train_finite, solve_limit):
        a, b = (produce(config, stream, key=jax.random.key(5)) for _ in range(2))
        for name in ("f_train", "f_eval", "loss_train", "loss_eval"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), (produce.__name__, name)
        for name in ("feature_eval", "feature_train", "grad_train"):
            assert np.array_equal(a.kernels[name], b.kernels[name]), (produce.__name__, name)
        other = produce(config, stream, key=jax.random.key(6))
        assert not np.array_equal(a.f_eval, other.f_eval)


# ---------------------------------------------------------------------------------------- fuzz


def _fabricate(config, stream, *, key, progress=False):
    """A Result of the schema's shapes for `config` on `stream`; diverged when run.seed % 3 == 0
    (NaN from step 1, or from step 0 without steps), so both outcomes are exercised. Its
    producer holds the finite network's and the limit's descriptions both."""
    k, b, c, p = stream.steps, stream.batch, stream.outputs, stream.x_eval.shape[0]
    d = len(config.run.kernel_depths)
    f_eval = np.tile(np.linspace(1.0, 0.5, k + 1)[:, None, None], (1, p, c))
    loss_eval = np.linspace(1.0, 0.5, k + 1)
    if config.run.seed % 3 == 0:
        f_eval[min(1, k) :] = np.nan
        loss_eval[min(1, k) :] = np.inf
    return Result(
        f_train=np.zeros((k, b, c)),
        f_eval=f_eval,
        loss_train=loss_eval[:k].copy(),
        loss_eval=loss_eval,
        kernels={"t": list(config.run.kernel_depths), "feature_eval": np.zeros((k + 1, d, p, p))},
        config=to_dict(config),
        producer={
            "kind": "fabricated",
            **dataclasses.asdict(config.network),
            **dataclasses.asdict(config.solver),
        },
        meta={"wall_time_s": 0.0, "data": stream.origin},
    )


def _toml(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


_TOML_NUMBER = st.one_of(
    st.integers(-3, 5), st.floats(-2, 3, allow_nan=False).map(lambda v: round(v, 3))
)
BAD_TEXT = st.sampled_from(
    ['"abc"', '"3"', "-1", "0", "2.5", "true", "nan", "inf", "-inf", "[1, 2]", "{ a = 1 }",
     "[[0, 1], [2, 1]]", "[[0, 1], [0.5]]", "1e400", "99999999999999999999", "[", "", '""']
)  # fmt: skip
FIELDS = {
    "data": {  # source: npz comes with a file (below), cifar10 without one
        "source": st.sampled_from(["teacher", "teacher", "teacher", "cifar10"]),
        "eval_size": st.integers(1, 4),
        "teacher": st.sampled_from(["linear", "tanh"]),
        "teacher_width": st.integers(1, 6),
        "label_noise": st.floats(0, 1),
        "seed": st.integers(0, 9),
    },
    "model": {
        "dim": st.integers(1, 4),
        "outputs": st.integers(1, 3),
        "activation": st.sampled_from(["linear", "relu", "tanh", "gelu"]),
        "readout": st.sampled_from(["phi", "linear"]),
        "block": st.sampled_from(["one_layer", "two_layer"]),
        "block_order": st.sampled_from(["pre", "post"]),
        "gamma0": st.floats(0.1, 2),
        "beta_profile": st.one_of(st.floats(0.1, 2), st.just([[0, 1.0], [1, 0.5]])),
        "lr_profile": st.one_of(st.floats(0.1, 2), st.just([[0.25, 2.0]])),
    },
    "training": {
        "eta": st.floats(0, 2),
        "eta_U": st.floats(0, 2),
        "eta_v": st.floats(0, 2),
        "eta_W": st.floats(0, 2),
        "first_layer_exponent": st.floats(-1, 1),
        "steps": st.integers(0, 3),
        "batch": st.integers(1, 3),
        "loss": st.sampled_from(["mse", "cross_entropy"]),
    },
    "network": {
        "width": st.integers(1, 16),
        "depth": st.integers(1, 4),
        "backward": st.sampled_from(["standard", "decoupled"]),
    },
    "solver": {
        "particles": st.integers(1, 64),
        "depth_steps": st.integers(1, 4),
        "groups": st.integers(1, 3),
        "levels": st.integers(1, 3),
        "control_variates": st.booleans(),
        "representation": st.sampled_from(["auto", "field", "weight"]),
        "backward": st.sampled_from(["standard", "decoupled"]),
        "driver": st.sampled_from(["diffrax", "scan"]),
        "jitter": st.floats(0, 1e-3),
        "memory_limit_gb": st.floats(0, 8),
    },
    "run": {
        "seed": st.integers(0, 9),
        "dtype": st.sampled_from(["float32", "float64"]),
        "kernel_depths": st.lists(st.floats(0, 1), min_size=1, max_size=3),
    },
}


@st.composite
def assignments(draw):
    """`section.field = TOML text` pairs: valid values, bad values and unknown names."""
    pairs = []
    for _ in range(draw(st.integers(0, 4))):
        section = "nosuch" if _rarely(draw, 12) else draw(st.sampled_from(list(FIELDS)))
        fields = list(FIELDS.get(section, {"width": None}))
        field = "widht" if _rarely(draw, 12) else draw(st.sampled_from(fields))
        strategy = FIELDS.get(section, {}).get(field, _TOML_NUMBER)
        text = draw(BAD_TEXT if _rarely(draw, 6) else strategy.map(_toml))
        pairs.append((section, field, text))
    return pairs


def _rarely(draw, n: int) -> bool:
    """True once in n draws (and the shrinker's favourite is False)."""
    return draw(st.integers(0, n - 1)) == n - 1


DTYPES = st.sampled_from(["float64", "int64", "bool", "complex128", "<U1"])


@st.composite
def npz_streams(draw, sizes):
    """The bytes of an .npz stream of the config's sizes (k, b, d, p, c), perturbed at times:
    another shape, dtype, a NaN, a missing array, or the file truncated."""
    k, b, d, p, c = sizes
    shapes = {"x_train": (k, b, d), "y_train": (k, b, c), "x_eval": (p, d), "y_eval": (p, c)}
    if draw(st.booleans()):  # targets without an output axis
        shapes["y_train"], shapes["y_eval"] = (k, b), (p,)
    arrays = {}
    for name, shape in shapes.items():
        if _rarely(draw, 20):
            shape = tuple(draw(st.lists(st.integers(0, 3), max_size=4)))
        dtype = draw(DTYPES) if _rarely(draw, 20) else "float64"
        array = np.random.default_rng(k + b + d).integers(0, 2, shape).astype(dtype)
        if _rarely(draw, 20) and array.size and array.dtype.kind == "f":
            array.flat[0] = np.nan
        if not _rarely(draw, 20):
            arrays[name] = array
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    content = buffer.getvalue()
    if _rarely(draw, 10):
        content = content[: draw(st.integers(0, len(content)))]
    return content


@st.composite
def cli_runs(draw):
    """A whole `train` or `solve` command line: a config file (or none, a directory, invalid
    TOML), overrides, an npz data file, and an --out directory."""
    command = draw(st.sampled_from(["train", "solve"]))
    file_pairs, overrides = draw(assignments()), draw(assignments())
    config = draw(st.sampled_from(["file"] * 3 + ["none"] * 3 + ["directory", "bad toml"]))
    sizes = (draw(st.integers(0, 3)), *(draw(st.integers(1, 3)) for _ in range(4)))
    npz = draw(npz_streams(sizes)) if draw(st.booleans()) else None
    out = draw(st.sampled_from(["fresh", "fresh", "nested", "nested", "under a file"]))
    size = ["--width", "8"] if command == "train" else ["--particles", "8"]
    flags = draw(st.sampled_from([[], [], [], size, size, ["--seed", "-1"], ["--overwrite"]]))
    if flags[:1] in (["--width"], ["--particles"]) and not _rarely(draw, 4):
        # a --set of the flag's own field (which the flag overrides), mostly invalid
        section, field = FLAG_FIELDS[flags[0]].split(".")
        text = draw(FIELDS[section][field].map(_toml) if _rarely(draw, 4) else BAD_TEXT)
        overrides = [*overrides, (section, field, text)]
    return command, file_pairs, overrides, config, sizes, npz, out, flags


FLAG_FIELDS = {"--width": "network.width", "--particles": "solver.particles"}


def _prepare(root: Path, case):
    command, file_pairs, overrides, config_kind, sizes, npz, out_kind, flags = case
    argv = [command]
    if config_kind == "file":
        tables = {}
        for section, field, text in file_pairs:
            tables.setdefault(section, {})[field] = text
        lines = [
            f"[{s}]\n" + "".join(f"{f} = {t}\n" for f, t in kv.items()) for s, kv in tables.items()
        ]
        (root / "c.toml").write_text("".join(lines))
        argv.append(root / "c.toml")
    elif config_kind == "directory":
        argv.append(root)
    elif config_kind == "bad toml":
        (root / "c.toml").write_text("[model\n")
        argv.append(root / "c.toml")
    sets = [f"{s}.{f}={t}" for s, f, t in overrides]
    if npz is not None:
        k, b, d, p, c = sizes
        (root / "s.npz").write_bytes(npz)
        sets = [
            f"training.steps={k}",
            f"training.batch={b}",
            f"model.dim={d}",
            f"model.outputs={c}",
            "data.source=npz",
            f'data.path="{root / "s.npz"}"',
            *sets,
        ]
    (root / "file").write_text("")
    out = {"fresh": root / "o", "nested": root / "a" / "b", "under a file": root / "file" / "o"}
    return [*argv, *_sets(sets), *flags, "--out", out[out_kind]], out[out_kind]


def check_cli_run(case):
    """Either a one-line `error:`, exit 2 and nothing written, or a valid result."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        argv, out = _prepare(root, case)
        status, stdout, err = run(argv)
        event("valid result" if status == 0 else "one-line error")
        if status != 0:
            assert_one_line_error(status, err)
            assert "Traceback" not in err and not out.exists(), (argv, err)
            return
        assert "Traceback" not in err, err
        raw = json.loads((out / "result.json").read_text())
        result = read_result(out)
        config = config_from_dict(result.config)  # a valid, resolved config
        k, b, c = config.training.steps, config.training.batch, config.model.outputs
        p = result.f_eval.shape[1]
        assert p >= 1 and result.f_eval.shape == (k + 1, p, c)
        assert result.f_train.shape == (k, b, c) and result.loss_train.shape == (k,)
        assert raw["status"] == result.status
        assert ("DIVERGED" in stdout) == result.status["diverged"]
        assert not NOT_A_NUMBER.search(stdout) and (out / "losses.png").is_file()
        _check_flag_hid_nothing(argv)


def _check_flag_hid_nothing(argv):
    """A flag wins over a --set of its field, but never hides an invalid one: if the command
    line with the flag was valid, the same line without it (the --set in effect) loads too."""
    argv = [str(a) for a in argv]
    flag = next((f for f in FLAG_FIELDS if f in argv), None)
    sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
    if flag is None or not any(s.startswith(FLAG_FIELDS[flag] + "=") for s in sets):
        return
    path = argv[1] if len(argv) > 1 and argv[1].endswith(".toml") else None
    load_config(path, sets)  # raises on a --set the flag hid


@pytest.fixture
def fabricated(monkeypatch):
    monkeypatch.setattr(single_runs, "train_finite", _fabricate)
    monkeypatch.setattr(single_runs, "solve_limit", _fabricate)


FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(FUZZ, max_examples=60)
@given(case=cli_runs())
def test_fuzz_cli_inputs(fabricated, case):
    check_cli_run(case)


@pytest.mark.slow
@settings(FUZZ, max_examples=1000)
@given(case=cli_runs())
def test_fuzz_cli_inputs_long(fabricated, case):
    check_cli_run(case)


FLAGGED = {  # command -> flag -> the field it sets
    "train": {"--width": "network.width", "--depth": "network.depth", "--seed": "run.seed"},
    "solve": {"--particles": "solver.particles", "--groups": "solver.groups",
              "--levels": "solver.levels", "--seed": "run.seed"},
}  # fmt: skip


@st.composite
def flags_with_sets(draw):
    """A command, one of its flags with a valid value, and a --set of the same field: a valid
    value of the field or a bad one."""
    command = draw(st.sampled_from(sorted(FLAGGED)))
    flag, name = draw(st.sampled_from(sorted(FLAGGED[command].items())))
    section, field = name.split(".")
    text = draw(st.one_of(BAD_TEXT, FIELDS[section][field].map(_toml)))
    return command, flag, draw(st.integers(1, 2)), f"{name}={text}"


@settings(FUZZ, max_examples=40)
@given(case=flags_with_sets())
def test_fuzz_a_flag_never_hides_a_set(fabricated, monkeypatch, case):
    """The flag wins over a --set of its field, but the --set is checked all the same: the run
    succeeds exactly when the --set alone gives a valid config. (No figure: the config is the
    point.)"""
    monkeypatch.setattr(single_runs, "plot_loss_curves", lambda results, path: None)
    command, flag, value, override = case
    try:
        load_config(None, [*TINY, override])
        valid = True
    except ValueError:
        valid = False
    with tempfile.TemporaryDirectory() as tmp:
        argv = [command, *_sets([*TINY, override]), flag, value, "--out", Path(tmp) / "o"]
        status, _, err = run(argv)
        if valid:
            assert status == 0, err
            name = FLAGGED[command][flag]
            assert (
                read_result(Path(tmp) / "o").config[name.split(".")[0]][name.split(".")[1]] == value
            )
        else:
            assert_one_line_error(status, err, f"--set {override}")


@pytest.mark.slow
@settings(deadline=None, max_examples=40)
@given(
    overrides=st.lists(
        st.sampled_from(
            ["training.eta=1e4", "training.steps=0", "model.activation=tanh", "solver.driver=scan",
             "network.backward=decoupled", "solver.representation=weight", "run.dtype=float64",
             "model.block=two_layer", "training.loss=cross_entropy", "model.outputs=2"]
        ),
        max_size=4,
    ),
    command=st.sampled_from(["train", "solve"]),
)  # fmt: skip
def test_fuzz_real_runs(overrides, command):
    """Real producers at tiny sizes: a valid result (diverged or not) or a one-line error."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "o"
        status, stdout, err = run([command, *_sets([*TINY, *overrides]), "--out", out])
        if status != 0:
            assert_one_line_error(status, err)
            assert not out.exists()
            return
        result = read_result(out)
        k = result.config["training"]["steps"]
        assert result.f_eval.shape[0] == k + 1 and result.loss_train.shape == (k,)
        assert ("DIVERGED" in stdout) == result.status["diverged"]


# ------------------------------------------------------------------- fuzz: report's compare.json

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=8,
)
COMPARE_KEYS = ["grid", "scale", "limits", "ensembles", "summary", "fits", "config", "meta"]


@st.composite
def compare_files(draw):
    """The text of a compare.json that `compare` did not write: any JSON value, or an object
    with some of compare's keys holding any values; truncated at times."""
    if draw(st.booleans()):
        value = draw(JSON)
    else:
        keys = draw(st.lists(st.sampled_from(COMPARE_KEYS), unique=True))
        value = {key: draw(JSON) for key in keys}
    text = json.dumps(value)
    if _rarely(draw, 4):
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    return text


@settings(FUZZ, max_examples=40)
@given(text=compare_files())
def test_fuzz_report_inputs(text):
    """`nfd-sde report` on a compare.json of another structure or truncated: one-line error
    naming the file, exit 2, no report."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "compare.json"
        path.write_text(text)
        status, _, err = run(["report", tmp])
        assert_one_line_error(status, err, str(path))
        assert "Traceback" not in err and not (Path(tmp) / "report.md").exists()
