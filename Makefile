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

ui: $(VENV)/.installed
	QA_CONTRACTS=$(CURDIR)/quality_demo/quality.yaml $(VENV)/bin/dagster dev

test: $(VENV)/.installed browser
	$(VENV)/bin/pytest

# The report's browser tests drive Debian's Chromium: as root this installs it; otherwise it says
# how, and those tests skip (outside CI; with CI=1, as .ci/run sets, they fail instead).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } \
		|| echo "Chromium missing: 'sudo apt-get install chromium' to run the report's browser tests"

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check quality_assets quality_assets_tests benchmarks

.PHONY: install demo ui test lint browser
