"""Every notebook in notebooks/ executes headless in fast mode, without errors, with figures.

The quickstart runs in the default suite; the others (about 100 s together on 2 cores) are
`slow` and run in the weekly rotation. Every notebook's code is checked in the default suite
for what breaks it without running it: it parses, and every name it imports from the package
exists.

The kernel is this interpreter (`sys.executable`, the test venv's Python with ipykernel), named by
a kernel spec written into a temporary JUPYTER_PATH entry, so no kernel needs to be installed and
a `python3` kernel of another environment cannot be picked up by mistake. The spec sets
`NFD_FAST=1`, which every notebook reads to shrink its sizes, and `NFD_RUNS`, the folder the
notebooks write under (by default the repository's runs/), to a temporary one.
"""

import ast
import importlib
import json
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
DEFAULT_RUN = "01_quickstart.ipynb"
KERNEL = "nfd-sde-test"
TIMEOUT_S = 600  # per cell


@pytest.fixture(scope="module")
def kernel_name(tmp_path_factory, monkeypatch_module):
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "nfd-sde tests",
                "language": "python",
                "env": {"NFD_FAST": "1", "MPLBACKEND": "Agg", "NFD_RUNS": str(root / "runs")},
            }
        )
    )
    monkeypatch_module.setenv("JUPYTER_PATH", str(root))
    return KERNEL


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"01_quickstart.ipynb", "02_convergence.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_code_parses_and_its_imports_exist(path):
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(
            line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
        tree = ast.parse(source)  # a SyntaxError names the cell's line
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                if node.module.split(".")[0] not in ("nfd_sde", "solvers"):
                    continue
                module = importlib.import_module(node.module)
                missing = [a.name for a in node.names if not hasattr(module, a.name)]
                assert not missing, f"{path.name}: {node.module} has no {missing}"


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=() if p.name == DEFAULT_RUN else pytest.mark.slow) for p in NOTEBOOKS],
    ids=[p.name for p in NOTEBOOKS],
)
def test_notebook_runs_in_fast_mode(path, kernel_name):
    notebook = nbformat.read(path, as_version=4)
    stored = [cell for cell in notebook.cells if cell.cell_type == "code" and cell.get("outputs")]
    assert not stored, f"{path.name} is committed with outputs; clear them"
    client = nbclient.NotebookClient(
        notebook,
        kernel_name=kernel_name,
        timeout=TIMEOUT_S,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if any cell fails
    outputs = [out for cell in notebook.cells for out in cell.get("outputs", [])]
    errors = [out for out in outputs if out.get("output_type") == "error"]
    assert not errors, errors
    images = [out for out in outputs if "image/png" in out.get("data", {})]
    assert images, f"{path.name} produced no figure"
    # what the notebook prints and writes in prose (not reprs of arrays): no NaN there
    text = "".join(
        "".join(out.get("text", "")) + "".join(out.get("data", {}).get("text/markdown", ""))
        for out in outputs
    )
    assert not re.search(r"\bnan\b", text, flags=re.I), f"{path.name} prints NaN"
