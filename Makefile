# Entry points: `make demo`, `make test` and `make notebooks`. Each creates .venv on first use.
# `make test-slow` runs the slow validation set; `make test-slow-shard` today's share of it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow test-slow-shard notebooks lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/nfd-sde demo --out runs/demo --overwrite

# JupyterLab (the `notebooks` extra) into .venv on first use, then the notebooks in a browser;
# they write under runs/notebooks/.
notebooks: $(STAMP)
	test -x $(BIN)/jupyter-lab || $(BIN)/python -m pip install --quiet -e '.[notebooks]'
	$(BIN)/jupyter-lab notebooks/

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n auto --dist loadfile --max-worker-restart=0

# every `slow` validation run
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -n auto --dist loadfile --max-worker-restart=0

# the slow tests of today's (UTC) shard of the weekly rotation (tools/slow_rotation.py); pytest
# exits with status 5 when the shard is empty
test-slow-shard: $(STAMP)
	$(BIN)/python -m pytest -m slow --slow-shard today -n auto --dist loadfile --max-worker-restart=0

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf runs .pytest_cache
