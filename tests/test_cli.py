"""The `nfd-sde` command line: parsing, error exits, --overwrite, and what each command writes.

Most tests replace the producers (`train_finite`, `solve_limit`) with a fabricated Result of the
right shapes, recording the config and key they were called with, so they test the command line
alone and run in well under a second. The end-to-end tests at the bottom run the real producers
at tiny sizes.
"""

import json
import subprocess
import sys
from pathlib import Path

import jax
import matplotlib.image
import numpy as np
import pytest

import nfd_sde._cli as cli
import nfd_sde.experiments.single_runs._demo as demo
import nfd_sde.experiments.single_runs._train_solve as single_runs
from nfd_sde import load_config, load_stream, plot_loss_curves, plot_overlay, read_result, to_dict
from nfd_sde.model import Result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _fabricated(config, stream, *, kind):
    """A Result with the schema's shapes, whose numbers encode the sizes it was asked for."""
    k, b, c = stream.steps, stream.batch, stream.outputs
    p = stream.x_eval.shape[0]
    size = config.network.width if kind == "finite" else config.solver.particles
    decay = 1.0 + np.arange(k + 1)
    f_eval = np.ones((k + 1, p, c)) / size + np.arange(p)[None, :, None] / decay[:, None, None]
    if kind == "finite":
        producer = {"kind": kind, "width": size, "depth": config.network.depth}
        producer["backward"] = config.network.backward
    else:
        producer = {"kind": kind, "particles": size, "depth_steps": config.solver.depth_steps}
        producer |= {"representation": "field", "backward": config.solver.backward}
    return Result(
        f_train=np.zeros((k, b, c)),
        f_eval=f_eval,
        loss_train=1.0 / decay[:k],
        loss_eval=1.0 / decay + 1.0 / size,
        kernels={"t": [0.0], "feature_eval": np.zeros((k + 1, 1, p, p))},
        config=to_dict(config),
        producer=producer,
        meta={"wall_time_s": 0.5, "seed": config.run.seed},
    )


class Recorder:
    def __init__(self, kind):
        self.kind = kind
        self.calls = []

    def __call__(self, config, stream, *, key, progress=False):
        self.calls.append({"config": config, "stream": stream, "key": key, "progress": progress})
        return _fabricated(config, stream, kind=self.kind)


@pytest.fixture
def fake(monkeypatch):
    producers = {"finite": Recorder("finite"), "limit": Recorder("limit")}
    monkeypatch.setattr(single_runs, "train_finite", producers["finite"])
    monkeypatch.setattr(single_runs, "solve_limit", producers["limit"])
    return producers


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(
        "[model]\ndim = 3\n[training]\nsteps = 3\nbatch = 2\n[data]\neval_size = 5\n"
        "[network]\nwidth = 8\ndepth = 2\n"
    )
    return path


