# The two set-up commands. Each creates .venv if missing, installs augbal into it
# (only when pyproject.toml changed since the last install), then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.augbal-installed

.PHONY: demo test clean

demo: $(STAMP)
	$(BIN)/augbal demo

test: $(STAMP)
	$(BIN)/python -m pytest

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
