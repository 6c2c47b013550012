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

test: $(VENV)/.installed browser
	$(VENV)/bin/pytest

# The inner loop: everything but the tests marked slow (real deployment processes, `make ui`,
# the 1.5M-row file, Chromium). `make test` (and CI) runs those too.
test-fast: $(VENV)/.installed
	$(VENV)/bin/pytest -m "not slow"

# The report's browser tests drive Debian's Chromium: as root this installs it; otherwise it says
# how, and those tests skip (outside CI; with CI=1, as .ci/run sets, they fail instead).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
		|| echo "Chromium missing: 'sudo apt-get install chromium' to run the report's browser tests"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check quality_assets quality_assets_tests benchmarks

.PHONY: install demo ui test test-fast lint browser
