# `make run` starts the app, `make test` runs the whole suite, `make bench` the benchmarks; all set up .venv.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint bench

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Benchmarks (not part of the tests): `make bench`, or `make bench ARGS=--quick` for 100k transactions.
bench: $(STAMP)
	$(VENV)/bin/python -m bench $(ARGS)
