# The README's two commands are `make run` and `make test`; everything else is a step of theirs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
NATIVE := engine/_native/stamp.json
CATALOGS := $(patsubst %.po,%.mo,$(wildcard config/translations/*/LC_MESSAGES/messages.po))
TEST_POSTGRES_URL ?= postgresql+psycopg2://postgres@127.0.0.1:5432/test
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: help install install-browser run test test-sqlite test-postgres lint format clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

$(INSTALLED): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Parcours needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -c 'import xmlsec, lxml.etree, onelogin.saml2.auth, pylti1p3, psycopg2'
	touch $@

%.mo: %.po $(INSTALLED)
	$(BIN)/pybabel compile --use-fuzzy -i $< -o $@

# The selector compiled with mypyc (engine/native.py), rebuilt whenever a source of the engine
# changes; without a C compiler, Parcours runs the same pure-Python code.
$(NATIVE): $(INSTALLED) $(wildcard engine/*.py)
	$(BIN)/parcours engine compile || echo "note: the engine stays pure Python"

install: $(INSTALLED) $(CATALOGS) $(NATIVE)  ## create .venv with Parcours and its tools

install-browser:  ## Debian's Chromium (browser tests), xmlsec1 (SAML interoperability test) and valgrind (bench.answer_instructions); needs root and apt
	@if command -v chromium >/dev/null && command -v xmlsec1 >/dev/null && command -v valgrind >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium xmlsec1 valgrind >/dev/null; \
	else echo "note: no chromium, xmlsec1 or valgrind and no root: browser, SAML interoperability and instruction-count tests will be skipped (CI installs them)"; fi

run: install  ## the demo: upgrade the SQLite database, seed, serve on http://127.0.0.1:5000
	$(BIN)/parcours demo --host $(HOST) --port $(PORT)

test: lint test-sqlite test-postgres  ## lint, then the whole suite (browser tests included) on SQLite and on PostgreSQL

test-sqlite: install install-browser  ## the suite on a throwaway SQLite database, then the engine's tests on its pure-Python selector
	$(BIN)/pytest -q -p no:logging
	PARCOURS_PURE_ENGINE=1 $(BIN)/pytest -q -p no:logging tests/engine

test-postgres: install install-browser  ## the suite on a throwaway database of the PostgreSQL at TEST_POSTGRES_URL
	TEST_DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest -q -p no:logging

lint: install  ## ruff, formatting, import contracts, types
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy config engine

format: install  ## rewrite files with ruff's formatter and fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:  ## remove the virtual environment and caches (keeps instance/)
	rm -rf $(VENV) engine/_native* .pytest_cache .ruff_cache .mypy_cache .import_linter_cache
