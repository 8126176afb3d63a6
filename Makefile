# The two commands of the README:
#   make up    set everything up and run the main job (embedded PostgreSQL, pipeline, dashboard)
#   make test  set everything up and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The UI tests (tests/ui) drive Debian's Chromium through Playwright; never `playwright install`.
CHROMIUM = /usr/bin/chromium
SUDO     = $(if $(filter 0,$(shell id -u)),,sudo -n)

.PHONY: up test lint bench install chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

up: install
	$(BIN)/workbench up

lint: install
	$(BIN)/ruff check workbench tests benchmarks
	$(BIN)/ruff format --check workbench tests benchmarks

chromium:
	@test -x $(CHROMIUM) || { \
	  $(SUDO) apt-get update && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) is still missing"; exit 1; }

# The browser tests run first, in a pytest process of their own, then everything else.
test: lint chromium
	@for part in "tests/ui" "tests --ignore=tests/ui"; do \
	  $(BIN)/python -m pytest -p no:cacheprovider $$part; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests in $$part"; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

bench: install
	$(BIN)/python benchmarks/bench_scoring.py
