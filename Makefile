# The two commands that do everything on a fresh machine: `make run` and `make test`.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: run test bench lint clean system-deps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q -e '.[test]'
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

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
