# `make run` starts the app, `make test` runs the whole suite, `make bench` the benchmarks; all set up .venv.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint bench messages

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py

# The suite runs on TEST_WORKERS processes (pytest-xdist), each handed whole files (their servers and fixtures are
# per module), the long files first (tests/conftest.py).
TEST_WORKERS ?= 2
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Benchmarks (not part of the tests): `make bench`, or `make bench ARGS=--quick` for 100k transactions.
bench: $(STAMP)
	$(VENV)/bin/python -m bench $(ARGS)

# Interface catalogs (README "Language"): `make messages` extracts every _()/N_()/ngettext() string into the shared
# catalog (finance/locale) and each aggregator's (finance/providers/<name>/locale, from that folder alone), merges them
# into each language's messages.po (no header: nothing in it changes unless a message does, so branches merge
# cleanly) and compiles them. Translate the new empty pt_BR entries, then run it again (or `make test`, whose tests
# compile them too).
BABEL_OPTS := --no-location --sort-output --omit-header --no-wrap
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg $(BABEL_OPTS) -o finance/locale/messages.pot .
	for dir in finance/providers/*/; do if [ -f $${dir}__init__.py ]; then mkdir -p $${dir}locale && \
		$(VENV)/bin/pybabel extract $(BABEL_OPTS) -o $${dir}locale/messages.pot $$dir; fi; done
	for catalogs in finance/locale finance/providers/*/locale; do for lang in en pt_BR; do \
		if [ ! -f $$catalogs/$$lang/LC_MESSAGES/messages.po ]; then $(VENV)/bin/pybabel init \
		-i $$catalogs/messages.pot -d $$catalogs -D messages -l $$lang --no-wrap; fi; done; \
		$(VENV)/bin/pybabel update -i $$catalogs/messages.pot -d $$catalogs -D messages --no-fuzzy-matching \
		--ignore-obsolete --no-wrap --omit-header; done
	$(VENV)/bin/python -c "from finance import i18n; print(*i18n.compile_catalogs(), sep='\n')"
