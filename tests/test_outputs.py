"""Outputs are for sharing and never half-written: every file goes through the one atomic writer
(`nfd_sde.model.write_atomic`), gets the user's umask, and a full disk (simulated: the writer's
write raises ENOSPC) ends the command with a one-line error naming the file and leaves nothing
that a rerun would have to overwrite."""

import errno
import os
import stat
import types

import numpy as np
import pytest

import nfd_sde.experiments.common._experiment as experiment
import nfd_sde.experiments.compare._command as compare_command
import nfd_sde.experiments.single_runs._demo as demo
import nfd_sde.experiments.single_runs._train_solve as single_runs
import nfd_sde.experiments.two_layer._commands as two_layer
import nfd_sde.model._files as files
from nfd_sde import load_config, load_stream
from nfd_sde.experiments import write_json, write_text
from nfd_sde.experiments.common._records import write_npz
from tests.test_cli import Recorder, assert_one_line_error, run

# a data stream for commands whose run is faked: the shared shape prints only its origin
_NO_DATA = types.SimpleNamespace(origin="no data (faked run)")


@pytest.fixture
def umask():
    """Run the test under a chosen umask, restoring the previous one afterwards."""
    previous = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(previous)


@pytest.fixture
def fake(monkeypatch):
    recorders = {"finite": Recorder("finite"), "limit": Recorder("limit")}
    monkeypatch.setattr(single_runs, "train_finite", recorders["finite"])
    monkeypatch.setattr(single_runs, "solve_limit", recorders["limit"])
    return recorders


def _full_disk(monkeypatch, *names):
    """Make the writer's write fail with ENOSPC for outputs named `names` (all if none)."""
    real = files.write_bytes

    def write(fh, payload):
        target = os.path.basename(fh.name).split(".")[1:-2]  # .NAME.XXXXXXXX.tmp
        if not names or ".".join(target) in names:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fh, payload)

    monkeypatch.setattr(files, "write_bytes", write)


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*.tmp"))


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_the_writer_respects_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    paths = [
        write_json(tmp_path / "a.json", {"x": [1.0, float("nan")]}),
        write_npz(tmp_path / "a.npz", {"x": np.arange(3)}),
        write_text(tmp_path / "sub" / "a.md", "# report\n"),
        load_stream(load_config(None, ["training.steps=1"])).save_npz(tmp_path / "s.npz"),
    ]
    for path in paths:
        assert _mode(path) == expected, (path.name, oct(_mode(path)))
    # replacing an existing file gives the new file the umask's mode too
    os.chmod(paths[0], 0o600)
    write_json(paths[0], {"x": 1})
    assert _mode(paths[0]) == expected
    assert _leftovers(tmp_path) == []


def test_command_outputs_and_figures_respect_the_umask(fake, tmp_path, umask, capsys):
    umask(0o022)
    out = tmp_path / "o"
    status, _, err = run(["train", "--width", 8, "--out", out], capsys)
    assert status == 0, err
    for name in ("result.json", "losses.png"):
        assert _mode(out / name) == 0o644, name


def test_a_failed_write_names_the_file_and_leaves_the_old_one(tmp_path, monkeypatch):
    path = write_text(tmp_path / "r.md", "old")
    _full_disk(monkeypatch)
    with pytest.raises(OSError, match="r.md") as caught:
        write_text(path, "new")
    assert caught.value.errno == errno.ENOSPC
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("failing", [(), ("losses.png",), ("result.json",)])
def test_train_on_a_full_disk_leaves_nothing_to_overwrite(
    fake, tmp_path, monkeypatch, capsys, failing
):
    """A full disk while writing the figure or the result: exit 2 with the file's path, no
    result.json (which marks a run complete), no temporary file; the rerun needs no
    --overwrite."""
    out = tmp_path / "o"
    with monkeypatch.context() as patch:
        _full_disk(patch, *failing)
        status, _, err = run(["train", "--width", 8, "--out", out], capsys)
    first = failing[0] if failing else "losses.png"  # the figure is written first
    assert_one_line_error(status, err, str(out / first), "No space left on device")
    assert not (out / "result.json").exists()
    assert _leftovers(tmp_path) == []
    status, _, err = run(["train", "--width", 8, "--out", out], capsys)
    assert status == 0, err
    assert (out / "result.json").is_file() and (out / "losses.png").is_file()


def test_compare_on_a_full_disk_leaves_no_compare_json(tmp_path, monkeypatch, capsys):
    """compare's figures come before compare.json; a full disk on a figure leaves no
    compare.json, so the rerun resumes without --overwrite."""
    data = {"grid": {}, "summary": {"notes": []}, "meta": {"pieces_reused": 0}}
    monkeypatch.setattr(experiment, "load_stream", lambda config: _NO_DATA)
    monkeypatch.setattr(compare_command, "run_compare", lambda *a, **k: data)
    figures = []

    def plot(data, out):
        figures.append(write_text(out / "bias.png", b"png"))

    monkeypatch.setattr(compare_command, "plot_compare", plot)
    monkeypatch.setattr(compare_command, "rate_lines", lambda data: "")
    out = tmp_path / "c"
    argv = ["compare", "--widths", 8, "--depths", 2, "--out", out]
    with monkeypatch.context() as patch:
        _full_disk(patch, "bias.png")
        status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, str(out / "bias.png"), "No space left")
    assert not (out / "compare.json").exists()
    assert _leftovers(tmp_path) == []
    status, _, err = run(argv, capsys)
    assert status == 0, err
    assert (out / "compare.json").is_file() and figures


def test_demo_on_a_full_disk_leaves_no_demo_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "plot_demo", lambda data, path: write_text(path, b"png"))
    canned = {
        "summary": {"rows": [], "rate_text": "rate not fitted"},
        "compare": {"grid": {}, "meta": {}, "config": {}},
    }
    monkeypatch.setattr(demo, "run_demo", lambda *args, **kwargs: canned)
    out = tmp_path / "demo"
    with monkeypatch.context() as patch:
        _full_disk(patch, "overlay.png")
        status, _, err = run(["demo", "--fast", "--out", out], capsys)
    assert_one_line_error(status, err, str(out / "overlay.png"), "No space left")
    assert not (out / "demo.json").exists() and _leftovers(tmp_path) == []
    status, _, err = run(["demo", "--fast", "--out", out], capsys)
    assert status == 0, err
    assert (out / "demo.json").is_file()


def test_norms_on_a_full_disk_leaves_no_norms_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(experiment, "load_stream", lambda config: _NO_DATA)
    monkeypatch.setattr(two_layer, "run_norms", lambda *a, **k: {"runs": [], "seeds": 1})
    monkeypatch.setattr(two_layer, "plot_norms", lambda r, path: write_text(path, b"png"))
    out = tmp_path / "n"
    with monkeypatch.context() as patch:
        _full_disk(patch, "norms.png")
        status, _, err = run(["norms", "--out", out], capsys)
    assert_one_line_error(status, err, str(out / "norms.png"))
    assert not (out / "norms.json").exists() and _leftovers(tmp_path) == []
    status, _, err = run(["norms", "--out", out], capsys)
    assert status == 0, err
    assert (out / "norms.json").is_file()
