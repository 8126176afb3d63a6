# The two commands of the README:
#   make up    set everything up and run the main job (embedded PostgreSQL, pipeline, dashboard)
#   make test  set everything up and run the whole test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# The Python versions supported: `make test` also runs the unit and integration tests on every
# other one of them the machine has (pyenv's versions or pythonX.Y on PATH, see
# .ci/python-for), each in its own virtualenv .venv-X.Y; a missing one is skipped with a line.
PYTHONS ?= 3.11 3.12 3.13
# The UI tests (tests/ui) drive Debian's Chromium through Playwright; never `playwright install`.
CHROMIUM = /usr/bin/chromium
SUDO     = $(if $(filter 0,$(shell id -u)),,sudo -n)

.PHONY: up test test-pythons lint bench install chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml setup.py | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# `workbench warmup` compiles the feature kernels into numba's disk cache, so that the first
# batch of `make up` does not wait for them; again after an edit of the feature engine (its
# cached kernels are then stale). About a second when they are already cached.
$(VENV)/.warm: $(VENV)/.installed $(wildcard workbench/features/*.py)
	$(BIN)/workbench warmup
	touch $@

install: $(VENV)/.installed $(VENV)/.warm

up: install
	$(BIN)/workbench up

lint: install
	$(BIN)/ruff check workbench tests benchmarks setup.py
	$(BIN)/ruff format --check workbench tests benchmarks setup.py

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
	@$(MAKE) --no-print-directory test-pythons

# The other interpreters: unit and integration tests (the browser and notebook tests run once,
# above). Exit code 5 (no test collected) fails here too.
test-pythons: install
	@main=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	echo "Python $$main: the whole suite ran above ($(VENV))"; \
	for v in $(PYTHONS); do \
	  if [ "$$v" = "$$main" ]; then continue; fi; \
	  if ! .ci/python-for $$v >/dev/null; then \
	    echo "SKIPPED Python $$v: no interpreter found (pyenv install $$v, or python$$v on PATH)"; \
	    continue; \
	  fi; \
	  $(MAKE) --no-print-directory .venv-$$v/.installed || exit 1; \
	  echo "Python $$v: tests/unit tests/integration (.venv-$$v)"; \
	  .venv-$$v/bin/python -m pytest -p no:cacheprovider tests/unit tests/integration; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests on Python $$v"; exit 1; fi; \
	  if [ $$rc -ne 0 ]; then exit $$rc; fi; \
	done

# One virtualenv per extra interpreter, installed from PyPI like the main one.
.venv-%/.installed: pyproject.toml setup.py
	@py=$$(.ci/python-for $*) || { echo "error: no Python $*"; exit 1; }; \
	test -x .venv-$*/bin/python || $$py -m venv .venv-$*; \
	.venv-$*/bin/python -m pip install --quiet --upgrade pip && \
	.venv-$*/bin/python -m pip install --quiet -e '.[test]' && touch $@

# Every benchmark briefly (--quick), one table of figures and ratios, also written into the
# README's Benchmarks section. bench_dashboard*, bench_session_start drive Chromium.
bench: install chromium
	$(BIN)/python benchmarks/run_all.py --readme README.md
