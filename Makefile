# Entry points: `make demo`, `make test` and `make notebooks`. Each creates .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test notebooks lint clean

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
	$(BIN)/python -m pytest -m "not slow" -n auto --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf runs .pytest_cache
