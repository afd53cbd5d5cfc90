# The two commands of the README: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

.PHONY: demo test test-fast lint bench lab clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(PY)
	$(PIP) install -e '.[demo]'
	touch $@

$(VENV)/.lint-installed: pyproject.toml | $(PY)
	$(PIP) install -e '.[lint]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(PY)
	$(PIP) install -e '.[dev,demo]'
	touch $@ $(VENV)/.lint-installed

## demo: run notebooks/quickstart.ipynb in a real kernel on the embedded store and say where the run went
demo: $(VENV)/.demo-installed
	$(PY) scripts/demo.py notebooks/quickstart.ipynb

## lint: ruff (lint + format check), mypy on the package, and the layers (import-linter, pyproject.toml)
lint: $(VENV)/.lint-installed
	$(VENV)/bin/ruff check tracker_jupyter tests bench scripts
	$(VENV)/bin/ruff format --check tracker_jupyter tests bench scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache

## test: install what the tests need (Python packages, Debian's Chromium and PostgreSQL), lint, run the suite
test: $(VENV)/.dev-installed lint
	sh scripts/install-browser.sh
	sh scripts/install-postgres.sh
	$(PY) -m pytest

## test-fast: the tier to run in a loop (under a minute): no MLflow server, browser, kernels or slow tests
test-fast: $(VENV)/.dev-installed
	$(PY) -m pytest -q -n auto -m "not (browser or mlflow or kernel or slow)"

## bench: side-by-side benchmark against wandb, trackio and MLflow (own venv: the peers are heavy, and
## run.py --install adds only those among the contenders BENCH_ARGS asks for: "--only ours,naive" adds none)
bench:
	test -x .bench-venv/bin/python || $(PYTHON) -m venv .bench-venv
	.bench-venv/bin/python -m pip --disable-pip-version-check -q install -e .
	.bench-venv/bin/python bench/run.py --install $(BENCH_ARGS)

## lab: JupyterLab on the notebooks (as root, in a container or on a cloud box, with the --allow-root it needs)
lab: $(VENV)/.dev-installed
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks

clean:
	rm -rf $(VENV) .bench-venv tracker test-artifacts .pytest_cache .mypy_cache .ruff_cache
