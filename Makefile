# The two commands of the README: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
WORKSPACE ?= workspace
HOUSEHOLDS ?= 1000000

.PHONY: help venv demo test test-fast test-slow lint format bench attack sysdeps clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/:\t/'

$(STAMP): pyproject.toml scripts/install.sh
	@bash scripts/install.sh "$(PYTHON)" "$(VENV)"
	@touch $(STAMP)

venv: $(STAMP)  ## create .venv and install the sandbox with its test tools

sysdeps:  ## system packages the tests need (Chromium for browser tests, PostgreSQL for the ledger test)
	bash scripts/sysdeps.sh

demo: $(STAMP)  ## the whole path: population, a blocked model, a variant that passes, review, outbox, verify (~2-4 min)
	@$(BIN)/sandbox demo --workspace $(WORKSPACE) --households $(HOUSEHOLDS)

test: $(STAMP) sysdeps  ## the whole test suite
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## tests without browser, slow and system tests
	$(BIN)/python -m pytest -q -m "not slow and not browser"

test-slow: $(STAMP)  ## the slow tests: a fresh clone's install and make demo at the default size (~10 min)
	SANDBOX_SLOW=1 $(BIN)/python -m pytest -q -m slow tests/test_demo_clone.py

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check sandbox synthetic tests benchmarks
	$(BIN)/ruff format --check sandbox synthetic tests benchmarks
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format sandbox synthetic tests benchmarks
	$(BIN)/ruff check --fix sandbox synthetic tests benchmarks

bench: $(STAMP)  ## national-scale benchmarks against peers (long)
	$(BIN)/python -m benchmarks

attack: $(STAMP) sysdeps  ## the adversarial suite, including its slow cases
	$(BIN)/python -m pytest -q tests/attacks --run-slow

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache $(WORKSPACE)
