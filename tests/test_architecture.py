"""The structure the code promises (docs/architecture.md): dependencies point one way, modules
stay small, code outside a subpackage uses its public names, and learning rates, multipliers and
gamma0 are traced, so a sweep over them compiles each step once."""

import ast
import re
from pathlib import Path

import equinox as eqx
import jax
import pytest

from nfd_sde import load_config, load_stream, solve_limit, train_finite
from nfd_sde.finite import mup_sgd_step
from nfd_sde.limit import jit_step

ROOT = Path(__file__).resolve().parents[1]
# package -> the packages it may import (besides itself and third-party code)
LAYERS = {
    "solvers": set(),
    "nfd_sde.model": {"solvers"},
    "nfd_sde.finite": {"solvers", "nfd_sde.model"},
    "nfd_sde.limit": {"solvers", "nfd_sde.model"},
    "nfd_sde.validation": {"solvers", "nfd_sde.model", "nfd_sde.finite", "nfd_sde.limit"},
    "nfd_sde.experiments": {
        "solvers",
        "nfd_sde.model",
        "nfd_sde.finite",
        "nfd_sde.limit",
        "nfd_sde.validation",
    },
}
MAX_LINES = 330  # "aim under ~300 lines" (STYLE.md rule 5), with a margin for docstrings


def _modules():
    for package in LAYERS:
        folder = ROOT / package.replace(".", "/")
        for path in sorted(folder.glob("*.py")):
            yield package, path


def _imported(package: str, path: Path) -> set[str]:
    """Absolute names of the first-party packages a module imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            names.add(name)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    first_party = set()
    for name in names:
        for layer in LAYERS:
            if name == layer or name.startswith(layer + "."):
                first_party.add(layer)
        if name == "nfd_sde":
            first_party.add("nfd_sde")
    return first_party


@pytest.mark.parametrize("package, path", list(_modules()), ids=lambda v: str(v))
def test_dependencies_point_one_way(package, path):
    allowed = LAYERS[package] | {package}
    imported = _imported(package, path)
    assert imported <= allowed, (path.relative_to(ROOT), imported - allowed)


@pytest.mark.parametrize("package, path", list(_modules()), ids=lambda v: str(v))
def test_modules_stay_small(package, path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, (path.relative_to(ROOT), lines)


PRIVATE = re.compile(r"\bnfd_sde(\.[a-z]+)*\._[a-z]|\bsolvers\._[a-z]")


@pytest.mark.parametrize(
    "path",
    sorted(
        [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("benchmarks/*.py")]
        + [*ROOT.glob("docs/*.md"), ROOT / "README.md"]
    ),
    ids=lambda p: p.name,
)
def test_notebooks_benchmarks_and_docs_use_public_names(path):
    if path.name == "_restructure_probe.py":
        pytest.skip("drives the tree before the restructuring, whose steps were private")
    text = path.read_text()
    assert not PRIVATE.search(text), (path.name, PRIVATE.search(text).group(0))


def test_a_learning_rate_sweep_compiles_each_step_once():
    """Five learning rates (and gamma0 and the group multipliers changing with them): the limit
    step and the finite step are each traced once. Sizes no other test uses, so the first run of
    the sweep is the one that traces."""
    config = load_config(
        None,
        [
            "model.dim=3",
            "training.steps=2",
            "training.batch=3",
            "data.eval_size=2",
            "network.width=10",
            "network.depth=3",
            "solver.particles=40",
            "solver.depth_steps=3",
            "solver.representation=field",
            "solver.groups=2",
            "solver.levels=1",
        ],
    )
    stream = load_stream(config)
    limit_before = eqx.debug.get_num_traces(jit_step)
    finite_before = eqx.debug.get_num_traces(mup_sgd_step)
    for i, eta in enumerate((0.1, 0.2, 0.4, 0.8, 1.6)):
        swept = config.replace(
            training={"eta": eta, "eta_U": 0.5 * i, "eta_v": 1.0 + i, "eta_W": 2.0 - 0.1 * i},
            model={"gamma0": 1.0 + 0.25 * i},
            solver={"jitter": 10.0 ** (-6 - i)},
        )
        solve_limit(swept, stream, key=jax.random.key(i))
        train_finite(swept, stream, key=jax.random.key(i))
    assert eqx.debug.get_num_traces(jit_step) - limit_before == 1
    assert eqx.debug.get_num_traces(mup_sgd_step) - finite_before == 1
