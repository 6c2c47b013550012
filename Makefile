# Two commands set up a fresh machine: `make demo` (install, then run the pipeline on sample
# data with the embedded default: DuckDB file + in-process Dagster) and `make test`.
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/quality-assets demo --dir quality_demo

# The UI on the demo (written first if missing), with its own SQLite instance in .dagster_home:
# never the deployment's dagster.yaml in this folder.
UI_PORT ?= 3000
ui: $(VENV)/.installed
	@test -f $(CURDIR)/quality_demo/quality.yaml || $(VENV)/bin/quality-assets demo --dir $(CURDIR)/quality_demo
	$(VENV)/bin/quality-assets --contracts $(CURDIR)/quality_demo/quality.yaml ui --port $(UI_PORT) --home $(CURDIR)/.dagster_home

test: $(VENV)/.installed browser faketime
	$(VENV)/bin/pytest
	$(MAKE) --no-print-directory test-future VENV=$(VENV)
	$(MAKE) --no-print-directory test-lake VENV=$(VENV)

# The DuckLake backend needs the `lake` extra (DuckDB 1.5.5 and its extension wheels): a venv of
# its own runs the lake tests (skipped in the default venv) against the local PostgreSQL, where
# they must run (QA_LAKE_TESTS=1 turns a missing extension into a failure).
LAKE_VENV ?= $(VENV)-lake
$(LAKE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(LAKE_VENV)
	$(LAKE_VENV)/bin/pip install --quiet --upgrade pip
	$(LAKE_VENV)/bin/pip install --quiet -e '.[dev,lake]'
	touch $@

test-lake: $(LAKE_VENV)/.installed
	QA_LAKE_TESTS=1 $(LAKE_VENV)/bin/pytest quality_assets_tests/test_lake.py quality_assets_tests/test_lake_ops.py \
		quality_assets_tests/test_lake_deployment.py quality_assets_tests/test_lake_worker_killed.py

# No test may depend on today's date: the date-sensitive tests (marker `clock`) run again with the
# clock a year ahead. libfaketime shifts every clock of the processes it starts (Python, DuckDB's
# now(), the CLI's subprocesses). Not the deployment's: in long-running processes, Python's timed
# waits (sem_clockwait, which libfaketime 0.9.10 does not intercept) would never end; that test
# derives its days from today instead.
FUTURE ?= +365d
test-future: $(VENV)/.installed faketime
	@if command -v faketime >/dev/null; then \
		echo "date-sensitive tests with the clock at $(FUTURE):"; \
		faketime -f '$(FUTURE)' $(VENV)/bin/pytest -m clock; \
	elif [ -n "$$CI" ]; then echo "faketime is missing: CI runs the date-sensitive tests a year ahead"; exit 1; \
	else echo "faketime missing ('sudo apt-get install faketime'): the year-ahead run of the date-sensitive tests is skipped"; fi

# The inner loop: everything but the tests marked slow (real deployment processes, `make ui`,
# the 1.5M-row file, Chromium). `make test` (and CI) runs those too.
test-fast: $(VENV)/.installed
	$(VENV)/bin/pytest -m "not slow"

# The report's browser tests drive Debian's Chromium: as root this installs it; otherwise it says
# how, and those tests skip (outside CI; with CI=1, as .ci/run sets, they fail instead).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
		|| echo "Chromium missing: 'sudo apt-get install chromium' to run the report's browser tests"

# Debian's libfaketime for test-future: installed when run as root, as for chromium.
faketime:
	@command -v faketime >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q faketime; } \
		|| echo "faketime missing: 'sudo apt-get install faketime' to run the date-sensitive tests a year ahead"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check quality_assets quality_assets_tests benchmarks

.PHONY: install demo ui test test-fast test-future test-lake lint browser faketime
