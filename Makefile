# The two commands: `make demo` and `make test`. Each creates .venv on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEV := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed-run
STAMP_BENCH := $(VENV)/.installed-bench
STAMP_MUTATE := $(VENV)/.installed-mutate

.PHONY: demo test lint typecheck pytest bench soak mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[cli]"
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,cli,examples,bench]"
	touch $@ $(STAMP_RUN)

$(STAMP_BENCH): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[cli,bench]"
	touch $@

$(STAMP_MUTATE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev,mutate]"
	touch $@

demo: $(STAMP_RUN)
	$(BIN)/ketchup demo

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP_DEV)
	$(BIN)/mypy

pytest: $(STAMP_DEV)
	$(BIN)/python -m pytest

test: lint typecheck pytest

bench: $(STAMP_BENCH)
	$(BIN)/python -m benchmarks

soak: $(STAMP_RUN)
	$(BIN)/python -m benchmarks.soak --jobs 50000

# Mutation testing of the pure core (minutes; not part of `make test`). Bar: 90% per module.
mutate: $(STAMP_MUTATE)
	$(BIN)/python -m tools.mutate

clean:
	rm -rf $(VENV) build dist *.egg-info mutants
