# Two commands on a fresh machine: `make demo` runs the local demo stack, `make test` the tests.
# Each creates .venv and installs the project itself; only python3 (with venv and pip) is assumed.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck unit install crd clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hearth-sim up

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -n 2 $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

crd: $(STAMP)
	$(BIN)/hearth-operator crd

clean:
	rm -rf $(VENV) .hearth .mypy_cache .ruff_cache .pytest_cache
