# The two commands that do everything on a fresh machine: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test bench fuzz lint clean system-deps lock audit

# The tested set of packages, pinned: requirements.lock (the box), requirements-test.lock (with the
# tests' tools); `make lock` resolves them anew from pyproject.toml.
$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.lock
	$(PY) -m pip install -q -r requirements-test.lock
	touch $@

## make run: the box with its embedded defaults (data in ./var, staff :8080, patients :8081)
run: $(VENV)/.installed
	$(VENV)/bin/sprechzimmer serve

## make test: install what the tests need, then run the whole suite in a throwaway network namespace
test: $(VENV)/.installed-test system-deps
	$(VENV)/bin/ruff check .
	tests/netns-run $(VENV)/bin/pytest -q $(PYTEST_ARGS)

system-deps:
	@tests/system-deps

bench: $(VENV)/.installed-test
	tests/netns-run $(PY) -m bench

## make fuzz: the fuzz tests' deep profile (500 random cases per operation and role; tests/fuzz)
fuzz: $(VENV)/.installed-test
	SZ_FUZZ_PROFILE=deep tests/netns-run $(VENV)/bin/pytest -q tests/fuzz $(PYTEST_ARGS)

## make lock: pin the newest versions pyproject.toml allows (then run make test before committing)
lock: $(VENV)/.installed
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file=requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile -q --strip-extras --no-emit-index-url --no-emit-find-links \
		--extra=test --output-file=requirements-test.lock pyproject.toml

## make audit: known vulnerabilities in the pinned set (needs PyPI's JSON API or OSV, docs/dependencies.md)
audit: $(VENV)/.installed
	$(PY) -m pip install -q pip-audit
	$(VENV)/bin/pip-audit --requirement requirements-test.lock --no-deps --disable-pip --strict

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
