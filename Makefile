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

test: $(VENV)/.installed
	$(VENV)/bin/pytest

# the report's browser tests drive Debian's Chromium (root: apt-get; CI runs this through .ci/run)
browser:
	test -x /usr/bin/chromium || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium)

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check quality_assets quality_assets_tests benchmarks

.PHONY: install demo ui test lint browser