def run(argv, capsys):
    """Run the CLI in-process; returns (exit status, stdout, stderr)."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own exits (usage errors, --help)
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_png(path: Path, *, min_width: int):
    assert path.read_bytes()[:8] == PNG_MAGIC
    height, width, _ = matplotlib.image.imread(path).shape
    assert width >= min_width and height >= 300  # dpi 150: at least a few inches


def assert_one_line_error(status, err, *fragments):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# ---------------------------------------------------------------------------------------- train


def test_train_flags_become_config_and_outputs_are_written(fake, config_file, tmp_path, capsys):
    out = tmp_path / "finite"
    status, stdout, err = run(
        [
            "train", config_file, "--width", 16, "--depth", 3, "--backward", "standard",
            "--set", "training.eta=0.25", "--seed", 7, "--out", out,
        ],
        capsys,
    )  # fmt: skip
    assert status == 0, err
    (call,) = fake["finite"].calls
    assert fake["limit"].calls == []
    config = call["config"]
    assert (config.network.width, config.network.depth) == (16, 3)
    assert config.network.backward == "standard"
    assert config.training.eta == 0.25
    assert config.model.dim == 3  # from the file
    assert config.run.seed == 7
    np.testing.assert_array_equal(
        jax.random.key_data(call["key"]), jax.random.key_data(jax.random.key(7))
    )
    assert call["stream"].x_train.shape == (3, 2, 3)  # the stream the config describes
    # result.json round-trips the fabricated result.
    result = read_result(out)
    np.testing.assert_allclose(result.loss_eval, 1.0 / np.arange(1, 5) + 1.0 / 16)
    assert result.producer == {"kind": "finite", "width": 16, "depth": 3, "backward": "standard"}
    assert result.config["network"]["width"] == 16
    assert_png(out / "losses.png", min_width=1000)
    assert "width 16, depth 3, standard backward" in stdout
    assert str(out / "result.json") in stdout


def test_train_flag_wins_over_set_and_config_is_optional(fake, tmp_path, capsys):
    status, _, err = run(
        ["train", "--set", "network.width=8", "--width", 12, "--out", tmp_path / "o"], capsys
    )
    assert status == 0, err
    config = fake["finite"].calls[0]["config"]
    assert config.network.width == 12
    # No config file and no other flag: every other field is the default.
    assert config.network.depth == load_config().network.depth
    assert config.run.seed == 0


# ---------------------------------------------------------------------------------------- solve


def test_solve_flags_become_config(fake, config_file, tmp_path, capsys):
    out = tmp_path / "limit"
    status, stdout, err = run(
        [
            "solve", config_file, "--particles", 64, "--depth-steps", 5, "--levels", 1,
            "--groups", 3, "--representation", "weight", "--backward", "standard", "--out", out,
        ],
        capsys,
    )  # fmt: skip
    assert status == 0, err
    (call,) = fake["limit"].calls
    solver = call["config"].solver
    assert (solver.particles, solver.depth_steps, solver.levels, solver.groups) == (64, 5, 1, 3)
    assert (solver.representation, solver.backward) == ("weight", "standard")
    assert call["progress"] is True
    assert read_result(out).producer["particles"] == 64
    assert_png(out / "losses.png", min_width=1000)
    assert "64 particles, depth steps 5" in stdout


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--depth-steps", "8,16,32"], (32, 3)),
        (["--depth-steps", "32", "--extrapolate"], (32, 3)),
        (["--depth-steps", "16", "--levels", "2"], (16, 2)),
    ],
)
def test_solve_nested_depth_flags(fake, tmp_path, capsys, flags, expected):
    status, _, err = run(["solve", *flags, "--out", tmp_path / "o"], capsys)
    assert status == 0, err
    solver = fake["limit"].calls[0]["config"].solver
    assert (solver.depth_steps, solver.levels) == expected


def test_solve_refuses_grids_that_do_not_nest(fake, tmp_path, capsys):
    status, _, err = run(["solve", "--depth-steps", "8,24", "--out", tmp_path / "o"], capsys)
    assert_one_line_error(status, err, "twice the previous")
    status, _, err = run(["solve", "--depth-steps", "6", "--out", tmp_path / "o"], capsys)
    assert_one_line_error(
        status,
        err,
        "solver.depth_steps=6 must be divisible by 4; use e.g. depth_steps=8, or levels <= 2",
    )
    assert fake["limit"].calls == []


# --------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["train", "missing.toml", "--out", "o"], ["missing.toml", "does not exist"]),
        (["train", "--set", "network.width", "--out", "o"], ["section.field=value"]),
        (["train", "--set", "model.widht=3", "--out", "o"], ["widht", "[model]"]),
        (["train", "--set", "model.activation=swish", "--out", "o"], ["model.activation"]),
        (["train", "--width", 0, "--out", "o"], ["network.width=0"]),
        (["solve", "--particles", -1, "--out", "o"], ["solver.particles=-1"]),
        (["solve", "--set", "model.beta_profile=[[0,1],[1,nan]]", "--out", "o"], ["beta_profile"]),
        (["train", "--width", "abc", "--out", "o"], ["--width", "invalid int value"]),
        # a flag wins over a --set of its field, but does not hide a mistake in it
        (["train", "--width", 16, "--set", "network.width=abc", "--out", "o"],
         ["--set network.width=abc", "network.width='abc'"]),
        (["solve", "--particles", 64, "--set", "solver.particles=1e3", "--out", "o"],
         ["--set solver.particles=1e3", "integer"]),
        (["solve", "--depth-steps", "16,32", "--set", "solver.levels=0", "--out", "o"],
         ["--set solver.levels=0"]),
        (["train", "--backward", "sideways", "--out", "o"], ["--backward", "invalid choice"]),
        (["train", "--width", 8], ["--out"]),
        (["fly"], ["invalid choice"]),
        ([], ["COMMAND"]),
        (["solve", "--set", "data.source=npz", "--set", 'data.path="x.npz"', "--out", "o"],
         ["x.npz", "no such .npz file"]),
    ],
)  # fmt: skip
def test_mistakes_exit_2_with_one_line(fake, tmp_path, monkeypatch, capsys, argv, fragments):
    monkeypatch.chdir(tmp_path)
    status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, *fragments)
    assert fake["finite"].calls == [] and fake["limit"].calls == []
    assert not (tmp_path / "o" / "result.json").exists()


def test_invalid_toml_exits_2(fake, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\n")
    status, _, err = run(["train", bad, "--out", tmp_path / "o"], capsys)
    assert_one_line_error(status, err, "not valid TOML")


def test_producer_refusal_is_reported_not_raised(monkeypatch, tmp_path, capsys):
    def too_big(config, stream, *, key, progress=False):
        raise ValueError("the field-space system needs 90 GB\n(above solver.memory_limit_gb=8)")

    monkeypatch.setattr(single_runs, "solve_limit", too_big)
    status, _, err = run(["solve", "--out", tmp_path / "o"], capsys)
    assert_one_line_error(status, err, "90 GB (above solver.memory_limit_gb=8)")
    assert not (tmp_path / "o" / "result.json").exists()


def test_a_real_process_exits_2_without_traceback(tmp_path):
    code = "import sys; from nfd_sde._cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, "train", str(tmp_path / "nope.toml"), "--out", "o"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert proc.stdout == ""


# ------------------------------------------------------------------------------------ overwrite


def test_refuses_to_overwrite_a_result(fake, tmp_path, capsys):
    out = tmp_path / "finite"
    assert run(["train", "--width", 8, "--out", out], capsys)[0] == 0
    before = (out / "result.json").read_text()
    status, _, err = run(["train", "--width", 16, "--out", out], capsys)
    assert_one_line_error(status, err, "already exists", "--overwrite")
    assert (out / "result.json").read_text() == before
    assert len(fake["finite"].calls) == 1  # refused before doing the work
    status, _, err = run(["train", "--width", 16, "--out", out, "--overwrite"], capsys)
    assert status == 0, err
    assert json.loads((out / "result.json").read_text())["producer"]["width"] == 16


def test_out_must_be_a_directory(fake, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    status, _, err = run(["train", "--out", tmp_path / "file"], capsys)
    assert_one_line_error(status, err, "not a directory")


# ----------------------------------------------------------------------------------------- demo


def test_default_config_is_shipped_and_valid():
    config = load_config(demo.DEFAULT_CONFIG)
    assert (config.model.dim, config.model.outputs) == (8, 1)
    assert config.network.depth == config.solver.depth_steps


@pytest.mark.parametrize("name", ["example.toml", "two_layer.toml"])
def test_repository_configs_load(name):
    path = Path(__file__).parents[1] / "configs" / name
    config = load_config(path)
    assert config.model.block == ("two_layer" if name == "two_layer.toml" else "one_layer")


# ---------------------------------------------------------------------------------------- plots


def test_plots_pick_log_scale_only_for_positive_losses(config_file, tmp_path):
    config = load_config(config_file, ["model.outputs=2"])
    stream = load_stream(config)
    positive = _fabricated(config, stream, kind="finite")
    figure = plot_loss_curves({"a": positive}, tmp_path / "a.png")
    assert [ax.get_yscale() for ax in figure.axes] == ["log", "log"]
    zero = _fabricated(config, stream, kind="finite")
    zero.loss_eval = np.zeros_like(zero.loss_eval)
    figure = plot_loss_curves({"a": positive, "b": zero}, tmp_path / "b.png")
    assert [ax.get_yscale() for ax in figure.axes] == ["log", "linear"]
    limit = _fabricated(config, stream, kind="limit")
    figure = plot_overlay(limit, {"a": positive}, tmp_path / "c.png")
    assert len(figure.axes) == 3
    assert all(ax.get_legend() is not None and ax.get_xlabel() for ax in figure.axes)
    assert_png(tmp_path / "c.png", min_width=2000)


def test_overlay_refuses_mismatched_streams(config_file, tmp_path):
    config = load_config(config_file)
    limit = _fabricated(config, load_stream(config), kind="limit")
    other = config.replace(training={"steps": 2})
    finite = _fabricated(other, load_stream(other), kind="finite")
    with pytest.raises(ValueError, match="same data stream"):
        plot_overlay(limit, {"n=8": finite}, tmp_path / "x.png")


# ---------------------------------------------------------------------------------- end to end

TINY = ["--set", "training.steps=2", "--set", "training.batch=2", "--set", "data.eval_size=3"]


def test_train_end_to_end(tmp_path, capsys):
    out = tmp_path / "finite"
    argv = ["train", "--width", 16, "--depth", 4, "--backward", "decoupled", "--out", out, *TINY]
    status, _, err = run(argv, capsys)
    assert status == 0, err
    result = read_result(out)
    assert result.f_eval.shape == (3, 3, 1)
    assert result.loss_train.shape == (2,)
    assert np.all(np.isfinite(result.loss_eval))
    assert result.producer["width"] == 16 and result.producer["depth"] == 4
    assert_png(out / "losses.png", min_width=1000)


def test_solve_end_to_end(tmp_path, capsys):
    out = tmp_path / "limit"
    argv = ["solve", "--particles", 256, "--groups", 2, "--depth-steps", 8, "--out", out, *TINY]
    status, _, err = run(argv, capsys)
    assert status == 0, err
    result = read_result(out)
    assert result.f_eval.shape == (3, 3, 1)
    assert np.all(np.isfinite(result.loss_eval))
    assert (result.producer["particles"], result.producer["depth_steps"]) == (256, 8)
    assert result.producer["grids"] == [8, 4, 2]
    # every limit number carries its Monte Carlo and discretisation errors, same shapes
    for errors in (result.stderr, result.syserr):
        assert errors["f_eval"].shape == result.f_eval.shape
        assert errors["loss_eval"].shape == result.loss_eval.shape
        assert errors["kernels"]["feature_eval"].shape == result.kernels["feature_eval"].shape
        assert np.all(np.isfinite(errors["f_eval"]))
    assert_png(out / "losses.png", min_width=1000)


def test_demo_end_to_end(tmp_path, capsys):
    """The fast demo: compare's machinery at one depth, every width in both modes, a distance
    per width stated as a value with its interval or as "not resolved, below X", never as 0."""
    out = tmp_path / "demo"
    status, stdout, err = run(["demo", "--fast", "--out", out], capsys)
    assert status == 0, err
    data = json.loads((out / "demo.json").read_text())
    summary, grid = data["summary"], data["grid"]
    assert grid["widths"] == list(demo.FAST_SIZES.widths) and len(grid["depths"]) == 1
    assert grid["antithetic"] and grid["common_noise"]
    assert grid["limit_depth_steps"] == grid["depths"]  # the limit at M = L: the exact target
    assert data["config"]["solver"]["levels"] == 1
    assert {(r["mode"], r["width"]) for r in summary["rows"]} == {
        (m, w) for m in ("decoupled", "standard") for w in demo.FAST_SIZES.widths
    }
    for row in summary["rows"]:
        assert row["seeds"] == demo.FAST_SIZES.seeds
        text = demo.row_text(row)
        assert text in stdout and "debiased 0 %" not in text
        assert ("not resolved, below" in text) == (not row["resolved"])
    assert summary["rate_text"] in stdout
    assert (out / "runs" / "manifest.json").exists()
    assert_png(out / "overlay.png", min_width=2000)
    # A second run refuses, unless told to overwrite (then it reuses the stored runs).
    status, _, err = run(["demo", "--fast", "--out", out], capsys)
    assert_one_line_error(status, err, "--overwrite")
    assert run(["demo", "--fast", "--out", out, "--overwrite"], capsys)[0] == 0
