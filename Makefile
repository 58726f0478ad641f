# Two entry points: `make conformance` (the main job: the conformance suite on the embedded
# SQLite default) and `make test` (lint, types, tests). `make demo` shows a restart.
# Each creates .venv from pyproject.toml and constraints.txt on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=
COVERAGE_REPORT_ARGS ?=

.PHONY: conformance demo test lint typecheck pytest bench chaos mutation clean

$(STAMP): pyproject.toml constraints.txt
	@echo "Creating $(VENV) from pyproject.toml and constraints.txt (first run only; a minute or two)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --progress-bar on -c constraints.txt -e '.[dev]'
	touch $(STAMP)

conformance: $(STAMP)
	$(BIN)/llmgine-conformance

demo: $(STAMP)
	$(BIN)/llmgine-demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report $(COVERAGE_REPORT_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

# Every chaos scenario on a throwaway PostgreSQL (needs its server binaries; the clock
# scenarios need libfaketime: apt-get install faketime). CHAOS_ARGS: names, --events N.
CHAOS_ARGS ?=
chaos: $(STAMP)
	cd tests && ../$(BIN)/python -m chaos $(CHAOS_ARGS)

# Mutation testing of the reference stores (memory.py and the SQL store modules) with the
# conformance suite's store modules as the test command ([tool.mutmut] in pyproject.toml):
# prints the score and every surviving mutant. Slow (tens of minutes); not part of `make test`.
mutation: $(STAMP)
	$(BIN)/pip install --quiet 'mutmut==3.8.1'
	$(BIN)/mutmut run --max-children 2 || true
	$(BIN)/python ci/mutation_report.py

clean:
	rm -rf mutants $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache .pytest_cache .hypothesis
