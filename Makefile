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

.PHONY: dev test lint fmt clean screenshots chaos fuzz

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

# The suite runs on TEST_WORKERS processes (pytest-xdist; 0 runs it in this one): its time is mostly
# waiting on real processes, not CPU. Each worker has its own PostgreSQL database and Redis number
# (tests/conftest.py); RabbitMQ's tests run on one worker (--dist loadgroup), and the slowest tests start
# first (tests/conftest.py orders them; --no-loadscope-reorder keeps that order).
# `make test PYTEST_ARGS="tests/unit -x"` runs a part of it; `TEST_WORKERS=0` runs it serially.
# Bytecode is cached even where PYTHONDONTWRITEBYTECODE is set: every worker, gunicorn and CLI
# process a test starts would compile the project again, and pytest its assertion rewrites.
TEST_WORKERS ?= 4
test: $(TEST_STAMP)
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup --no-loadscope-reorder $(PYTEST_ARGS)

# tests/fuzz with thousands of cases and a fresh seed: schemathesis (every phase) against the API over
# HTTP, hypothesis against the form and the validators. `make test` runs the same tests, bounded.
FUZZ_EXAMPLES ?= 1000
FUZZ_PROPERTY_EXAMPLES ?= 5000
# FUZZ_SEED=<seed printed by a run> replays that schemathesis run.
FUZZ_SEED ?= random
fuzz: $(TEST_STAMP)
	FUZZ_MAX_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_PROPERTY_EXAMPLES=$(FUZZ_PROPERTY_EXAMPLES) FUZZ_SEED=$(FUZZ_SEED) \
		$(BIN)/python -m pytest -q -s -o timeout=3600 tests/fuzz $(PYTEST_ARGS)

# The chaos suite on both brokers (docs/reliability.md): `membersync chaos` on Redis, then on RabbitMQ
# at CHAOS_RABBITMQ_URL. CHAOS_ARGS adds options (`make chaos CHAOS_ARGS="--registrations 500"`);
# DATABASE_URL=postgresql+psycopg://... makes it run on PostgreSQL, with the connection drop.
CHAOS_ARGS ?=
CHAOS_RABBITMQ_URL ?= amqp://guest:guest@127.0.0.1:5672//

chaos: $(DEV_STAMP)
	$(BIN)/membersync chaos --broker redis $(CHAOS_ARGS)
	$(BIN)/membersync chaos --broker rabbitmq --broker-url '$(CHAOS_RABBITMQ_URL)' $(CHAOS_ARGS)

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
