# OceanMart developer entry points. `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
# Python 3.12 is required; on machines with pyenv, select it explicitly.
export PYENV_VERSION ?= 3.12.1
PYTHON ?= python3.12
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck system-deps corpus clean venv bench-peer

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

## The peer of bench/serve.py (xpublish + xpublish-edr), in its own environment.
bench-peer: .venv-peer/.installed

.venv-peer/.installed: bench/peer-requirements.txt
	$(PYTHON) -m venv .venv-peer
	.venv-peer/bin/pip install --quiet -r bench/peer-requirements.txt
	touch $@

## Run the marketplace on the embedded default (./var): ingest real data, print keys, serve.
demo: $(STAMP)
	$(BIN)/oceanmart demo --port $${PORT:-8000}

## Everything a test run needs, then the whole suite (SQLite and PostgreSQL).
test: $(STAMP) system-deps corpus
	$(BIN)/pytest -n 2 --dist loadgroup

## Reference tools the tests compare against (CDO, NCO); installed when run as root.
system-deps:
	@bash scripts/system-deps.sh

corpus: $(STAMP)
	$(BIN)/oceanmart corpus fetch >/dev/null

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var .cache
