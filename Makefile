# taskyard — everything runs from here. `make demo` and `make test` need only Python >= 3.11
# and make: each creates .venv and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A Python >= 3.12 for the Django 6 leg and the django-tasks-local peer (optional).
PY312 ?= $(shell for p in python3.13 python3.12 $$(pyenv root 2>/dev/null)/versions/3.13*/bin/python3 $$(pyenv root 2>/dev/null)/versions/3.12*/bin/python3; do \
	$$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo $$p; break; }; done)

.PHONY: demo test test-django-postgres test-django6 print-py312 lint check dist django-example bench soak bench-core bench-db bench-redis clean

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

$(VENV)/.django-installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[django,cron]'
	touch $@

DJANGO_EXAMPLE_ADDR ?= 127.0.0.1:8000

## django-example: install taskyard with Django into .venv, migrate the example shop, serve it
## on http://$(DJANGO_EXAMPLE_ADDR) (development mode: tasks run inline)
django-example: $(VENV)/.django-installed
	cd examples/django_project && $(abspath $(BIN))/python manage.py migrate -v 0 && \
		$(abspath $(BIN))/python manage.py runserver --noreload $(DJANGO_EXAMPLE_ADDR)

## dist: build the sdist and the wheel into dist/ (python -m build, in an isolated environment)
dist: $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check build
	rm -rf dist
	$(BIN)/python -m build --outdir dist .

# pytest's exit code 5 ("no tests collected") counts as success.
PYTEST_OK = rc=$$?; [ $$rc -eq 5 ] && rc=0; [ $$rc -eq 0 ] || exit $$rc
DJANGO_TESTS = tests/django --ds=tests.django.settings -p pytest_django

## test: run the test-suite: the core and backends, then the Django integration
test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest --ignore=tests/django $(PYTEST_ARGS); $(PYTEST_OK)
	$(BIN)/python -m pytest $(DJANGO_TESTS) $(PYTEST_ARGS); $(PYTEST_OK)

## test-django-postgres: the Django tests again with the project database on PostgreSQL
test-django-postgres: $(VENV)/.dev-installed
	TASKYARD_DJANGO_DB=postgres $(BIN)/python -m pytest $(DJANGO_TESTS); $(PYTEST_OK)

VENV312 ?= .venv-py312

print-py312:
	@echo $(PY312)

$(VENV312)/.installed: pyproject.toml
	@test -n "$(PY312)" || { echo "no Python >= 3.12 found for the Django 6 leg"; exit 1; }
	$(PY312) -m venv $(VENV312)
	$(VENV312)/bin/pip install --quiet --disable-pip-version-check -e '.[django,postgres,redis,cron,metrics,test]' 'django>=6,<7' \
		'django-tasks>=0.12'  # with the backport too, as apps that still depend on it run Django 6
	touch $@

## test-django6: the Django tests on Python >= 3.12 with Django 6 (SQLite, then PostgreSQL)
test-django6: $(VENV312)/.installed
	$(VENV312)/bin/python -m pytest $(DJANGO_TESTS); $(PYTEST_OK)
	TASKYARD_DJANGO_DB=postgres $(VENV312)/bin/python -m pytest $(DJANGO_TESTS); $(PYTEST_OK)

## lint: mypy --strict on taskyard/ and ruff
lint: $(VENV)/.dev-installed
	$(BIN)/mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

check: test lint

BENCH_VENV ?= .venv-bench
BENCH_VENV312 ?= .venv-bench312
# the stamp's name changes with the list of peers, so an existing environment gets the new ones
BENCH_STAMP := $(BENCH_VENV)/.installed-peers-2
BENCH_AIO_VENV ?= .venv-bench-aio

# One environment for the whole harness: taskyard (PostgreSQL, Redis) and every peer it is
# measured against, plus matplotlib for the chart and py-spy for profiling.
$(BENCH_STAMP): pyproject.toml
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --disable-pip-version-check -e '.[postgres,redis]' \
		'django>=5.2,<6' 'django-tasks>=0.12' 'django-tasks-db>=0.13' django-tasks-rq django-rq \
		huey gevent procrastinate 'celery[redis]' saq taskiq taskiq-redis 'dramatiq[redis]' \
		matplotlib py-spy
	touch $@

# arq pins a redis-py older than rq's: its worker and its client (bench/peers/arq_agent.py)
# run under an environment of their own (the harness needs nothing else from it).
$(BENCH_AIO_VENV)/.installed:
	$(PYTHON) -m venv $(BENCH_AIO_VENV)
	$(BENCH_AIO_VENV)/bin/pip install --quiet --disable-pip-version-check arq
	touch $@

$(BENCH_VENV312)/.installed: pyproject.toml
	@if [ -n "$(PY312)" ]; then \
		$(PY312) -m venv $(BENCH_VENV312) && \
		$(BENCH_VENV312)/bin/pip install --quiet --disable-pip-version-check -e . 'django>=6,<7' django-tasks-local && \
		touch $@; \
	else echo "no Python >= 3.12 found: Django 6 and django-tasks-local peers are skipped"; fi

## bench: the whole harness (docs/benchmarks.md): every taskyard backend beside rq, Huey,
## Procrastinate, Celery, SAQ, arq, taskiq, Dramatiq, django-tasks-db/-rq/-local and Django's
## ImmediateBackend, no-op, I/O-bound (100 ms tasks) and scale-out (1, 2, 4 workers); writes
## docs/benchmarks.md, docs/benchmarks.json and docs/benchmarks.png. BENCH_ARGS="--quick" for
## a short smoke run, "--only iobound,scaleout" for some scenarios (merged into the JSON).
bench: $(BENCH_STAMP) $(BENCH_VENV312)/.installed $(BENCH_AIO_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run_all.py --aio-python $(BENCH_AIO_VENV)/bin/python $(BENCH_ARGS) \
		$$( [ -f $(BENCH_VENV312)/.installed ] && echo --peer-python $(BENCH_VENV312)/bin/python )

## soak: faults (SIGKILLs of workers and work horses, connection cuts, Redis restarts) during a
## 20,000-task drain with retries=0 on PostgreSQL, then on Redis; exit 1 on a lost task, a task
## FAILED that never ran, a discarded success or an unexplained duplicate
## (SOAK_ARGS="--n 5000" for a shorter run, "--only redis" for one store)
soak: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/soak.py $(SOAK_ARGS)

## bench-core: Immediate and ThreadPool beside Django's ImmediateBackend and django-tasks-local
bench-core: $(BENCH_STAMP) $(BENCH_VENV312)/.installed
	$(BENCH_VENV)/bin/python bench/bench_core.py $(BENCH_ARGS) \
		$$( [ -f $(BENCH_VENV312)/.installed ] && echo --peer-python $(BENCH_VENV312)/bin/python )

## bench-db: the Database backend (PostgreSQL, SQLite) beside django-tasks-db's db_worker
bench-db: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/bench_database.py $(BENCH_ARGS)

## bench-redis: the Redis backend and taskyard rqworker beside plain rq and django-tasks-rq
## (starts a private redis-server; BENCH_REDIS_ARGS="--url redis://..." to use another)
bench-redis: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/bench_redis.py $(BENCH_REDIS_ARGS)

clean:
	rm -rf $(VENV) $(VENV312) $(BENCH_VENV) $(BENCH_VENV312) $(BENCH_AIO_VENV) .venv-bench-redis .pytest_cache .mypy_cache .ruff_cache taskyard.egg-info build dist
