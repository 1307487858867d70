# The two commands a person needs: `make dev` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Two distributions, both editable: the product (pyproject.toml) and the development harness of
# emulators, embedded Redis and benchmarks (sandbox/pyproject.toml). A change to either reinstalls.
PROJECTS := pyproject.toml sandbox/pyproject.toml
INSTALL := $(BIN)/python -m pip install --quiet
# One stamp per install: dev needs no test or lint tool, test and lint add their own extras.
DEV_STAMP := $(VENV)/.installed-dev
TEST_STAMP := $(VENV)/.installed-test
LINT_STAMP := $(VENV)/.installed-lint

.PHONY: dev test lint fmt clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEV_STAMP): $(PROJECTS) | $(BIN)/python
	$(INSTALL) -e . -e sandbox/
	touch $@

$(TEST_STAMP): $(PROJECTS) | $(BIN)/python
	$(INSTALL) -e '.[test]' -e sandbox/
	touch $@

$(LINT_STAMP): $(PROJECTS) | $(BIN)/python
	$(INSTALL) -e '.[lint]' -e sandbox/
	touch $@

# `make dev DEV_ARGS=--fast-retries` (or `DEV_ARGS="--fast-retries --verbose"`): options of `membersync dev`.
DEV_ARGS ?=

dev: $(DEV_STAMP)
	$(BIN)/membersync dev $(DEV_ARGS)

test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Rewrite docs/screenshots/ from the browser tests (an ordinary test run leaves them alone).
screenshots: $(TEST_STAMP)
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q -k "browser or mail_page" tests/integration

lint: $(LINT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(LINT_STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
