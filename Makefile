# Two commands on a fresh machine: `make run` (the app) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test venv lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: venv
	$(BIN)/python manage.py devserver

test: venv
	$(BIN)/python scripts/run_tests.py $(ARGS)

lint: venv
	$(BIN)/python -m ruff check . && $(BIN)/python -m ruff format --check .

format: venv
	$(BIN)/python -m ruff check --fix . && $(BIN)/python -m ruff format .

bench: venv
	$(BIN)/python bench/prelabel.py && $(BIN)/python bench/click.py && $(BIN)/python bench/export.py && $(BIN)/python bench/demo.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
