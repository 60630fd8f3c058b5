# Two commands do all the set-up on a machine with Python 3.11+ and make:
#   make demo   creates .venv/, installs everything, runs the demo pipeline
#   make test   creates or updates .venv/, runs lint and the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PKGS := core plugins/sevdesk plugins/billy plugins/bilendo plugins/billbee_source plugins/cobot_source plugins/shipmondo_source plugins/onecrm_source
PYPROJECTS := requirements-dev.txt $(foreach p,$(PKGS),$(p)/pyproject.toml)

.PHONY: install demo test lint bench clean

install: $(STAMP)

$(STAMP): $(PYPROJECTS) Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install -q --disable-pip-version-check \
		$(foreach p,$(PKGS),-e ./$(p)) -e "./core[postgres,server,server-tests,celery]" -r requirements-dev.txt
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ledgerlink demo

# mypy checks the core strictly and every plugin's package (plugins/*/ledgerlink_*,
# new plugins included) in normal mode; its settings are in pyproject.toml.
PLUGIN_PACKAGES = $(patsubst %/__init__.py,%,$(wildcard plugins/*/ledgerlink_*/__init__.py))

lint: $(STAMP)
	$(BIN)/ruff check core plugins tests bench examples
	$(BIN)/mypy --strict core/ledgerlink
	$(BIN)/mypy $(PLUGIN_PACKAGES)

test: $(STAMP) lint
	$(BIN)/python -m pytest -n 2 --durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .pytest_cache
