"""Error messages that suggest a fix suggest one that works, and name what is really wrong; the
README says what the code supports."""

from pathlib import Path

import pytest

from nfd_sde import load_config
from nfd_sde.experiments.compare._store import MANIFEST, RUNS, RunStore
from nfd_sde.limit import plan_limit
from tests.test_cli import assert_one_line_error, run

SIZES = {"dim": 8, "steps": 64, "batch": 64, "eval_size": 8}
ROOT = Path(__file__).resolve().parents[1]


def test_depth_steps_zero_suggests_depth_steps(tmp_path, capsys):
    status, _, err = run(["solve", "--depth-steps", "0", "--out", tmp_path / "o"], capsys)
    assert_one_line_error(status, err, "--depth-steps", "16,32,64")
    assert "64,128,256" not in err  # the widths' example


@pytest.mark.parametrize("levels, depth_steps", [(10, 16), (3, 6), (2, 7)])
def test_the_suggested_depth_steps_are_valid(levels, depth_steps):
    overrides = [f"solver.levels={levels}", f"solver.depth_steps={depth_steps}"]
    with pytest.raises(ValueError, match=r"use e\.g\. depth_steps=(\d+), or levels <= (\d+)") as e:
        load_config(None, overrides)
    suggested, fewer = e.value.args[0].rsplit("depth_steps=", 1)[1].split(", or levels <= ")
    load_config(None, [f"solver.levels={levels}", f"solver.depth_steps={int(suggested)}"])
    load_config(None, [f"solver.levels={int(fewer)}", f"solver.depth_steps={depth_steps}"])
    with pytest.raises(ValueError):  # and `fewer` is the most levels that fit
        load_config(None, [f"solver.levels={int(fewer) + 1}", f"solver.depth_steps={depth_steps}"])


@pytest.mark.parametrize("representation", ["weight", "field"])
def test_an_oversized_solve_is_not_told_to_use_what_it_uses(representation):
    config = load_config(
        None,
        [f"solver.representation={representation}", "solver.particles=100000",
         "solver.depth_steps=64", "solver.levels=1", "solver.memory_limit_gb=0.01"],
    )  # fmt: skip
    with pytest.raises(ValueError, match="solver.memory_limit_gb") as error:
        plan_limit(config, **SIZES)
    advice = "representation='weight'" in str(error.value)
    assert advice == (representation == "field")


def test_a_truncated_compare_manifest_is_named_as_such(tmp_path):
    folder = tmp_path / RUNS
    folder.mkdir()
    (folder / MANIFEST).write_text('{"config": {"model"')
    with pytest.raises(ValueError, match="not valid JSON") as error:
        RunStore(tmp_path, {"grid": {}}, overwrite=False)
    assert "different config" not in str(error.value) and MANIFEST in str(error.value)
    RunStore(tmp_path, {"grid": {}}, overwrite=True)  # --overwrite discards it


def test_the_readme_says_solve_takes_two_layer_blocks():
    """The limit solver takes two-layer blocks (tests/test_two_layer_limit.py solves them): the
    README's config table must not call them finite-only."""
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if "| `block` |" in line)
    assert "finite networks only" not in row and "solve" in row
    config = load_config(ROOT / "configs" / "two_layer.toml", ["solver.levels=1"])
    assert plan_limit(config, **SIZES).bytes_needed > 0
