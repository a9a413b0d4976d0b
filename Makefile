# Two commands on a fresh machine: `make app` runs the app, `make test` runs the tests.
# Both create ./.venv and install the pinned requirements into it when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: app test lint venv browser clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Debian's chromium + chromedriver drive the browser tests (no browser download needed).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

app: $(STAMP)
	$(BIN)/remoteclip-explorer app

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

# ruff and mypy, configured in pyproject.toml; CI fails on any finding
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache
