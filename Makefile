# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv when missing.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
DEMO_DIR ?= demo-data

.PHONY: demo test check install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's metadata changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make demo: install, migrate a SQLite database under ./demo-data, load the reference library,
## run the demonstration network and serve the API and console on http://127.0.0.1:8000
demo: install
	$(BIN)/sentinel demo --data-dir $(DEMO_DIR)

## make check: lint and type-check
check: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## make test: install with the dev extras, lint, type-check and run the whole test suite
test: check
	$(BIN)/python -m pytest

clean:
	rm -rf $(DEMO_DIR) .pytest_cache .mypy_cache .ruff_cache
