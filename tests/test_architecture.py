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


EXPERIMENTS = "nfd_sde.experiments"
# wing of the experiments -> the wings it may import, through their `__init__` only
WINGS = {
    "common": set(),
    "compare": {"common"},
    "two_layer": {"common"},
    "gia": {"common"},
    "single_runs": {"common", "compare"},
    "audit": {"common", "compare", "two_layer"},
}


def _modules():
    """(layer, module path) for every module of every layer, subpackages included."""
    for layer in LAYERS:
        folder = ROOT / layer.replace(".", "/")
        for path in sorted(folder.rglob("*.py")):
            yield layer, path


def _package(path: Path) -> str:
    """The dotted package a module belongs to (`nfd_sde.experiments.compare` for its modules)."""
    return ".".join(path.relative_to(ROOT).parent.parts)


def _imported_names(path: Path) -> set[str]:
    """Absolute names of the modules a module imports (relative imports resolved)."""
    package = _package(path)
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
    return names


def _imported(path: Path) -> set[str]:
    """The first-party layers a module imports."""
    first_party = set()
    for name in _imported_names(path):
        for layer in LAYERS:
            if name == layer or name.startswith(layer + "."):
                first_party.add(layer)
        if name == "nfd_sde":
            first_party.add("nfd_sde")
    return first_party


@pytest.mark.parametrize("package, path", list(_modules()), ids=lambda v: str(v))
def test_dependencies_point_one_way(package, path):
    allowed = LAYERS[package] | {package}
    imported = _imported(path)
    assert imported <= allowed, (path.relative_to(ROOT), imported - allowed)


def _wing(name: str) -> str | None:
    """The wing of the experiments a dotted name lies in (None outside the wings)."""
    parts = name.split(".")
    return parts[2] if parts[:2] == EXPERIMENTS.split(".") and len(parts) > 2 else None


def test_the_experiments_are_wings():
    """Every subpackage of the experiments is a known wing, and every module lies in one."""
    folder = ROOT / EXPERIMENTS.replace(".", "/")
    packages = {p.parent.name for p in folder.glob("*/__init__.py")}
    assert packages == set(WINGS)
    assert [p.name for p in folder.glob("*.py")] == ["__init__.py"]


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / EXPERIMENTS.replace(".", "/")).rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_wings_reach_each_other_only_through_their_faces(path):
    """A wing imports another only through its `__init__` (never its private modules), only the
    wings it stands on (`WINGS`: `common` none), and never the experiments' own `__init__`."""
    wing = _wing(_package(path))
    for name in _imported_names(path):
        other = _wing(name)
        if wing is None:  # experiments/__init__.py: the wings' faces only
            assert other is None or name == f"{EXPERIMENTS}.{other}", (path.name, name)
            continue
        assert name != EXPERIMENTS, (path.relative_to(ROOT), "imports the experiments' face")
        if other is None or other == wing:
            continue
        assert other in WINGS[wing], (path.relative_to(ROOT), f"{wing} may not import {other}")
        assert name == f"{EXPERIMENTS}.{other}", (path.relative_to(ROOT), f"private {name}")


@pytest.mark.parametrize("package, path", list(_modules()), ids=lambda v: str(v))
def test_modules_stay_small(package, path):
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, (path.relative_to(ROOT), lines)


PRIVATE = re.compile(r"\bnfd_sde(\.[a-z][a-z0-9_]*)*\._[a-z]|\bsolvers\._[a-z]")


@pytest.mark.parametrize(
    "path",
    sorted(
        [*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("benchmarks/*.py")]
        + [*ROOT.glob("docs/*.md"), ROOT / "README.md"]
    ),
    ids=lambda p: p.name,
)
def test_notebooks_benchmarks_and_docs_use_public_names(path):
    text = path.read_text()
    assert not PRIVATE.search(text), (path.name, PRIVATE.search(text).group(0))


# names a backward mode, a representation or a form of the accumulated weight updates goes by in
# a config; outside config parsing the code holds objects (`AbstractBackwardMode`,
# `AbstractRepresentation`, `solvers.AbstractUpdateForm`) and never compares names
VARIANT_NAMES = {"standard", "decoupled", "field", "weight", "two-sided", "dense", "pairs"}
CONFIG_PARSING = {"nfd_sde/model/_config.py", "nfd_sde/model/_config_fields.py"}


def _string_constants(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from _string_constants(element)


def _variant_comparisons(path: Path) -> list[str]:
    """`line: expression` of every comparison in `path` with a mode's or a representation's
    name, or with "auto" on an expression that mentions the representation."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        strings = {s for side in sides for s in _string_constants(side)}
        text = ast.unparse(node)
        if strings & VARIANT_NAMES or ("auto" in strings and "representation" in text):
            found.append(f"{node.lineno}: {text}")
    return found


@pytest.mark.parametrize("package, path", list(_modules()), ids=lambda v: str(v))
def test_no_string_comparison_on_the_backward_mode_or_the_representation(package, path):
    if str(path.relative_to(ROOT)) in CONFIG_PARSING:
        pytest.skip("config parsing turns the names into objects")
    assert not _variant_comparisons(path), (path.relative_to(ROOT), _variant_comparisons(path))


def test_the_variant_comparison_check_sees_one(tmp_path):
    """The check above is not vacuous: it finds a planted comparison of either kind."""
    sample = tmp_path / "planted.py"
    sample.write_text(
        'if config.solver.backward == "standard":\n    pass\n'
        'auto = solver.representation != "auto"\n'
    )
    assert _variant_comparisons(sample) == [
        "1: config.solver.backward == 'standard'",
        "3: solver.representation != 'auto'",
    ]


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
