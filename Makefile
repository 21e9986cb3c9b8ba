# Back Over: every target sets up what it needs on a fresh machine (Python 3.11 with venv).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-fast lint format rehearsal airflow lambda-zips sandbox-up sandbox-down bench clean

install: $(STAMP)

# The virtual environment is rebuilt when the pinned dependencies change. A developer's machine
# gets everything (requirements/dev.txt) and both distributions: `backover` (what ships) and
# `backover-sandbox` (sandbox/: the stand-ins, the local AWS runner, the rehearsal).
$(STAMP): requirements/runtime.txt requirements/airflow.txt requirements/dev.txt constraints.txt \
		pyproject.toml sandbox/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "pip==26.3"
	$(BIN)/python -m pip install -q -r requirements/dev.txt -c constraints.txt
	$(BIN)/python -m pip install -q --no-deps -e . -e ./sandbox
	touch $(STAMP)

# ruff, then mypy on the shipped code and the sandbox ([tool.mypy] in pyproject.toml: strict on
# restore, replication, verify and the MongoDB semantics); mypy's cache is .mypy_cache.
lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# Formats the tree the way `make lint` checks it (ruff format), and applies ruff's safe fixes.
format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Tests run in parallel (pytest-xdist): two workers (this machine and CI have two cores); a test module stays on
# one worker (its module-scoped servers are started once). TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope

test: lint
	$(PYTEST)

# The inner loop (a couple of minutes): lint and every test not marked `slow` (subprocesses,
# DAG runs, the sandbox, builds, soaks). `make test` (CI) runs everything.
test-fast: lint
	$(PYTEST) -m "not slow"

# The main job: a full lifecycle rehearsal on the sandbox.
rehearsal: $(STAMP)
	$(BIN)/python -m backover rehearsal

# The Airflow UI (standalone) against the sandbox, on http://127.0.0.1:8080 or PORT (`make airflow
# PORT=8090` moves every Airflow port: the UI and execution API, the log servers on PORT+1 and +2);
# Ctrl-C stops Airflow, `make sandbox-down` the sandbox.
airflow: $(STAMP)
	$(BIN)/backover airflow $(if $(PORT),--port $(PORT))

# Deployable Lambda zips (handler + backover + its dependencies) into dist/, within Lambda's limits.
lambda-zips: $(STAMP)
	$(BIN)/python scripts/build_lambda_zips.py --out dist

sandbox-up: $(STAMP)
	$(BIN)/backover sandbox up

sandbox-down: $(STAMP)
	$(BIN)/backover sandbox down

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .sandbox .pytest_cache .ruff_cache .mypy_cache
