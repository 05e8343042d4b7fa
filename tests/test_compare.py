"""`run_compare`, its figures, its report and the `compare` / `report` commands.

* End to end (one CLI run shared by the checks): at the largest width the decoupled ensemble
  mean agrees with the limit at M = L within its noise, while the standard network's does not;
  the same check fails when the limit's outputs are off by 5%; every file, figure, stored run
  and report line is there; a rerun reuses the stored runs.
* Divergence is recorded and reported, never a crash; no training steps gives the outputs at
  initialisation (once the config accepts training.steps = 0).
* Mistakes (bad grids or options, a solver config that does not fit, an existing output, the
  runs of another config) are refused before any solve or training, with exit status 2 and one
  line on stderr.
* `slow`: the README's example resolves its rates.
"""

import json
import re
import shutil

import matplotlib.image
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import nfd_sde._cli as cli
import nfd_sde.experiments.compare._compare as compare
import nfd_sde.experiments.compare._runs as compare_runs
from nfd_sde import load_config, load_stream, read_compare, run_compare, write_compare, write_report
from nfd_sde.experiments import FIGURES, check_grid, read_compare_runs
from nfd_sde.experiments.compare._plots import drawers
from tests._figures import layout_defects

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(argv, capsys):
    """The CLI in-process: (exit status, stdout, stderr); argparse's own exits included."""
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, err, *fragments):
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a refusal comes after a limit solve or a finite training started."""

    def forbidden(*args, **kwargs):
        raise AssertionError("heavy work started before the refusal")

    for name in ("solve_limit", "train_finite", "train_ensemble"):
        monkeypatch.setattr(compare_runs, name, forbidden)


TINY = ["training.steps=1", "training.batch=1", "data.eval_size=2"]


# --------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "grid, fragment",
    [
        (dict(widths=[]), "widths is empty"),
        (dict(widths=[64, 4.5]), "4.5 is not an integer"),
        (dict(widths=[64, 0]), "0 is not an integer >= 1"),
        (dict(depths=[-3]), "-3 is not an integer >= 1"),
        (dict(depths=["4"]), "'4' is not an integer"),
        (dict(depths=[True]), "True is not an integer"),
        (dict(depths=[4, 4]), "once"),
        (dict(widths=64), "give a list"),
        (dict(seeds=0), "seeds=0"),
        (dict(max_seeds=0), "max_seeds=0"),
        (dict(particles=2.0), "particles=2.0"),
        (dict(limit_seeds=0), "limit_seeds=0"),
        (dict(depth_steps=0), "depth_steps=0"),
        (dict(depths=[2, 3]), "every depth must divide the largest"),
        (dict(vmap_seeds=False), "common_noise=False and antithetic=False"),
        (dict(precision=1.5), "precision=1.5"),
        (dict(depth_reference="extrapolated"), "depth_reference='extrapolated'"),
    ],
)
def test_bad_grids_are_refused_before_any_work(no_work, grid, fragment):
    config = load_config(None, TINY)
    args = dict(widths=[8, 16], depths=[2], seeds=1, particles=64, limit_seeds=1)
    with pytest.raises(ValueError, match=re.escape(fragment)):
        run_compare(config, load_stream(config), **(args | grid))


def test_check_grid_sorts():
    assert check_grid(
        widths=[256, 64], depths=(8, 4), seeds=1, particles=1, depth_steps=1, limit_seeds=1
    ) == ((64, 256), (4, 8))


@pytest.mark.parametrize("text", ["", "a", "0", "-3", "4.5", "64,,128", "64,64", " , "])
def test_cli_refuses_bad_lists(no_work, tmp_path, capsys, text):
    argv = ["compare", f"--widths={text}", "--depths", "2", "--out", tmp_path / "o"]
    status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, "argument --widths", "integers >= 1")
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "flag", ["--seeds", "--max-seeds", "--particles", "--depth-steps", "--limit-seeds"]
)
@pytest.mark.parametrize("text", ["0", "-1", "2.5", "x"])
def test_cli_refuses_bad_counts(no_work, tmp_path, capsys, flag, text):
    argv = ["compare", "--widths", "8", "--depths", "2", f"{flag}={text}", "--out", tmp_path]
    status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, f"argument {flag}", "not an integer >= 1")


def test_cli_refuses_a_limit_that_does_not_fit(no_work, tmp_path, capsys):
    argv = ["compare", "--widths", "8", "--depths", "2", "--particles", 10**8]
    argv += ["--depth-steps", 1000, "--out", tmp_path / "o"]
    status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, "GB", "solver.memory_limit_gb")
    assert not (tmp_path / "o" / "compare.json").exists()


def test_cli_refuses_an_existing_compare(no_work, tmp_path, capsys):
    (tmp_path / "compare.json").write_text("{}")
    argv = ["compare", "--widths", "8", "--depths", "2", "--out", tmp_path]
    status, _, err = run(argv, capsys)
    assert_one_line_error(status, err, "already exists", "--overwrite")
    assert (tmp_path / "compare.json").read_text() == "{}"


def test_report_of_a_missing_compare(tmp_path, capsys):
    status, _, err = run(["report", tmp_path], capsys)
    assert_one_line_error(status, err, "compare.json", "does not exist")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"summary": {}}', "lacks 'grid'"),
        ("[1, 2]", "JSON list"),
        ('{"grid": {"widths": [8', "not valid JSON"),
        ('{"grid": 1, "scale": 1, "limits": 1, "ensembles": 1, "summary": 1, "fits": 1, '
         '"config": 1, "meta": 1}', "not the result of `nfd-sde compare`"),
    ],
)  # fmt: skip
def test_report_of_a_malformed_compare(tmp_path, capsys, text, fragment):
    (tmp_path / "compare.json").write_text(text)
    status, _, err = run(["report", tmp_path], capsys)
    assert_one_line_error(status, err, str(tmp_path / "compare.json"), fragment)
    assert not (tmp_path / "report.md").exists()


# ------------------------------------------------------------------------ end to end (CLI)

# The default config at K = 2 steps of batch 2, 4 eval inputs. Width 256, depths 2 and 4 (common
# noise), 128 antithetic pairs, limits at M = L from 8 pairs of 2^14 particles. Measured on this
# problem: the decoupled bias is an O(1/n) scale error, 10% of |f_limit| at n = 16 and 5% at
# n = 32, so about 0.6% at n = 256, under its noise floor (1.7%; 95% upper bound 2%). Rates over
# several widths are checked on synthetic ensembles (tests/test_compare_stats.py) and in the slow
# test below.
E2E = ["--widths", "256", "--depths", "2,4", "--seeds", "128", "--particles", 2**14]
E2E += ["--limit-seeds", "8", "--set", "training.steps=2", "--set", "training.batch=2"]
E2E += ["--set", "data.eval_size=4"]
E2E_OPTIONS = dict(widths=[256], depths=[2, 4], seeds=128, particles=2**14, limit_seeds=8)


@pytest.fixture(scope="module")
def compare_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    assert cli.main([str(a) for a in ["compare", *E2E, "--out", out]]) == 0
    return out


def test_compare_figures_have_a_clean_layout(compare_run, tmp_path):
    data = read_compare(compare_run)
    for name, draw in drawers().items():
        assert layout_defects(draw(data, tmp_path / f"{name}.png")) == [], name


def check_decoupled_matches_limit(data):
    """At the largest width, at every depth: the decoupled ensemble mean's distance to the limit
    at M = L is not resolved (its 95% interval, from both ensembles' noise, contains 0: a
    two-sample test of equal means), and that interval is narrow enough (upper bound under 3% of
    |f_limit|) that a limit 5% off would be resolved. The standard network's distance, which
    holds the reused-weight coupling, is resolved there."""
    bias = data["summary"]["bias"]
    for cell in bias["decoupled"][-1]:
        assert not cell["resolved"], cell
        assert cell["high"] < 0.03, cell
    for cell in bias["standard"][-1]:
        assert cell["resolved"], cell


def test_decoupled_ensemble_matches_its_limit(compare_run):
    check_decoupled_matches_limit(read_compare(compare_run))


def test_a_limit_five_percent_off_fails_the_check(compare_run, tmp_path, monkeypatch):
    """The same comparison (every run reused from the first) with the limit's outputs scaled
    by 1.05: the check above must fail."""
    shutil.copytree(compare_run / "runs", tmp_path / "runs")
    solves = compare.limit_solves

    def off_by_five_percent(*args, **kwargs):
        arrays = solves(*args, **kwargs)
        return arrays | {"f_eval": 1.05 * arrays["f_eval"]}

    monkeypatch.setattr(compare, "limit_solves", off_by_five_percent)
    monkeypatch.setattr(compare_runs, "train_ensemble", None)  # nothing may be trained again
    config = load_config(None, [E2E[i + 1] for i, a in enumerate(E2E) if a == "--set"])
    data = run_compare(config, load_stream(config), **E2E_OPTIONS, out_dir=tmp_path)
    assert data["meta"]["pieces_saved"] == 0
    with pytest.raises(AssertionError):
        check_decoupled_matches_limit(data)


def test_compare_writes_every_file_figure_and_run(compare_run):
    for name in FIGURES.values():
        path = compare_run / name
        assert path.read_bytes()[:8] == PNG_MAGIC, name
        height, width, _ = matplotlib.image.imread(path).shape
        assert width >= 1500 and height >= 600, (name, width, height)
    data = json.loads((compare_run / "compare.json").read_text())
    grid = data["grid"]
    assert (grid["widths"], grid["depths"], grid["seeds"]) == ([256], [2, 4], 128)
    assert grid["limit_depth_steps"] == [2, 4] and grid["common_noise"] and grid["antithetic"]
    assert [lim["depth_steps"] for lim in data["limits"]] == [2, 4]
    assert all(lim["solves"] == 16 and lim["mc_error"]["f_eval_mean"] > 0 for lim in data["limits"])
    assert len(data["ensembles"]) == 2 * 2
    assert all(e["members"] == 256 and e["samples"] == 128 for e in data["ensembles"])
    assert data["scale"]["kind"] == "relative" and data["meta"]["versions"]["jax"]
    for name in ("bias", "fluctuation", "depth"):
        assert np.shape(data["summary"][name]["decoupled"]) == (1, 2), name
    assert data["summary"]["depth"]["decoupled"][0][1] is None  # no depth beyond the largest
    assert all(cell["resolved"] for cell in data["summary"]["gap"][0])
    assert data["summary"]["gap_infinite_width"] == [None, None]  # one width
    assert data["summary"]["depth_limit"][0]["resolved"]  # common noise across M
    runs = read_compare_runs(compare_run)
    assert sum(name.startswith("limit_") for name in runs) == 2 * 8 * 2  # M, seeds, mirrors
    for cell in ("decoupled_n256_L2", "standard_n256_L4"):  # chunks cover seeds 0..127 once
        chunks = [re.fullmatch(rf"{cell}_s(\d+)-(\d+)", name) for name in runs]
        spans = sorted((int(m[1]), int(m[2])) for m in chunks if m)
        assert spans[0][0] == 0 and spans[-1][1] == 128, spans
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:])), spans
    first_chunk = next(name for name in runs if name.startswith("decoupled_n256_L2_s0-"))
    assert runs[first_chunk]["f_eval"].shape[1:] == (3, 4, 1)
    # seeds share their initial weights across modes; antithetic mirrors negate the output
    first = runs[first_chunk]["f_eval"][:, 0]
    np.testing.assert_array_equal(first, runs["standard" + first_chunk[9:]]["f_eval"][:, 0])
    np.testing.assert_allclose(first[0::2], -first[1::2], atol=1e-7)


def test_report_states_rates_and_embeds_figures(compare_run, capsys):
    status, out, err = run(["report", compare_run], capsys)
    assert status == 0, err
    text = (compare_run / "report.md").read_text()
    for name in FIGURES.values():
        assert f"]({name})" in text
    assert "decoupled depth error: no rate" in text  # two depths: one successive difference
    assert "the limit's depth error" in text
    assert "< 0.0" in text and "(not resolved)" in text  # the decoupled bias at n = 256
    assert "gradient-independence" in text and "Monte Carlo" in text


def _paths(value, prefix=()):
    """Every path of keys and indices into a JSON value."""
    yield prefix
    if isinstance(value, dict | list):
        for key, child in value.items() if isinstance(value, dict) else enumerate(value):
            yield from _paths(child, (*prefix, key))


@st.composite
def broken_compares(draw, data):
    """compare.json of a real run with one part removed or replaced by another JSON type."""
    data = json.loads(json.dumps(data))
    paths = sorted(_paths(data), key=repr)
    path = draw(st.sampled_from([p for p in paths if p]))
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(st.sampled_from([None, "x", -1, [], {}, [None], {"x": 1}]))
    return data


@settings(deadline=None, max_examples=30, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_report_of_a_damaged_compare(compare_run, tmp_path_factory, data):
    """A real compare.json with one part removed or of another type: a report or a one-line
    error naming the file, never a traceback."""
    original = json.loads((compare_run / "compare.json").read_text())
    damaged = data.draw(broken_compares(original))
    out = tmp_path_factory.mktemp("damaged")
    for name in FIGURES.values():  # the figures are there: the report reads compare.json alone
        shutil.copy(compare_run / name, out / name)
    (out / "compare.json").write_text(json.dumps(damaged))
    try:
        write_report(out)
    except ValueError as error:
        assert str(out / "compare.json") in str(error) and "\n" not in str(error)


def test_report_redraws_missing_figures(compare_run, tmp_path):
    (tmp_path / "compare.json").write_bytes((compare_run / "compare.json").read_bytes())
    assert write_report(tmp_path).is_file()
    for name in FIGURES.values():
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def test_a_killed_compare_resumes_and_another_config_is_refused(compare_run, tmp_path, capsys):
    """Stored runs without compare.json (a kill before the end): the rerun trains nothing."""
    shutil.copytree(compare_run / "runs", tmp_path / "runs")
    stored = sorted((tmp_path / "runs").glob("standard_n256_L4_*.npz"))
    stored[-1].unlink()  # killed before this one
    status, out, err = run(["compare", *E2E, "--out", tmp_path], capsys)
    assert status == 0, err
    pieces = len(list((compare_run / "runs").glob("*.npz")))
    assert f"({pieces - 1} runs reused)" in out
    data = read_compare(tmp_path)
    assert data["meta"]["pieces_saved"] == 1
    reference = read_compare(compare_run)
    assert data["summary"]["bias"] == reference["summary"]["bias"]
    (tmp_path / "compare.json").unlink()
    status, _, err = run(["compare", *E2E, "--limit-seeds", "4", "--out", tmp_path], capsys)
    assert_one_line_error(status, err, "different config or grid", "--overwrite")


# ----------------------------------------------------------------- divergence, K = 0, overwrite


@pytest.mark.slow
def test_overwrite_of_a_diverging_compare(tmp_path, capsys):
    """--overwrite replaces a finished compare (and drops its stale report). Here eta = 1e4
    diverges (ReLU, 3 steps): the limit and every network are marked, left out of the
    statistics with a note, and the report says so; nothing treats NaN as a number, and the
    adaptive rule asks for no more seeds."""
    (tmp_path / "compare.json").write_text("{}")
    (tmp_path / "report.md").write_text("old")
    argv = ["compare", "--widths", "8", "--depths", "2", "--max-seeds", "4", "--particles", 64]
    argv += ["--limit-seeds", 1, "--out", tmp_path, "--overwrite", "--set", "training.eta=1e4"]
    argv += ["--set", "training.steps=3", "--set", "training.batch=2", "--set", "data.eval_size=2"]
    status, out, err = run(argv, capsys)
    assert status == 0, err
    assert not (tmp_path / "report.md").exists()
    assert "note: the limit on M = 2 diverged" in out and "of 8 networks diverged" in out
    data = read_compare(tmp_path)
    assert data["grid"]["widths"] == [8] and data["ensembles"][0]["samples"] == 4
    assert data["summary"]["bias"]["decoupled"] == [[None]]
    assert data["summary"]["gap_infinite_width"] == [None]
    assert {d["first_bad_step"] for d in data["summary"]["divergence"]["finite"]} <= {1, 2, 3}
    assert "no rate" in out
    text = write_report(tmp_path).read_text()
    assert "diverged" in text and text.count("no rate") >= 2


def test_compare_without_training_steps(tmp_path):
    """K = 0: the outputs at initialisation only; the limit's vanish, so numbers are absolute."""
    config = load_config(None, ["training.steps=0", "training.batch=2", "data.eval_size=2"])
    data = run_compare(
        config, load_stream(config), widths=[8, 16], depths=[2], seeds=8, particles=256,
        limit_seeds=2, out_dir=tmp_path,
    )  # fmt: skip
    assert data["scale"]["kind"] == "absolute"
    assert np.shape(data["limits"][0]["f_eval"]) == (1, 2, 1)
    assert data["summary"]["fluctuation"]["decoupled"][0][0]["value"] > 0
    write_compare(data, tmp_path)
    write_report(tmp_path)


# ------------------------------------------------------------------------------------- slow

README = ["--widths", "8,16,32", "--depths", "2,4,8", "--particles", 2**14, "--limit-seeds", 8]
README += ["--max-seeds", 1024]


@pytest.mark.slow
def test_the_readme_example_resolves_its_rates(tmp_path, capsys):
    """The README's compare example: the decoupled bias falls with n (95% CI excludes 0, and
    contains -1), the depth error falls with L (CI excludes 0), and the gap at infinite width
    is resolved at every depth."""
    status, out, err = run(["compare", "configs/example.toml", *README, "--out", tmp_path], capsys)
    assert status == 0, err
    print(out)
    fits = read_compare(tmp_path)["fits"]
    bias, depth = fits["headline"]["bias"], fits["headline"]["depth"]
    assert bias["ci95"][1] < 0 and bias["ci95"][0] < -1 < bias["ci95"][1] + 0.2, bias
    assert depth["ci95"][1] < 0, depth
    assert all(c["resolved"] for c in read_compare(tmp_path)["summary"]["gap_infinite_width"])
