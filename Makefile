# taskyard — everything runs from here. `make demo` and `make test` need only Python >= 3.11
# and make: each creates .venv and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A Python >= 3.12 for the Django 6 leg and the django-tasks-local peer (optional).
PY312 ?= $(shell for p in python3.13 python3.12 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: demo test lint check bench bench-core clean

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("taskyard needs Python >= 3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.demo-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.dev-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@ $(VENV)/.demo-installed

## demo: run the quickstart end to end
demo: $(VENV)/.demo-installed
	$(BIN)/python -m examples.demo

## test: run the test-suite (exit code 5, "no tests collected", counts as success)
test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

## lint: mypy --strict on taskyard/ and ruff
lint: $(VENV)/.dev-installed
	$(BIN)/mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: test lint

BENCH_VENV ?= .venv-bench
BENCH_VENV312 ?= .venv-bench312

$(BENCH_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -e . 'django>=5.2,<6' 'django-tasks>=0.9'
	touch $@

$(BENCH_VENV312)/.installed: pyproject.toml
	@if [ -n "$(PY312)" ]; then \
		$(PY312) -m venv $(BENCH_VENV312) && \
		$(BENCH_VENV312)/bin/pip install --quiet --disable-pip-version-check -e . 'django>=6,<7' django-tasks-local && \
		touch $@; \
	else echo "no Python >= 3.12 found: Django 6 and django-tasks-local peers are skipped"; fi

## bench-core: Immediate and ThreadPool beside Django's ImmediateBackend and django-tasks-local
bench-core: $(BENCH_VENV)/.installed $(BENCH_VENV312)/.installed
	$(BENCH_VENV)/bin/python bench/bench_core.py $(BENCH_ARGS) \
		$$( [ -f $(BENCH_VENV312)/.installed ] && echo --peer-python $(BENCH_VENV312)/bin/python )

bench: bench-core

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(BENCH_VENV312) .pytest_cache .mypy_cache .ruff_cache taskyard.egg-info
